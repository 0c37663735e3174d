"""Bytes of the OCI objects cosign stores signatures in (no I/O here; ``placement`` does the I/O).

- legacy tags: ``sha256-<hex>.sig`` / ``.att`` hold one image manifest whose layers are the
  signatures (``layered_manifest`` + ``layered_config``);
- OCI 1.1 referrers: one manifest per bundle with ``subject`` = the ModelKit (``referrer_manifest``),
  listed by the referrers API or, on registries without it, by the ``sha256-<hex>`` index
  (``fallback_index``).

>>> signature_tag("sha256:" + "ab" * 32)[-12:]
'abababab.sig'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..gojson import Struct, marshal
from ..mediatypes import OCI_INDEX, OCI_MANIFEST
from .dsse import BUNDLE_MEDIA_TYPE

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BYTES = b"{}"
ZERO_TIME = "0001-01-01T00:00:00Z"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_ANNOTATION = "predicateType"
BUNDLE_CONTENT = "dev.sigstore.bundle.content"
BUNDLE_PREDICATE = "dev.sigstore.bundle.predicateType"
CREATED = "org.opencontainers.image.created"
MAX_LAYERS = 1000  # cosign's read limits
MAX_PAYLOAD = 128 << 20


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _suffixed(digest: str, suffix: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"{algo}-{hexpart}.{suffix}"


def signature_tag(digest: str) -> str:
    return _suffixed(digest, "sig")


def attestation_tag(digest: str) -> str:
    return _suffixed(digest, "att")


def referrers_tag(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"{algo}-{hexpart}"


@dataclass(frozen=True)
class Layer:
    """One signature (or attestation) layer: its blob and annotations."""

    media_type: str
    data: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_of(self.data)

    def descriptor(self) -> Struct:
        return Struct([("mediaType", self.media_type), ("size", len(self.data)), ("digest", self.digest),
                       ("annotations", dict(self.annotations))])


def layered_config(layer_digests: Sequence[str]) -> bytes:
    """The ``.sig``/``.att`` config blob: one ``diff_ids`` and one ``history`` entry per layer."""
    return marshal(Struct([
        ("architecture", ""), ("created", ZERO_TIME),
        ("history", [Struct([("created", ZERO_TIME)]) for _ in layer_digests]),
        ("os", ""), ("rootfs", Struct([("type", "layers"), ("diff_ids", list(layer_digests))])),
        ("config", {}),
    ]))


def layered_manifest(config: bytes, layers: Sequence[Mapping[str, Any]]) -> bytes:
    """The manifest at a ``.sig``/``.att`` tag, given its config blob and layer descriptors."""
    return marshal(Struct([
        ("schemaVersion", 2), ("mediaType", OCI_MANIFEST),
        ("config", Struct([("mediaType", OCI_CONFIG), ("size", len(config)), ("digest", sha256_of(config))])),
        ("layers", [_descriptor_struct(d) for d in layers]),
    ]))


def _descriptor_struct(d: Mapping[str, Any]) -> Struct:
    out = Struct([("mediaType", d["mediaType"]), ("size", int(d["size"])), ("digest", d["digest"])])
    if d.get("annotations"):
        out["annotations"] = dict(d["annotations"])
    return out


def referrer_manifest(bundle_blob: bytes, subject: Mapping[str, Any], predicate_type: str, created: str) -> bytes:
    """A bundle referrer (cosign v3 ``WriteReferrer``): empty config, one bundle layer, subject = the ModelKit."""
    return marshal(Struct([
        ("schemaVersion", 2), ("mediaType", OCI_MANIFEST),
        ("config", Struct([("mediaType", EMPTY_MEDIA_TYPE), ("size", 2), ("digest", sha256_of(EMPTY_BYTES)),
                           ("artifactType", BUNDLE_MEDIA_TYPE)])),
        ("layers", [Struct([("mediaType", BUNDLE_MEDIA_TYPE), ("size", len(bundle_blob)),
                            ("digest", sha256_of(bundle_blob))])]),
        ("annotations", {BUNDLE_CONTENT: "dsse-envelope", BUNDLE_PREDICATE: predicate_type, CREATED: created}),
        ("subject", Struct([("mediaType", subject["mediaType"]), ("size", int(subject["size"])),
                            ("digest", subject["digest"])])),
        ("artifactType", BUNDLE_MEDIA_TYPE),
    ]))


def index_entry(manifest: bytes, artifact_type: str) -> dict[str, Any]:
    return {"mediaType": OCI_MANIFEST, "size": len(manifest), "digest": sha256_of(manifest),
            "artifactType": artifact_type}


def fallback_index(entries: Sequence[Mapping[str, Any]]) -> bytes:
    """The referrers tag schema index: entries sorted by digest string, as ggcr writes it."""
    ordered = sorted({e["digest"]: e for e in entries}.values(), key=lambda e: e["digest"])
    manifests = []
    for e in ordered:
        s = Struct([("mediaType", e.get("mediaType", OCI_MANIFEST)), ("size", int(e["size"])), ("digest", e["digest"])])
        if e.get("annotations"):
            s["annotations"] = dict(e["annotations"])
        if e.get("artifactType"):
            s["artifactType"] = e["artifactType"]
        manifests.append(s)
    return marshal(Struct([("schemaVersion", 2), ("mediaType", OCI_INDEX), ("manifests", manifests)]))


__all__ = [
    "EMPTY_BYTES", "Layer", "MAX_LAYERS", "MAX_PAYLOAD", "SIGNATURE_ANNOTATION", "attestation_tag",
    "fallback_index", "index_entry", "layered_config", "layered_manifest", "referrer_manifest", "referrers_tag",
    "sha256_of", "signature_tag",
]
