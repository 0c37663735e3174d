"""What a pack records about where a ModelKit came from: run, code, inputs, who and when.

``collect_provenance`` runs *before* packing (it resolves parents and reads the git checkout);
``Provenance.annotations()`` gives the few manifest annotations; after packing, ``statement()``
gives the full in-toto Statement v1 with an SLSA Provenance v1 predicate.

>>> run = RunContext(orchestrator="airflow", pipeline="retrain", run_id="manual__2026-11-26", task="pack")
>>> run.to_dict()["pipeline"]
'retrain'
>>> sanitize_remote("https://bot:s3cret@github.com/acme/churn.git")
'https://github.com/acme/churn.git'
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from .. import __version__
from ..errors import KitopsError, NotFoundError
from ..kitfile import Kitfile, is_modelkit_reference
from ..modelkit import ModelKitDescriptor
from ..sources import SourceLike, as_source
from .model import (
    ANNOTATION_PARENTS,
    ANNOTATION_REVISION,
    ANNOTATION_SOURCE,
    BUILD_TYPE,
    BUILDER_ID,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    NodeRef,
    resolve_manifest,
)

GIT_TIMEOUT_S = 10


class S3InputLike(Protocol):
    """What lineage needs from ``kitops_flows.s3.S3Input``."""

    def to_dict(self) -> dict[str, Any]: ...

    def fingerprint(self) -> str: ...


@dataclass
class RunContext:
    """The orchestrator run that produced a ModelKit; the Airflow/Prefect/Dagster plugins fill it.

    ``pipeline`` is the DAG / flow / job name, ``task`` the task id or asset key, ``attempt`` the
    try number, ``url`` a link to the run in the orchestrator's UI; ``extra`` holds anything else.
    """

    orchestrator: str = ""
    pipeline: str = ""
    run_id: str = ""
    task: str = ""
    partition: str = ""
    attempt: int | None = None
    url: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Non-empty fields only, JSON-safe."""
        d: dict[str, Any] = {
            k: v for k, v in (
                ("orchestrator", self.orchestrator), ("pipeline", self.pipeline), ("runId", self.run_id),
                ("task", self.task), ("partition", self.partition), ("url", self.url),
            ) if v
        }
        if self.attempt is not None:
            d["attempt"] = self.attempt
        if self.extra:
            d["extra"] = {str(k): str(v) for k, v in sorted(self.extra.items())}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunContext:
        attempt = d.get("attempt")
        return cls(
            orchestrator=str(d.get("orchestrator", "")), pipeline=str(d.get("pipeline", "")),
            run_id=str(d.get("runId", "")), task=str(d.get("task", "")), partition=str(d.get("partition", "")),
            attempt=int(attempt) if attempt is not None else None, url=str(d.get("url", "")),
            extra={str(k): str(v) for k, v in (d.get("extra") or {}).items()},
        )


@dataclass(frozen=True)
class GitInfo:
    """The code checkout a pack ran in. ``remote`` never carries credentials."""

    commit: str
    remote: str = ""
    branch: str = ""
    dirty: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "remote": self.remote, "branch": self.branch, "dirty": self.dirty}


@dataclass(frozen=True)
class ParentInput:
    """A parent ModelKit, pinned. ``relation``: ``parent`` (given by the caller), ``model`` (the
    Kitfile's ``model.path`` reference) or ``dataset`` (a ``datasets[].remotePath`` reference)."""

    node: NodeRef
    relation: str
    given_as: str
    manifest_size: int


@dataclass(frozen=True)
class LocalFile:
    """One layer of the packed ModelKit: what files went in, by digest."""

    kind: str
    path: str
    digest: str
    diff_id: str
    size: int


