"""Fingerprints of everything a pack reads, so ``pack_if_changed`` skips only when nothing changed.

One digest covers:

* every local file the pack would put in a layer: its name in the layer, mode, size and sha256.
  A file whose path, size and mtime equal the last fingerprint taken of this context directory on
  this machine is not read again (its earlier sha256 is reused); any difference, or a file changed
  within ``RACY_WINDOW_NS`` of being hashed, and its content is hashed. Timestamps are not part of the
  digest, so a fresh checkout of the same files has the same fingerprint;
* every S3 source, by its object versions (key, ETag, VersionId; ``S3Input.fingerprint``);
* the Kitfile, the pack options, the caller's annotations and the parents (pinned).

>>> fp = fingerprint_inputs(store, ctx, kitfile, s3_inputs=[], options={"compression": "none"})  # doctest: +SKIP
>>> fp.digest                                                                                    # doctest: +SKIP
'sha256:…'

The per-file stamps live in ``$KITOPS_HOME/kitops-flows/fingerprints/`` (one small JSON file per
context directory, written atomically); losing them only costs a re-hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .atomicfile import write_atomic
from .digests import file_digest
from .ignore import IgnoreRules
from .kitfile import Kitfile, clean_path
from .layerwalk import iter_layer_members
from .store import LocalStore

LOG = logging.getLogger("kitops_flows")

#: A file modified this close to (or after) the moment it was hashed may have changed within the same
#: mtime tick: its stamp is not trusted next time (git's "racy clean" problem).
RACY_WINDOW_NS = 2_000_000_000
STAMPS_VERSION = 1


class S3Listing(Protocol):
    """What a fingerprint needs from ``kitops_flows.s3.S3Input``."""

    entry: str
    uri: str
    mode: str

    def fingerprint(self) -> str: ...


@dataclass(frozen=True)
class FileStamp:
    """One local file as fingerprinted: where it goes, what it holds, and when it was last seen."""

    layer: int  # index in Kitfile.layer_entries()
    name: str  # name inside the layer
    mode: int
    size: int
    mtime_ns: int
    sha256: str  # "" for directories


@dataclass(frozen=True)
class InputsFingerprint:
    """The fingerprint of one pack's inputs: ``digest`` (compare this) and what went into it."""

    digest: str
    files: tuple[FileStamp, ...]
    s3: tuple[tuple[str, str, str, str], ...]  # (entry, uri, mode, object-versions fingerprint)
    hashed_files: int  # files whose content was read this time (the rest matched their stamps)

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "files": len(self.files), "s3": [list(s) for s in self.s3]}


def _stamps_path(store: LocalStore, context: Path) -> Path:
    key = hashlib.sha256(str(context).encode()).hexdigest()[:32]
    return store.home / "kitops-flows" / "fingerprints" / f"{key}.json"


def _load_stamps(path: Path, context: Path) -> dict[str, list[int | str]]:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("version") != STAMPS_VERSION or doc.get("context") != str(context):
        return {}
    files = doc.get("files")
    return files if isinstance(files, dict) else {}


def _save_stamps(path: Path, context: Path, stamps: dict[str, list[int | str]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"version": STAMPS_VERSION, "context": str(context), "files": stamps}
        write_atomic(path, json.dumps(doc, sort_keys=True).encode())
    except OSError as e:  # a cache: the next fingerprint re-hashes instead
        LOG.info("Could not save file stamps to %s: %s", path, e)


def _content_hash(path: str, size: int, mtime_ns: int, cached: list[int | str] | None) -> tuple[str, bool]:
    """(sha256, whether it was read): reuse ``cached`` when size and mtime match and the stamp is not racy."""
    if cached is not None and len(cached) == 4:
        c_size, c_mtime, c_hashed_at, c_sha = cached
        if c_size == size and c_mtime == mtime_ns and isinstance(c_hashed_at, int) and \
                mtime_ns < c_hashed_at - RACY_WINDOW_NS and isinstance(c_sha, str) and c_sha:
            return c_sha, False
    return file_digest(Path(path))[0], True


def fingerprint_inputs(
    store: LocalStore,
    context_dir: Path | str,
    kitfile: Kitfile,
    *,
    s3_inputs: Sequence[S3Listing] = (),
    options: Mapping[str, object] | None = None,
    annotations: Mapping[str, str] | None = None,
    parents: Sequence[str] = (),
) -> InputsFingerprint:
    """Fingerprint a pack's inputs (see the module docstring). Entries fed by ``s3_inputs`` are not walked."""
    context = Path(context_dir).expanduser().absolute()
    entries = kitfile.layer_entries()
    from_s3 = {s.entry for s in s3_inputs}
    ignore = IgnoreRules.from_context(context)
    paths = [clean_path(e.path) for e in entries]
    stamps_file = _stamps_path(store, context)
    old = _load_stamps(stamps_file, context)
    new: dict[str, list[int | str]] = {}
    files: list[FileStamp] = []
    hashed = 0
    now_ns = time.time_ns()
    for i, entry in enumerate(entries):
        if entry.name in from_s3 or entry.path in from_s3 or clean_path(entry.path) in from_s3:
            continue
        others = paths[:i] + paths[i + 1:]
        for member in iter_layer_members(context, entry.path, others, ignore, lambda _msg: None, kind=entry.kind):
            if member.is_dir:
                files.append(FileStamp(i, member.name, member.mode, 0, member.mtime_ns, ""))
                continue
            size, mtime_ns = member.size, member.mtime_ns  # the walk's lstat: no second one per file
            sha, read = _content_hash(member.path, size, mtime_ns, old.get(member.path))
            hashed += read
            new[member.path] = [size, mtime_ns, now_ns if read else int(old[member.path][2]), sha]
            files.append(FileStamp(i, member.name, member.mode, size, mtime_ns, sha))
    s3 = tuple(sorted((s.entry, s.uri, s.mode, s.fingerprint()) for s in s3_inputs))
    doc = {
        "kitfile": hashlib.sha256(kitfile.to_yaml().encode()).hexdigest(),
        "options": {k: str(v) for k, v in sorted((options or {}).items())},
        "annotations": dict(sorted((annotations or {}).items())),
        "parents": sorted(parents),
        "files": [[f.layer, f.name, f.mode, f.size, f.sha256] for f in files],
        "s3": [list(s) for s in s3],
    }
    if new != old:
        _save_stamps(stamps_file, context, new)
    digest = "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    LOG.info("Fingerprinted %d local file(s) (%d read) and %d S3 source(s): %s", len(files), hashed, len(s3), digest)
    return InputsFingerprint(digest, tuple(files), s3, hashed)


__all__ = ["FileStamp", "InputsFingerprint", "fingerprint_inputs"]
