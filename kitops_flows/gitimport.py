"""Fetch a git repository for ``import --tool git``: clone with the ``git`` binary, resolve HEAD, drop ``.git``.

    src = GitSource.parse("https://example.com/org/repo.git")   # or a local path / file:// URL
    commit = clone(src, Path("/tmp/work/repo"), ref=None, token=None)

A token is handed to git through ``GIT_CONFIG_*`` environment variables (never on the command line,
never logged); URIs recorded anywhere have their userinfo removed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import KitopsError

HF_HOSTS = ("huggingface.co", "hf.co")


@dataclass(frozen=True)
class GitSource:
    """Where to clone from (``url`` as given to git) and how to name it (``uri``: no userinfo)."""

    url: str
    uri: str  # for provenance: git+<clone URL without userinfo>
    name: str  # default repository name for the tag

    @classmethod
    def parse(cls, repo: str) -> GitSource:
        if "://" not in repo and not re.match(r"^[\w.-]+@[\w.-]+:", repo):  # a local path
            path = Path(repo).expanduser().resolve()
            return cls(str(path), "git+" + path.as_uri(), _name(path.name))
        if "://" not in repo:  # scp-like user@host:org/repo
            host_path = repo.split("@", 1)[1]
            host, _, path = host_path.partition(":")
            return cls(repo, f"git+ssh://{host}/{path}", _name(path))
        parts = urlsplit(repo)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        segments = [s for s in parts.path.split("/") if s]
        return cls(repo, f"git+{clean}", _name("/".join(segments[-2:]) if parts.scheme != "file" else segments[-1]))


def _name(path: str) -> str:
    name = path.strip("/").removesuffix(".git").lower()
    return re.sub(r"[^a-z0-9._/-]+", "-", name).strip("-./") or "import"


def is_hf(repo: str) -> bool:
    """Would kit default to the HF importer for this repo? (bare org/repo, or an HF host)."""
    if "://" in repo:
        return (urlsplit(repo).hostname or "") in HF_HOSTS
    if Path(repo).expanduser().exists() or repo.startswith((".", "/", "~")) or "@" in repo:
        return False
    return True


def _git(args: list[str], token: str | None, cwd: Path | None = None) -> str:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    if token:
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
                   GIT_CONFIG_VALUE_0=f"Authorization: Bearer {token}")
    git = shutil.which("git")
    if git is None:
        raise KitopsError("import --tool git needs the git binary on PATH")
    proc = subprocess.run([git, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        if token:
            detail = detail.replace(token, "***")
        raise KitopsError(f"git {args[0]} failed: {detail}")
    return proc.stdout.strip()


def clone(src: GitSource, dest: Path, *, ref: str | None, token: str | None) -> str:
    """Clone ``src`` into ``dest`` (checked out at ``ref`` or the default branch); returns the commit SHA.

    ``.git`` is removed afterwards, so ``dest`` holds only the repository's files.
    """
    _git(["clone", "--quiet", "--no-checkout", "--", src.url, str(dest)], token)
    if ref:
        for candidate in (ref, f"origin/{ref}"):
            try:
                _git(["checkout", "--quiet", "--detach", candidate, "--"], token, cwd=dest)
                break
            except KitopsError:
                continue
        else:
            raise KitopsError(f"ref {ref!r} not found in {src.uri[4:]}: give a branch, tag or commit (--ref)")
    else:
        _git(["checkout", "--quiet"], token, cwd=dest)
    commit = _git(["rev-parse", "HEAD"], token, cwd=dest)
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise KitopsError(f"could not resolve HEAD of {src.uri[4:]} (got {commit!r})")
    shutil.rmtree(dest / ".git")
    return commit
