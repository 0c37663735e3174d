"""DSSE envelopes, in-toto statements and Sigstore bundles, as cosign writes and checks them.

- ``.att`` layers (legacy tags) are DSSE envelopes around an in-toto statement (``attestation_statement``);
- bundle referrers (OCI 1.1) wrap a DSSE envelope in a Sigstore bundle v0.3: for a signature the
  statement is cosign's ``https://sigstore.dev/cosign/sign/v1`` one (``sign_statement``), for an
  attestation the same statement as ``.att``.

>>> pae("application/vnd.in-toto+json", b"{}")
b'DSSEv1 28 application/vnd.in-toto+json 2 {}'
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..gojson import Struct, marshal
from .keys import SigningKey, VerifyKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"
STATEMENT_KEYS = {"_type", "subject", "predicateType", "predicate"}
SUBJECT_KEYS = {"name", "uri", "digest", "content", "downloadLocation", "mediaType", "annotations"}
BUNDLE_KEYS = {"mediaType", "verificationMaterial", "dsseEnvelope", "messageSignature"}
ENVELOPE_KEYS = {"payload", "payloadType", "signatures"}

#: ``cosign verify-attestation --type`` names and the predicate URIs they select.
PREDICATE_TYPES = {
    "slsaprovenance1": SLSA_PROVENANCE_V1,
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "custom": "https://cosign.sigstore.dev/attestation/v1",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
}


def predicate_uri(type_name: str) -> str:
    """``--type`` value -> predicate URI (an absolute URI is used verbatim)."""
    return PREDICATE_TYPES.get(type_name, type_name)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64decode_dsse(text: str) -> bytes:
    """DSSE fields: standard base64, else URL-safe (go-securesystemslib ``b64Decode``)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the bytes the signature covers."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def sign_statement(digest: str, annotations: Mapping[str, str] | None = None) -> bytes:
    """cosign v3's statement for ``cosign sign`` in a bundle: v1 type, no subject name, empty predicate."""
    return marshal(Struct([
        ("_type", STATEMENT_V1),
        ("subject", [Struct([("digest", {"sha256": digest.split(":", 1)[1]}),
                             ("annotations", dict(annotations or {}))])]),
        ("predicateType", SIGN_PREDICATE),
        ("predicate", {}),
    ]))


def attestation_statement(docker_reference: str, digest: str, predicate: Mapping[str, Any],
                          predicate_type: str = SLSA_PROVENANCE_V1) -> bytes:
    """``cosign attest``'s statement (v0.1 type URI, subject with name): only the four allowed keys."""
    return marshal(Struct([
        ("_type", STATEMENT_V01),
        ("subject", [Struct([("name", docker_reference), ("digest", {"sha256": digest.split(":", 1)[1]})])]),
        ("predicateType", predicate_type),
        ("predicate", _go_value(predicate)),
    ]))


def _go_value(value: Any) -> Any:
    """JSON-ify a predicate for gojson (plain dicts/lists/scalars; floats that are ints stay ints)."""
    return json.loads(json.dumps(value))


def envelope(statement: bytes, key: SigningKey, *, deterministic: bool = False) -> Struct:
    """A DSSE envelope with one signature over the PAE (no ``keyid``, as cosign writes it)."""
    sig = key.sign(pae(PAYLOAD_TYPE, statement), deterministic=deterministic)
    return Struct([("payload", _b64(statement)), ("payloadType", PAYLOAD_TYPE),
                   ("signatures", [Struct([("sig", _b64(sig))])])])


def bundle(statement: bytes, key: SigningKey, *, deterministic: bool = False) -> bytes:
    """A Sigstore bundle v0.3 (key-signed, no tlog/timestamps) around a DSSE envelope."""
    return marshal(Struct([
        ("mediaType", BUNDLE_MEDIA_TYPE),
        ("verificationMaterial", Struct([("publicKey", Struct([("hint", key.public_key.hint)]))])),
        ("dsseEnvelope", envelope(statement, key, deterministic=deterministic)),
    ]))


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[tuple[bytes, str], ...]  # (signature, keyid)

    def verify(self, key: VerifyKey) -> bool:
        return any(key.verify(sig, pae(self.payload_type, self.payload)) for sig, _ in self.signatures)


