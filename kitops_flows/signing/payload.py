"""cosign's simple-signing payload: the bytes a ``.sig`` signature signs (sigstore payload.go).

>>> payload = simple_signing_payload("localhost:5000/models/demo", "sha256:" + "ee" * 32)
>>> payload[:54]
b'{"critical":{"identity":{"docker-reference":"localhost'
>>> parse_simple_signing(payload).digest == "sha256:" + "ee" * 32
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..gojson import Struct, marshal

SIMPLE_SIGNING_TYPE = "cosign container image signature"
SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"


def simple_signing_payload(docker_reference: str, digest: str,
                           annotations: Mapping[str, str] | None = None) -> bytes:
    """Exact bytes of Go ``json.Marshal(SimpleContainerImage)``; ``optional`` is null without annotations."""
    return marshal(Struct([
        ("critical", Struct([
            ("identity", Struct([("docker-reference", docker_reference)])),
            ("image", Struct([("docker-manifest-digest", digest)])),
            ("type", SIMPLE_SIGNING_TYPE),
        ])),
        ("optional", dict(annotations) if annotations else None),
    ]))


@dataclass(frozen=True)
class SimpleSigning:
    """What a verifier reads from a payload: the signed manifest digest and the optional annotations."""

    digest: str
    docker_reference: str
    type: str
    optional: dict[str, Any]


def _get(obj: Any, key: str) -> Any:
    """Go's json decoding matches struct keys case-insensitively (exact match first)."""
    if not isinstance(obj, dict):
        return None
    if key in obj:
        return obj[key]
    for k, v in obj.items():
        if isinstance(k, str) and k.lower() == key.lower():
            return v
    return None


def parse_simple_signing(data: bytes) -> SimpleSigning:
    """Decode a payload; ValueError if it is not JSON of the simple-signing shape."""
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("the payload is not a JSON object")
    critical = _get(doc, "critical") or {}
    optional = _get(doc, "optional")
    return SimpleSigning(
        digest=str(_get(_get(critical, "image"), "docker-manifest-digest") or ""),
        docker_reference=str(_get(_get(critical, "identity"), "docker-reference") or ""),
        type=str(_get(critical, "type") or ""),
        optional=optional if isinstance(optional, dict) else {},
    )


__all__ = ["SIMPLE_SIGNING_MEDIA_TYPE", "SIMPLE_SIGNING_TYPE", "SimpleSigning", "parse_simple_signing",
           "simple_signing_payload"]
