"""``discover``: the tree of artifacts that refer to a ModelKit (like ``oras discover``), and what each one is.

>>> kit = KitOpsClient(plain_http=True)                                           # doctest: +SKIP
>>> tree = discover(kit, "reg.example.com/team/churn:v3")                         # doctest: +SKIP
>>> print(render_tree(tree))                                                      # doctest: +SKIP
reg.example.com/team/churn@sha256:…
├── provenance  application/vnd.in-toto+json  sha256:…  created 2026-11-26T10:00:00Z
├── downstream  application/vnd.kitops-flows.lineage.child.v1+json  sha256:…  -> reg.example.com/team/tuned@sha256:…
└── signature  tag sha256-….sig  sha256:…  1 signature

Referrers come from the local store's records and the registry (OCI 1.1 referrers API, else the
``sha256-<hex>`` index); cosign's legacy ``sha256-<hex>.sig`` / ``.att`` tags are shown too. Every
referrer manifest is read and must name its parent as ``subject`` (tampered listings are refused).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import NotFoundError
from .lineage.model import (
    ANNOTATION_CHILD,
    ANNOTATION_RELATION,
    ANNOTATION_STAGE,
    ARTIFACT_CHILD,
    ARTIFACT_PROVENANCE,
    ARTIFACT_STAGE,
    NodeRef,
    parse_referrer,
)
from .lineage.referrers import RecordReader
from .manifest import ANNOTATION_CREATED, Manifest
from .mediatypes import OCI_MANIFEST

if TYPE_CHECKING:
    from .api import KitOpsClient

BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"
BUNDLE_PREDICATE = "dev.sigstore.bundle.predicateType"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
MAX_DEPTH = 8  # the CLI default is cli_discover.MAX_DEPTH (same value)


@dataclass
class Discovered:
    """One artifact in the tree: the subject at the root, referrers (or cosign tags) below it."""

    digest: str
    size: int
    kind: str  # modelkit, provenance, downstream, stage, signature, attestation, referrer
    media_type: str = OCI_MANIFEST
    artifact_type: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    detail: str = ""
    tag: str = ""  # set for cosign's legacy tags
    reference: str = ""  # set at the root
    referrers: list[Discovered] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.reference:
            d["reference"] = self.reference
        d.update(kind=self.kind, mediaType=self.media_type, digest=self.digest, size=self.size)
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        if self.tag:
            d["tag"] = self.tag
        if self.annotations:
            d["annotations"] = dict(sorted(self.annotations.items()))
        if self.detail:
            d["detail"] = self.detail
        d["referrers"] = [r.to_dict() for r in self.referrers]
        return d


def referrer_kind(artifact_type: str, annotations: dict[str, str]) -> tuple[str, str]:
    """(kind, detail) of a referrer from its artifact type and manifest annotations."""
    created = annotations.get(ANNOTATION_CREATED, "")
    if artifact_type == ARTIFACT_PROVENANCE:
        return "provenance", f"created {created}" if created else ""
    if artifact_type == ARTIFACT_CHILD:
        relation = annotations.get(ANNOTATION_RELATION, "")
        return "downstream", f"-> {annotations.get(ANNOTATION_CHILD, '?')}" + (f" ({relation})" if relation else "")
    if artifact_type == ARTIFACT_STAGE:
        return "stage", annotations.get(ANNOTATION_STAGE, "")
    if artifact_type.startswith(BUNDLE_MEDIA_PREFIX):
        predicate = annotations.get(BUNDLE_PREDICATE, "")
        kind = "signature" if predicate in ("", COSIGN_SIGN_PREDICATE) else "attestation"
        return kind, predicate
    return "referrer", ""


def discover(kit: KitOpsClient, reference: str, *, depth: int = MAX_DEPTH, remote: bool = True) -> Discovered:
    """The referrers tree of the ModelKit ``reference`` names (local records, and its registry when ``remote``)."""
    from .lineage import pin

    node = pin(kit, reference, remote=remote)
    reader = RecordReader(kit, remote)
    size = len(reader.manifest_bytes(node))
    root = Discovered(node.digest, size, "modelkit", reference=node.pinned)
    _expand(kit, reader, node, root, depth, {node.digest})
    return root


def _expand(kit: KitOpsClient, reader: RecordReader, node: NodeRef, parent: Discovered, depth: int,
            seen: set[str]) -> None:
    if depth <= 0:
        return
    for desc in sorted(reader.referrers(node), key=lambda d: (d.artifact_type or "", d.digest)):
        if desc.digest in seen:
            continue
        data = reader.manifest_bytes(node, desc.digest)
        manifest = parse_referrer(data, desc.digest, node.digest, f"referrer {desc.digest} of {node.pinned}")
        artifact_type = manifest.artifact_type or desc.artifact_type or manifest.config.media_type
        kind, detail = referrer_kind(artifact_type, manifest.annotations)
        child = Discovered(desc.digest, len(data), kind, manifest.media_type or OCI_MANIFEST, artifact_type,
                           dict(manifest.annotations), detail)
        parent.referrers.append(child)
        _expand(kit, reader, NodeRef(node.registry, node.repository, desc.digest), child, depth - 1,
                seen | {desc.digest})
    if reader.remote and not node.is_local_only:
        parent.referrers += _cosign_tags(kit, node)


def _cosign_tags(kit: KitOpsClient, node: NodeRef) -> list[Discovered]:
    """cosign's legacy ``sha256-<hex>.sig`` / ``.att`` tags of a node, if the registry has them."""
    rc = kit.registry_client(node.registry)
    hexpart = node.digest.split(":", 1)[1]
    out = []
    for suffix, kind in (("sig", "signature"), ("att", "attestation")):
        tag = f"sha256-{hexpart}.{suffix}"
        try:
            fetched = rc.get_manifest(node.repository, tag)
        except NotFoundError:
            continue
        manifest = Manifest.from_bytes(fetched.data, f"{node.repo_path}:{tag}")
        count = len(manifest.layers)
        out.append(Discovered(fetched.digest, len(fetched.data), kind, fetched.media_type or OCI_MANIFEST,
                              manifest.config.media_type, dict(manifest.annotations),
                              f"{count} {kind}{'s' if count != 1 else ''}", tag=tag))
    return out


def render_tree(root: Discovered) -> str:
    """oras-style tree: one line per artifact, kind first."""
    lines = [f"{root.reference}"]

    def walk(node: Discovered, prefix: str) -> None:
        for i, child in enumerate(node.referrers):
            last = i == len(node.referrers) - 1
            what = f"tag {child.tag}" if child.tag else child.artifact_type
            text = "  ".join(x for x in (child.kind, what, child.digest, child.detail) if x)
            lines.append(f"{prefix}{'└── ' if last else '├── '}{text}")
            walk(child, prefix + ("    " if last else "│   "))

    walk(root, "")
    return "\n".join(lines) + "\n"


def render_json(root: Discovered) -> str:
    return json.dumps(root.to_dict(), indent=2, ensure_ascii=False) + "\n"
