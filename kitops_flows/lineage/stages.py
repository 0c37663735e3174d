"""Stages: which ModelKit of a repository is in staging, production, or retired, and since when.

A stage is a plain tag (``production``) moved by ``promote``. Every move is also recorded as a
stage-event referrer of the promoted ModelKit, and events are hash-chained per repository (each
names the previous event's digest; the newest is tagged ``kitops-flows-stage-log``, or kept in the
local referrers index for the local store), so ``history`` is an auditable, append-only log that
survives re-promotion.

>>> promote(kit, "127.0.0.1:5000/team/churn:v3", "production")     # doctest: +SKIP
>>> where(kit, "127.0.0.1:5000/team/churn", "production").digest     # doctest: +SKIP
>>> [e.stage for e in history(kit, "127.0.0.1:5000/team/churn")]     # doctest: +SKIP
['production', 'staging']
"""

from __future__ import annotations

import getpass
import os
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import KitopsError, NotFoundError
from ..manifest import ANNOTATION_CREATED, Manifest
from ..mediatypes import OCI_MANIFEST
from ..reference import Reference, parse_reference
from ..sources import ModelKitSource, SourceLike, as_source
from .model import (
    ANNOTATION_PREVIOUS,
    ANNOTATION_PREVIOUS_EVENT,
    ANNOTATION_REPOSITORY,
    ANNOTATION_SIGNED_BY,
    ANNOTATION_STAGE,
    ANNOTATION_USER,
    ARTIFACT_STAGE,
    STAGE_LOG_TAG,
    STAGES,
    LineageError,
    NodeRef,
    check_bytes,
    referrer_descriptor,
    referrer_manifest,
    sha256_of,
    subject_descriptor,
)
from .provenance import utc_now
from .referrers import LocalReferrers, RecordReader, RemoteWriter

MAX_HISTORY = 100_000  # a guard against a (tampered) cyclic chain


@dataclass(frozen=True)
class StageEvent:
    """One promotion: ``digest`` entered ``stage`` in ``repository`` (replacing ``previous``, if any)."""

    stage: str
    repository: str
    digest: str
    previous: str
    time: str
    user: str
    event_digest: str
    previous_event: str
    signed_by: str = ""  # fingerprint of the key whose signature promote(require_signature=) checked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise KitopsError(f"unknown stage {stage!r}: use one of {', '.join(STAGES)}")
    return stage


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _repo_ref(repo: str) -> Reference:
    if repo.startswith("localhost/"):
        # a local store repo_path ("localhost/team/m"); kit's parser would read "localhost" as part of the name
        return Reference("localhost", repo[len("localhost/"):], "latest")
    ref = parse_reference(repo)
    return Reference(ref.registry, ref.repository, "latest")


def where(kit: SourceLike, repo: str, stage: str) -> NodeRef | None:
    """The ModelKit a repository's stage tag points at, or None when nothing is in that stage."""
    source = as_source(kit)
    ref = _repo_ref(repo).with_reference(_check_stage(stage))
    if ref.is_local_only:
        try:
            return NodeRef(ref.registry, ref.repository, source.store.resolve(ref).digest)
        except NotFoundError:
            return None
    digest = source.registry(ref.registry).manifest_digest(ref.repository, stage)
    return NodeRef(ref.registry, ref.repository, digest) if digest else None