@dataclass
class Provenance:
    """Everything recorded for one pack. Built by ``collect_provenance``; ``local_files`` after pack."""

    tool_version: str
    started_on: str
    user: str = ""
    host: str = ""
    git: GitInfo | None = None
    run: RunContext | None = None
    parents: list[ParentInput] = field(default_factory=list)
    s3_inputs: list[dict[str, Any]] = field(default_factory=list)
    local_files: list[LocalFile] = field(default_factory=list)
    kitfile_name: str = ""
    kitfile_version: str = ""
    inputs_fingerprint: str = ""  # fingerprint.InputsFingerprint.digest, when the caller took one

    def annotations(self) -> dict[str, str]:
        """The few manifest annotations. Only build-stable values: they are part of the manifest digest."""
        ann: dict[str, str] = {}
        if self.git is not None:
            if self.git.remote:
                ann[ANNOTATION_SOURCE] = self.git.remote
            ann[ANNOTATION_REVISION] = self.git.commit
        if self.parents:
            pinned = sorted({p.node.pinned for p in self.parents})
            ann[ANNOTATION_PARENTS] = ",".join(pinned)
        # never the run id, time or user: the same content from another run must give the same digest;
        # run identity lives in the provenance record (``statement``), one per run that produced the digest
        return ann

    def add_local_files(self, desc: ModelKitDescriptor) -> None:
        """Record the packed layers (their digests stand for the local files that went in)."""
        self.local_files = [LocalFile(x.kind, x.path, x.digest, x.diff_id, x.size) for x in desc.layers]

    def statement(self, subject: NodeRef, finished_on: str | None = None) -> dict[str, Any]:
        """The in-toto Statement v1 (SLSA Provenance v1 predicate) whose subject is the ModelKit manifest."""
        deps: list[dict[str, Any]] = []
        for p in self.parents:
            deps.append({
                "uri": f"oci://{p.node.pinned}", "name": p.node.repo_path,
                "digest": {"sha256": p.node.digest.split(":", 1)[1]},
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "annotations": {"kind": "modelkit", "relation": p.relation, "givenAs": p.given_as},
            })
        for s3 in self.s3_inputs:
            deps.extend(_s3_dependencies(s3))
        if self.git is not None:
            deps.append({
                "uri": f"git+{self.git.remote}" if self.git.remote else "git+file:",
                "digest": {"gitCommit": self.git.commit},
                "annotations": {"kind": "code", "branch": self.git.branch, "dirty": self.git.dirty},
            })
        for f in self.local_files:
            deps.append({
                "name": f.path, "digest": {"sha256": f.diff_id.split(":", 1)[1]},
                "annotations": {"kind": "local", "layer": f.kind, "layerDigest": f.digest, "size": f.size},
            })
        external: dict[str, Any] = {"kitfile": {"name": self.kitfile_name, "version": self.kitfile_version}}
        if self.run is not None:
            external["run"] = self.run.to_dict()
        if self.inputs_fingerprint:
            external["inputsFingerprint"] = self.inputs_fingerprint
        metadata: dict[str, Any] = {"startedOn": self.started_on, "finishedOn": finished_on or utc_now()}
        if self.run is not None and (self.run.url or self.run.run_id):
            metadata["invocationId"] = self.run.url or self.run.run_id
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": subject.repo_path, "digest": {"sha256": subject.digest.split(":", 1)[1]}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "buildDefinition": {
                    "buildType": BUILD_TYPE,
                    "externalParameters": external,
                    "internalParameters": {"user": self.user, "host": self.host},
                    "resolvedDependencies": deps,
                },
                "runDetails": {
                    "builder": {
                        "id": BUILDER_ID + (f"/{self.run.orchestrator}" if self.run and self.run.orchestrator else ""),
                        "version": {"kitops-flows": self.tool_version},
                    },
                    "metadata": metadata,
                },
            },
        }


def _s3_dependencies(s3: dict[str, Any]) -> list[dict[str, Any]]:
    """S3 objects as SLSA ResourceDescriptors: one per object version (a prefix expands), ETag as digest."""
    bucket = str(s3.get("bucket", ""))
    common = {"kind": "s3", "source": str(s3.get("uri", "")), "entry": str(s3.get("entry", "")),
              "inputFingerprint": str(s3.get("fingerprint", ""))}
    objects = s3.get("objects") or [s3]
    out = []
    for obj in objects:
        key, version = str(obj.get("key", "")), str(obj.get("version_id") or "")
        name = f"s3://{bucket}/{key}"
        digest = {"etag": str(obj["etag"]).strip('"')} if obj.get("etag") else {}
        ann = {**common, "size": obj.get("size", ""), "versionId": version}
        out.append({"uri": name + (f"?versionId={version}" if version else ""), "name": name, "digest": digest,
                    "annotations": {k: v for k, v in ann.items() if v != ""}})
    return out


