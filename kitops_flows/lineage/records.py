"""Writing and moving lineage records: after pack (local store), on push and on pull.

>>> prov = collect_provenance(kit, ctx, kitfile, run=None, parents=["team/data:v1"], s3_inputs=[])  # doctest: +SKIP
>>> desc = pack(...); record_local(kit, desc, prov)                                              # doctest: +SKIP
>>> statement = read_provenance(kit, "127.0.0.1:5000/team/model:v1")                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..descriptor import Descriptor
from ..errors import NotFoundError
from ..manifest import ANNOTATION_CREATED, Manifest
from ..reference import Reference
from ..sources import ModelKitSource, SourceLike, as_source
from .model import (
    ANNOTATION_CHILD,
    ANNOTATION_RELATION,
    ARTIFACT_CHILD,
    ARTIFACT_PROVENANCE,
    LineageError,
    NodeRef,
    created_of,
    parse_referrer,
    pin,
    referrer_descriptor,
    referrer_manifest,
    sha256_of,
    subject_descriptor,
)
from .provenance import Provenance, utc_now
from .referrers import LocalReferrers, RecordReader, RemoteWriter, remote_referrers

if TYPE_CHECKING:
    from ..modelkit import ModelKitDescriptor

LOG = logging.getLogger("kitops_flows")


@dataclass(frozen=True)
class ChildEdge:
    """A downstream edge read from a parent's referrer: ``child`` was built from the parent."""

    parent: NodeRef
    child: NodeRef
    relation: str
    created: str