def promote(kit: SourceLike, reference: str, stage: str, *, require_signature: object = None) -> StageEvent:
    """Move the ``stage`` tag of the ModelKit's repository to it and record the move (auditable).

    Local references (no registry) promote in the local store; others in their registry, where
    the ModelKit must already be (push it first). ``require_signature`` (a public key, its path/PEM
    or a ``SignaturePolicy``): refuse unless the ModelKit is signed by it; the event records the
    signer's key fingerprint (``signed_by``).
    """
    source = as_source(kit)
    _check_stage(stage)
    ref = parse_reference(reference)
    try:
        if ref.is_local_only:
            found = source.store.resolve(ref)
            node, manifest_bytes = NodeRef(ref.registry, ref.repository, found.digest), None
            size = found.size
        else:  # the registry's copy: that is where the stage tag moves
            fetched = source.registry(ref.registry).get_manifest(ref.repository, ref.reference)
            manifest_bytes = check_bytes(fetched.data, ref.digest, str(ref)) if ref.digest else fetched.data
            node, size = NodeRef(ref.registry, ref.repository, sha256_of(manifest_bytes)), len(manifest_bytes)
    except NotFoundError as e:
        raise NotFoundError(f"cannot promote {ref.display()}: {e} (pack or push it first)") from None
    Manifest.from_bytes(manifest_bytes or source.store.read_blob(node.digest), f"manifest of {ref}").format  # noqa: B018
    signed_by = _check_signature(source, node, require_signature)
    previous = where(source, node.repo_path, stage)
    head = _log_head(source, node)
    ann = {
        ANNOTATION_STAGE: stage, ANNOTATION_REPOSITORY: node.repo_path,
        ANNOTATION_PREVIOUS: previous.digest if previous else "", ANNOTATION_PREVIOUS_EVENT: head or "",
        ANNOTATION_CREATED: utc_now(), ANNOTATION_USER: _user(),
    }
    if signed_by:
        ann[ANNOTATION_SIGNED_BY] = signed_by
    data = referrer_manifest(ARTIFACT_STAGE, subject_descriptor(node.digest, size), ann)
    desc = referrer_descriptor(data, ARTIFACT_STAGE, ann)
    local = LocalReferrers(source.store)
    if node.is_local_only:
        local.put(data, node.digest, desc)
        source.store.tag(node.reference, node.reference.with_reference(stage))
        if not local.set_stage_log_head(node.repo_path, desc.digest, head):
            raise LineageError(f"another promotion in {node.repo_path} ran at the same time; promote again")
    else:
        rc = source.registry(node.registry)
        RemoteWriter(source, node.registry).push(node.repository, data, desc, node.digest)
        rc.put_manifest(node.repository, stage, manifest_bytes, OCI_MANIFEST)
        rc.put_manifest(node.repository, STAGE_LOG_TAG, data, OCI_MANIFEST)
    return _event(desc.digest, ann, node.digest)


def _check_signature(source: ModelKitSource, node: NodeRef, require_signature: object) -> str:
    """The fingerprint of the key that signed ``node`` per the policy, or "" when none is required."""
    if require_signature is None:
        return ""
    from ..signing.policy import SignaturePolicy  # cryptography is loaded only when a signature is checked

    policy = SignaturePolicy.of(require_signature)  # type: ignore[arg-type]
    assert policy is not None
    return policy.check(source, node.pinned).signed_by  # SignatureError (one line per failure) if unsigned


def _log_head(source: ModelKitSource, node: NodeRef) -> str | None:
    if node.is_local_only:
        return LocalReferrers(source.store).stage_log_head(node.repo_path)
    return source.registry(node.registry).manifest_digest(node.repository, STAGE_LOG_TAG)


def _event(digest: str, ann: dict[str, str], subject: str) -> StageEvent:
    return StageEvent(
        stage=ann.get(ANNOTATION_STAGE, ""), repository=ann.get(ANNOTATION_REPOSITORY, ""), digest=subject,
        previous=ann.get(ANNOTATION_PREVIOUS, ""), time=ann.get(ANNOTATION_CREATED, ""),
        user=ann.get(ANNOTATION_USER, ""), event_digest=digest, previous_event=ann.get(ANNOTATION_PREVIOUS_EVENT, ""),
        signed_by=ann.get(ANNOTATION_SIGNED_BY, ""),
    )


def history(kit: SourceLike, repo: str) -> list[StageEvent]:
    """Every stage move in a repository, newest first, read by following the verified event chain."""
    source = as_source(kit)
    ref = _repo_ref(repo)
    anchor = NodeRef(ref.registry, ref.repository, "")
    head = _log_head(source, anchor)
    reader = RecordReader(source, remote=True)
    events: list[StageEvent] = []
    seen: set[str] = set()
    while head and len(events) < MAX_HISTORY:
        if head in seen:
            raise LineageError(f"the stage history of {anchor.repo_path} loops at {head}; it was tampered with")
        seen.add(head)
        what = f"stage event {head} in {anchor.repo_path}"
        m = Manifest.from_bytes(check_bytes(reader.manifest_bytes(anchor, head), head, what), what)
        if (m.artifact_type != ARTIFACT_STAGE or m.subject is None
                or m.annotations.get(ANNOTATION_REPOSITORY) != anchor.repo_path):
            raise LineageError(f"{head} in the stage history of {anchor.repo_path} is not a stage event of it")
        events.append(_event(head, m.annotations, m.subject.digest))
        head = m.annotations.get(ANNOTATION_PREVIOUS_EVENT) or None
    return events


__all__ = ["STAGES", "StageEvent", "history", "promote", "where"]