def utc_now() -> str:
    return datetime.now(tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_SCP_RE = re.compile(r"^(?P<user>[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!//).*)$")


def sanitize_remote(url: str) -> str:
    """A git remote URL without user, password or token (``https://tok@host/x`` -> ``https://host/x``).

    scp-style ``git@host:org/repo.git`` keeps its well-known ``git@`` user only when it is exactly
    that; any other user part is dropped too. Query strings and fragments (tokens hide there) go.
    """
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if m := _SCP_RE.match(url):
        user = "git@" if m.group("user") == "git@" else ""
        return f"{user}{m.group('host')}:{m.group('path')}"
    return url  # a local path


def _git(context_dir: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(context_dir), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(context_dir: Path) -> GitInfo | None:
    """Commit, remote, branch and dirty flag of the checkout holding ``context_dir``; None without git."""
    commit = _git(context_dir, "rev-parse", "--verify", "HEAD")
    if not commit:
        return None
    branch = _git(context_dir, "symbolic-ref", "--short", "-q", "HEAD") or ""
    remote_name = ""
    if branch:
        remote_name = _git(context_dir, "config", "--get", f"branch.{branch}.remote") or ""
    remote = _git(context_dir, "remote", "get-url", remote_name or "origin") or ""
    if not remote:  # no origin: take the first remote, if any
        first = (_git(context_dir, "remote") or "").splitlines()
        remote = _git(context_dir, "remote", "get-url", first[0]) or "" if first else ""
    status = _git(context_dir, "status", "--porcelain", "--untracked-files=normal")
    return GitInfo(commit=commit, remote=sanitize_remote(remote) if remote else "", branch=branch,
                   dirty=bool(status) if status is not None else False)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return str(os.getuid())


def collect_provenance(
    kit: SourceLike,
    context_dir: Path,
    kitfile: Kitfile,
    *,
    run: RunContext | None,
    parents: Sequence[str],
    s3_inputs: Sequence[S3InputLike],
) -> Provenance:
    """Gather the provenance of a pack that is about to run (``KitOpsClient.pack`` calls this).

    Parents (references) are pinned to manifest digests now, so a tag moving later does not
    rewrite history. A Kitfile ``model.path`` (or ``datasets[].remotePath``) naming a ModelKit is
    a parent too.
    """
    source = as_source(kit)
    given: list[tuple[str, str]] = [(p, "parent") for p in parents]
    if kitfile.model is not None and kitfile.model.path and is_modelkit_reference(kitfile.model.path):
        given.append((kitfile.model.path, "model"))
    for ds in kitfile.datasets:
        if ds.remote_path and not ds.remote_path.startswith("s3://") and is_modelkit_reference(ds.remote_path):
            given.append((ds.remote_path, "dataset"))
    resolved: list[ParentInput] = []
    seen: set[tuple[str, str]] = set()
    for text, relation in given:
        try:
            node, size = resolve_manifest(source, text)
        except NotFoundError as e:
            raise NotFoundError(
                f"parent ModelKit {text} ({relation}) cannot be resolved to a digest: {e}. "
                "Pull or pack it first, or drop it from parents"
            ) from None
        if (node.pinned, relation) not in seen:
            seen.add((node.pinned, relation))
            resolved.append(ParentInput(node, relation, text, size))
    s3_records = []
    for s3 in s3_inputs:
        rec = dict(s3.to_dict())
        rec["fingerprint"] = s3.fingerprint()
        s3_records.append(rec)
    return Provenance(
        tool_version=__version__,
        started_on=utc_now(),
        user=_user(),
        host=socket.gethostname(),
        git=git_info(context_dir),
        run=run,
        parents=resolved,
        s3_inputs=s3_records,
        kitfile_name=kitfile.package.name or (kitfile.model.name if kitfile.model else ""),
        kitfile_version=kitfile.package.version,
    )


__all__ = [
    "GitInfo", "KitopsError", "LocalFile", "ParentInput", "Provenance", "RunContext", "S3InputLike",
    "collect_provenance", "git_info", "sanitize_remote", "utc_now",
]
