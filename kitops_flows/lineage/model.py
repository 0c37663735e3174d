"""Names, media types and small value types shared by the lineage modules.

Lineage records are OCI 1.1 *referrers*: small manifests whose ``subject`` is a ModelKit manifest.
Three kinds, told apart by ``artifactType``:

- provenance (``application/vnd.in-toto+json``): one layer, the in-toto Statement; subject = the ModelKit.
- child edge: no content, annotations name a ModelKit built from the subject (``downstream`` reads these).
- stage event: a promotion of the subject to a stage, chained to the repository's previous event.

>>> NodeRef("localhost", "team/data", "sha256:" + "a" * 64).pinned[:14]
'team/data@sha2'
>>> short_digest("sha256:" + "0123456789ab" + "f" * 52)
'sha256:0123456789ab'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..descriptor import Descriptor
from ..errors import DigestMismatchError, KitopsError, NotFoundError
from ..manifest import ANNOTATION_CREATED, Manifest
from ..mediatypes import OCI_MANIFEST
from ..reference import DEFAULT_REGISTRY, DEFAULT_REPOSITORY, Reference, is_digest, parse_reference
from ..sources import SourceLike, as_source

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://kitops-flows.dev/pack/v1"
BUILDER_ID = "https://kitops-flows.dev/builder"

ARTIFACT_PROVENANCE = "application/vnd.in-toto+json"
ARTIFACT_CHILD = "application/vnd.kitops-flows.lineage.child.v1+json"
ARTIFACT_STAGE = "application/vnd.kitops-flows.stage.v1+json"

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BYTES = b"{}"
EMPTY_DESCRIPTOR = Descriptor(EMPTY_MEDIA_TYPE, "sha256:" + hashlib.sha256(EMPTY_BYTES).hexdigest(), 2)

ANNOTATION_SOURCE = "org.opencontainers.image.source"
ANNOTATION_REVISION = "org.opencontainers.image.revision"
ANNOTATION_PARENTS = "ml.kitops-flows.parents"
ANNOTATION_RUN_ID = "ml.kitops-flows.run-id"
ANNOTATION_CHILD = "ml.kitops-flows.child"
ANNOTATION_RELATION = "ml.kitops-flows.relation"
ANNOTATION_STAGE = "ml.kitops-flows.stage"
ANNOTATION_REPOSITORY = "ml.kitops-flows.repository"
ANNOTATION_PREVIOUS = "ml.kitops-flows.previous"
ANNOTATION_PREVIOUS_EVENT = "ml.kitops-flows.previous-event"
ANNOTATION_USER = "ml.kitops-flows.user"
ANNOTATION_SIGNED_BY = "ml.kitops-flows.signed-by"

STAGES = ("staging", "production", "retired")
#: The tag holding the newest stage event of a repository (the head of its hash-chained log).
STAGE_LOG_TAG = "kitops-flows-stage-log"


class LineageError(KitopsError):
    """A lineage record is missing, malformed or does not belong to the ModelKit it claims."""


def short_digest(digest: str, length: int = 12) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:length]}"


@dataclass(frozen=True)
class NodeRef:
    """A ModelKit version: where it lives (``registry/repository``) and its manifest digest."""

    registry: str
    repository: str
    digest: str

    @property
    def repo_path(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def pinned(self) -> str:
        """``registry/repo@sha256:…``, re-parseable (kit's implicit ``localhost`` is left out)."""
        if self.registry == DEFAULT_REGISTRY and self.repository == DEFAULT_REPOSITORY:
            return self.digest  # packed without a tag: kit stores it under localhost/_
        repo = self.repository if self.registry == DEFAULT_REGISTRY else self.repo_path
        return f"{repo}@{self.digest}"

    @property
    def reference(self) -> Reference:
        return Reference(self.registry, self.repository, self.digest)

    @property
    def is_local_only(self) -> bool:
        return self.registry == DEFAULT_REGISTRY

    @classmethod
    def parse(cls, pinned: str, what: str = "reference") -> NodeRef:
        """Parse ``[registry/]repo@sha256:…``; raise LineageError when it is not pinned by digest."""
        try:
            ref = parse_reference(pinned)
        except KitopsError as e:
            raise LineageError(f"{what} {pinned!r} is not a ModelKit reference: {e}") from None
        if not ref.is_digest:
            raise LineageError(f"{what} {pinned!r} is not pinned by digest (expected repo@sha256:…)")
        return cls(ref.registry, ref.repository, ref.reference)


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_bytes(data: bytes, digest: str, what: str) -> bytes:
    """Return ``data`` if it hashes to ``digest``; DigestMismatchError otherwise (tampered record)."""
    got = sha256_of(data)
    if got != digest:
        raise DigestMismatchError(f"{what}: content hashes to {got}, expected {digest} (tampered or corrupted)")
    return data


def resolve_manifest(kit: SourceLike, text: str) -> tuple[NodeRef, int]:
    """Pin a ModelKit reference to (NodeRef, manifest size): local store first, then its registry."""
    source = as_source(kit)
    ref = parse_reference(text)
    try:
        desc = source.store.resolve(ref)
        return NodeRef(ref.registry, ref.repository, desc.digest), desc.size
    except NotFoundError:
        if ref.is_local_only:
            raise
    fetched = source.registry(ref.registry).get_manifest(ref.repository, ref.reference)
    if ref.is_digest:
        check_bytes(fetched.data, ref.reference, f"manifest of {ref}")
    Manifest.from_bytes(fetched.data, f"manifest of {ref}").format  # noqa: B018 - raises if not a ModelKit
    return NodeRef(ref.registry, ref.repository, sha256_of(fetched.data)), len(fetched.data)


def pin(kit: SourceLike, reference: str, *, remote: bool = True) -> NodeRef:
    """The ModelKit a reference names, pinned by digest (a digest reference needs no lookup)."""
    ref = parse_reference(reference)
    if ref.is_digest:
        return NodeRef(ref.registry, ref.repository, ref.reference)
    if not remote and not ref.is_local_only:
        desc = as_source(kit).store.resolve(ref)
        return NodeRef(ref.registry, ref.repository, desc.digest)
    node, _ = resolve_manifest(kit, reference)
    return node


def subject_descriptor(digest: str, size: int) -> Descriptor:
    return Descriptor(OCI_MANIFEST, digest, size)


def referrer_manifest(
    artifact_type: str, subject: Descriptor, annotations: dict[str, str], layer: Descriptor | None = None,
) -> bytes:
    """Bytes of a referrer manifest: empty config, one layer (the empty blob when there is no content)."""
    return Manifest(
        config=EMPTY_DESCRIPTOR, layers=[layer or EMPTY_DESCRIPTOR], annotations=dict(annotations),
        artifact_type=artifact_type, media_type=OCI_MANIFEST,
        subject=Descriptor(subject.media_type or OCI_MANIFEST, subject.digest, subject.size),
    ).to_bytes()


def parse_referrer(data: bytes, digest: str, subject_digest: str, what: str) -> Manifest:
    """Verify and parse a referrer manifest: right digest, and its subject is the ModelKit asked about."""
    check_bytes(data, digest, what)
    m = Manifest.from_bytes(data, what)
    if m.subject is None or m.subject.digest != subject_digest:
        raise LineageError(
            f"{what} claims to describe {m.subject.digest if m.subject else 'nothing'}, not {subject_digest}; "
            "the referrers index is wrong or was tampered with"
        )
    return m


def referrer_descriptor(data: bytes, artifact_type: str, annotations: dict[str, str]) -> Descriptor:
    """The descriptor of a referrer manifest as a referrers index lists it (with its annotations)."""
    return Descriptor(OCI_MANIFEST, sha256_of(data), len(data), annotations=dict(annotations) or None,
                      artifact_type=artifact_type)


def created_of(desc: Descriptor) -> str:
    return (desc.annotations or {}).get(ANNOTATION_CREATED, "")


__all__ = [
    "ARTIFACT_CHILD", "ARTIFACT_PROVENANCE", "ARTIFACT_STAGE", "EMPTY_DESCRIPTOR", "LineageError", "NodeRef",
    "STAGES", "STAGE_LOG_TAG", "check_bytes", "is_digest", "parse_referrer", "referrer_descriptor",
    "pin", "referrer_manifest", "resolve_manifest", "short_digest",
]
