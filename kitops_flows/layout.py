"""kit's per-repository bookkeeping files in ``$KITOPS_HOME/storage`` (shared by the store and the index store).

ModelKits live in ``storage/`` and ModelKit indexes in ``storage/indexes/``, each with the same pair of
files per repository::

    <base64url(registry/repo)>-index.json   {"schemaVersion":2,"manifests":[<descriptors>]}
    <base64url(registry/repo)>-tags.json    {"<tag>": <descriptor>, ...}

>>> repo_file_stem("localhost/team/churn")
'bG9jYWxob3N0L3RlYW0vY2h1cm4='
>>> files = RepoFiles(Path(tmp))                                          # doctest: +SKIP
>>> manifests, tags = files.load("localhost/team/churn")                  # doctest: +SKIP
>>> files.save("localhost/team/churn", manifests, {**tags, "v2": manifests[0]})   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

from .atomicfile import write_atomic
from .descriptor import Descriptor
from .errors import StoreError

__all__ = ["RepoFiles", "repo_file_stem"]

_INDEX_FILE_RE = re.compile(r"^([-A-Za-z0-9_]*={0,3})-index\.json$")


def repo_file_stem(repo_path: str) -> str:
    """kit names per-repository files by URL-safe base64 (with padding) of ``registry/repository``."""
    return base64.urlsafe_b64encode(repo_path.encode()).decode()


class RepoFiles:
    """The ``-index.json`` / ``-tags.json`` pairs of one directory. Callers hold the store lock to write."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def index_path(self, repo_path: str) -> Path:
        return self.dir / f"{repo_file_stem(repo_path)}-index.json"

    def tags_path(self, repo_path: str) -> Path:
        return self.dir / f"{repo_file_stem(repo_path)}-tags.json"

    def load_json(self, path: Path, default: object) -> object:
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return default
        except ValueError as e:
            raise StoreError(f"{path} is not valid JSON ({e}); restore it or remove the repository") from None

    def manifests(self, repo_path: str) -> list[Descriptor]:
        path = self.index_path(repo_path)
        data = self.load_json(path, {"manifests": []})
        items = data.get("manifests") if isinstance(data, dict) else None
        return [Descriptor.from_dict(d, f"entry in {path.name}") for d in (items or [])]

    def tags(self, repo_path: str) -> dict[str, Descriptor]:
        path = self.tags_path(repo_path)
        data = self.load_json(path, {})
        if not isinstance(data, dict):
            raise StoreError(f"{path} should hold a JSON object of tag -> descriptor")
        return {tag: Descriptor.from_dict(d, f"tag {tag!r} in {path.name}") for tag, d in data.items()}

    def load(self, repo_path: str) -> tuple[list[Descriptor], dict[str, Descriptor]]:
        return self.manifests(repo_path), self.tags(repo_path)

    def save(self, repo_path: str, manifests: list[Descriptor], tags: dict[str, Descriptor]) -> None:
        """Write (or delete, when empty) the repository's index and tags files, as kit does."""
        tags_path, index_path = self.tags_path(repo_path), self.index_path(repo_path)
        self.dir.mkdir(parents=True, exist_ok=True)
        if tags:
            body = {t: tags[t].to_dict() for t in sorted(tags)}
            write_atomic(tags_path, json.dumps(body, separators=(",", ":")).encode())
        else:
            tags_path.unlink(missing_ok=True)
        seen: set[str] = set()
        unique = [d for d in manifests if not (d.digest in seen or seen.add(d.digest))]  # type: ignore[func-returns-value]
        if unique:
            body2 = {"schemaVersion": 2, "manifests": [d.to_dict() for d in unique]}
            write_atomic(index_path, json.dumps(body2, separators=(",", ":")).encode())
        else:
            index_path.unlink(missing_ok=True)

    def repos(self) -> list[str]:
        """Every ``registry/repository`` with an index file here (files that are not kit's are skipped)."""
        if not self.dir.is_dir():
            return []
        out = []
        for name in os.listdir(self.dir):
            if m := _INDEX_FILE_RE.match(name):
                try:
                    out.append(base64.urlsafe_b64decode(m.group(1)).decode())
                except (ValueError, UnicodeDecodeError):
                    continue
        return sorted(out)