def _provenance_referrer(statement: dict[str, Any], subject: Descriptor, created: str) -> tuple[bytes, bytes, Descriptor]:
    body = json.dumps(statement, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    layer = Descriptor(ARTIFACT_PROVENANCE, sha256_of(body), len(body))
    ann = {ANNOTATION_CREATED: created}
    data = referrer_manifest(ARTIFACT_PROVENANCE, subject, ann, layer)
    return body, data, referrer_descriptor(data, ARTIFACT_PROVENANCE, ann)


def child_edge_referrer(parent: Descriptor, child: NodeRef, relation: str, created: str) -> tuple[bytes, Descriptor]:
    """The small referrer recorded on a parent naming one child. Same inputs, same bytes (idempotent)."""
    ann = {ANNOTATION_CHILD: child.pinned, ANNOTATION_RELATION: relation, ANNOTATION_CREATED: created}
    data = referrer_manifest(ARTIFACT_CHILD, parent, ann)
    return data, referrer_descriptor(data, ARTIFACT_CHILD, ann)


def record_local(kit: SourceLike, desc: ModelKitDescriptor, provenance: Provenance) -> Descriptor:
    """Store the provenance of a freshly packed ModelKit, and a child edge on each parent, in the local store.

    Returns the descriptor of the provenance referrer.
    """
    store = as_source(kit).store
    local = LocalReferrers(store)
    subject = subject_descriptor(desc.digest, store.blob_path(desc.digest).stat().st_size)
    provenance.add_local_files(desc)
    node = NodeRef(desc.registry, desc.repository, desc.digest)
    created = desc.created or utc_now()
    finished = utc_now()
    # the record is dated by its run, not by the ModelKit: every run producing this digest adds one
    body, data, rdesc = _provenance_referrer(provenance.statement(node, finished), subject, finished)
    local.put(data, desc.digest, rdesc, blobs=[body])
    for parent in provenance.parents:
        edge, edesc = child_edge_referrer(
            subject_descriptor(parent.node.digest, parent.manifest_size), node, parent.relation, created)
        local.put(edge, parent.node.digest, edesc)
    LOG.info("Recorded provenance of %s: %s", node.pinned, rdesc.digest)
    return rdesc


def _statement_from(reader: RecordReader, node: NodeRef, rdesc: Descriptor) -> dict[str, Any]:
    what = f"provenance record {rdesc.digest} of {node.pinned}"
    m = parse_referrer(reader.manifest_bytes(node, rdesc.digest), rdesc.digest, node.digest, what)
    layers = [layer for layer in m.layers if layer.media_type == ARTIFACT_PROVENANCE]
    if len(layers) != 1:
        raise LineageError(f"{what} should have exactly one {ARTIFACT_PROVENANCE} layer, has {len(layers)}")
    try:
        statement = json.loads(reader.blob(node, layers[0]))
        subjects = {s["digest"]["sha256"] for s in statement["subject"]}
    except (ValueError, KeyError, TypeError) as e:
        raise LineageError(f"{what} is not an in-toto Statement ({e})") from None
    if node.digest.split(":", 1)[1] not in subjects:
        raise LineageError(f"{what}: the statement's subject is {sorted(subjects)}, not {node.digest}")
    return statement


def statements_of(reader: RecordReader, node: NodeRef) -> list[dict[str, Any]]:
    """Every verified provenance statement of a ModelKit, newest first."""
    descs = sorted(reader.referrers(node, ARTIFACT_PROVENANCE), key=created_of, reverse=True)
    return [_statement_from(reader, node, d) for d in descs]


def run_summaries(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One small dict per provenance statement: the run (orchestrator, runId, attempt…), when and who.

    The same content built by several runs keeps one digest; each run adds a statement, so this lists them all.
    """
    out = []
    for st in statements:
        pred = st.get("predicate", {})
        build, meta = pred.get("buildDefinition", {}), pred.get("runDetails", {}).get("metadata", {})
        run = dict(build.get("externalParameters", {}).get("run") or {})
        run.update({k: v for k, v in (("startedOn", meta.get("startedOn", "")),
                                      ("finishedOn", meta.get("finishedOn", "")),
                                      ("user", build.get("internalParameters", {}).get("user", ""))) if v})
        out.append(run)
    return out


def read_provenance(kit: SourceLike, reference: str, *, remote: bool = True) -> dict[str, Any]:
    """The newest verified provenance statement of a ModelKit; NotFoundError if it has none.

    Reading checks the record's digest and that its subject is this ModelKit (tamper detection).
    """
    node = pin(kit, reference, remote=remote)
    statements = statements_of(RecordReader(as_source(kit), remote), node)
    if not statements:
        raise NotFoundError(f"{node.pinned} has no provenance record (packed without lineage, or by another tool)")
    return statements[0]


def child_edges(reader: RecordReader, node: NodeRef) -> list[ChildEdge]:
    """Verified downstream edges recorded on ``node`` (deduplicated by child digest)."""
    edges: dict[str, ChildEdge] = {}
    for d in reader.referrers(node, ARTIFACT_CHILD):
        what = f"lineage edge {d.digest} on {node.pinned}"
        m = parse_referrer(reader.manifest_bytes(node, d.digest), d.digest, node.digest, what)
        child = NodeRef.parse(m.annotations.get(ANNOTATION_CHILD, ""), f"{what}: child")
        edge = ChildEdge(node, child, m.annotations.get(ANNOTATION_RELATION, "parent"),
                         m.annotations.get(ANNOTATION_CREATED, ""))
        known = edges.get(child.digest)
        # the same child can be named twice (packed locally, then pushed): prefer a registry name
        if known is None or (known.child.is_local_only and not child.is_local_only):
            edges[child.digest] = edge
    return list(edges.values())


def _parents_of(statement: dict[str, Any]) -> list[tuple[NodeRef, str]]:
    out = []
    for dep in statement.get("predicate", {}).get("buildDefinition", {}).get("resolvedDependencies", []):
        ann = dep.get("annotations") or {}
        if ann.get("kind") == "modelkit" and str(dep.get("uri", "")).startswith("oci://"):
            out.append((NodeRef.parse(dep["uri"][len("oci://"):], "parent in provenance"), ann.get("relation", "parent")))
    return out


def push_records(kit: SourceLike, manifest_desc: Descriptor, dest: Reference) -> int:
    """Push a ModelKit's lineage records after the ModelKit itself (``KitOpsClient.push`` calls this).

    - its provenance referrers go to ``dest``'s repository;
    - a child edge goes to each parent's repository on the same registry (so ``downstream`` of the
      parent is one walk there), naming the child where it now lives;
    - child edges already recorded on this ModelKit (children packed before it was pushed) go too,
      when the child is on this registry.
    Returns the number of referrers pushed; a ModelKit with no records is a no-op (no requests).
    """
    source = as_source(kit)
    local = LocalReferrers(source.store)
    records = local.list(manifest_desc.digest)
    if not records:
        return 0
    writer = RemoteWriter(source, dest.registry)
    reader = RecordReader(source, remote=False)
    here = NodeRef(dest.registry, dest.repository, manifest_desc.digest)
    pushed = 0
    provenance = [d for d in records if d.artifact_type == ARTIFACT_PROVENANCE]
    for d in provenance:
        writer.push(dest.repository, source.store.read_blob(d.digest, d.size), d, manifest_desc.digest)
        pushed += 1
    for d in records:
        if d.artifact_type != ARTIFACT_CHILD:
            continue
        child = NodeRef.parse((d.annotations or {}).get(ANNOTATION_CHILD, ""), f"local lineage edge {d.digest}")
        if child.registry == dest.registry:
            writer.push(dest.repository, source.store.read_blob(d.digest, d.size), d, manifest_desc.digest)
            pushed += 1
    created = _created(source, manifest_desc)
    for parent, relation in {p for d in provenance for p in _parents_of(_statement_from(reader, here, d))}:
        if parent.registry != dest.registry:
            LOG.info("Not recording %s on %s: the parent is not on %s", here.pinned, parent.pinned, dest.registry)
            continue
        try:
            fetched = writer.rc.get_manifest(parent.repository, parent.digest)
        except NotFoundError:
            LOG.warning("Parent %s is not in the registry; push it to record %s as its child",
                        parent.pinned, here.pinned)
            continue
        data, edesc = child_edge_referrer(
            subject_descriptor(parent.digest, len(fetched.data)), here, relation, created)
        local.put(data, parent.digest, edesc)
        writer.push(parent.repository, data, edesc, parent.digest)
        pushed += 1
    LOG.info("Pushed %d lineage record(s) for %s", pushed, here.pinned)
    return pushed


def _created(source: ModelKitSource, manifest_desc: Descriptor) -> str:
    m = Manifest.from_bytes(source.store.read_blob(manifest_desc.digest, manifest_desc.size))
    return m.annotations.get(ANNOTATION_CREATED) or utc_now()


def pull_records(kit: SourceLike, manifest_desc: Descriptor, src: Reference) -> int:
    """Copy a pulled ModelKit's provenance and child-edge referrers into the local store (verified).

    Returns how many records were copied. Stage events stay in the registry (they describe its tags).
    """
    if src.is_local_only:
        return 0
    source = as_source(kit)
    node = NodeRef(src.registry, src.repository, manifest_desc.digest)
    reader = RecordReader(source, remote=True)
    local = LocalReferrers(source.store)
    known = {d.digest for d in local.list(node.digest)}
    copied = 0
    rc = source.registry(src.registry)
    for d in remote_referrers(rc, src.repository, node.digest):
        if d.artifact_type not in (ARTIFACT_PROVENANCE, ARTIFACT_CHILD) or d.digest in known:
            continue
        data = reader.manifest_bytes(node, d.digest)
        m = parse_referrer(data, d.digest, node.digest, f"referrer {d.digest} of {node.pinned}")
        blobs = [reader.blob(node, layer) for layer in m.layers]
        local.put(data, node.digest, referrer_descriptor(data, d.artifact_type, m.annotations), blobs=blobs)
        copied += 1
    return copied


__all__ = ["ChildEdge", "child_edges", "push_records", "pull_records", "read_provenance", "record_local",
           "run_summaries", "statements_of"]