def parse_envelope(doc: Any, what: str) -> Envelope:
    """Parse an envelope object strictly (unknown fields fail, as protojson does); ValueError if malformed."""
    if not isinstance(doc, dict):
        raise ValueError(f"{what} is not a JSON object")
    extra = set(doc) - ENVELOPE_KEYS
    if extra:
        raise ValueError(f"{what} has unknown field(s) {sorted(extra)}")
    sigs = doc.get("signatures") or []
    if not isinstance(sigs, list):
        raise ValueError(f"{what}: signatures is not a list")
    parsed = []
    for s in sigs:
        if not isinstance(s, dict) or set(s) - {"sig", "keyid"}:
            raise ValueError(f"{what}: a signature entry has unknown fields")
        parsed.append((b64decode_dsse(str(s.get("sig", ""))), str(s.get("keyid") or "")))
    return Envelope(str(doc.get("payloadType", "")), b64decode_dsse(str(doc.get("payload", ""))), tuple(parsed))


def _strict_object(data: bytes, what: str, allowed: set[str], unknown: str) -> dict[str, Any]:
    """A JSON object with no key outside ``allowed`` (protojson's strict parse refuses unknown fields)."""
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError(f"{what} is not a JSON object")
    extra = set(doc) - allowed
    if extra:
        raise ValueError(f"{what} has {unknown} {sorted(extra)}")
    return doc


def parse_statement(data: bytes, what: str) -> dict[str, Any]:
    """An in-toto statement, checked the way cosign's strict protojson parse does; ValueError otherwise."""
    doc = _strict_object(data, what, STATEMENT_KEYS, "unknown top-level key(s)")
    subjects = doc.get("subject")
    if not isinstance(subjects, list):
        raise ValueError(f"{what}: subject is not a list")
    for s in subjects:
        if not isinstance(s, dict) or set(s) - SUBJECT_KEYS or not isinstance(s.get("digest", {}), dict):
            raise ValueError(f"{what}: a subject has unknown fields or a malformed digest")
    return doc


def statement_digests(statement: Mapping[str, Any]) -> list[str]:
    """``sha256:<hex>`` of every subject that has a sha256 digest."""
    return [f"sha256:{s['digest']['sha256']}" for s in statement.get("subject", [])
            if isinstance(s.get("digest"), dict) and s["digest"].get("sha256")]


@dataclass(frozen=True)
class Bundle:
    media_type: str
    hint: str
    envelope: Envelope


def parse_bundle(data: bytes, what: str) -> Bundle:
    """A Sigstore bundle v0.3+ with a DSSE envelope and ``publicKey`` material; ValueError otherwise."""
    doc = _strict_object(data, what, BUNDLE_KEYS, "unknown field(s)")
    media_type = str(doc.get("mediaType", ""))
    if media_type not in (BUNDLE_MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"):
        raise ValueError(f"{what}: bundle media type {media_type!r} is not v0.3")
    if "dsseEnvelope" not in doc:
        raise ValueError(f"{what} holds no dsseEnvelope (cosign only accepts DSSE bundles on OCI)")
    material = doc.get("verificationMaterial") or {}
    if not isinstance(material, dict):
        raise ValueError(f"{what}: verificationMaterial is not an object")
    hint = str((material.get("publicKey") or {}).get("hint", "")) if isinstance(material.get("publicKey"), dict) else ""
    return Bundle(media_type, hint, parse_envelope(doc["dsseEnvelope"], f"{what} dsseEnvelope"))


__all__ = [
    "BUNDLE_MEDIA_TYPE", "DSSE_MEDIA_TYPE", "PAYLOAD_TYPE", "SIGN_PREDICATE", "SLSA_PROVENANCE_V1", "Bundle",
    "Envelope", "attestation_statement", "bundle", "envelope", "parse_bundle", "parse_envelope",
    "parse_statement", "pae", "predicate_uri", "sign_statement", "statement_digests",
]
