"""An independent cosign verifier for the tests: plain ``requests`` + pyca ``cryptography``.

It shares no code with ``kitops_flows.signing``: it reads the registry over HTTP itself and follows
the signing spec (shared/signing-spec.md §7) to decide whether ``cosign verify --key`` and
``cosign verify-attestation --key --type slsaprovenance1`` would accept a ModelKit.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"


class Registry:
    def __init__(self, host: str, repo: str) -> None:
        self.base = f"http://{host}/v2/{repo}"

    def manifest(self, ref: str) -> tuple[dict[str, Any], bytes] | None:
        r = requests.get(f"{self.base}/manifests/{ref}", headers={"Accept": ACCEPT}, timeout=10)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return json.loads(r.content), r.content

    def blob(self, desc: dict[str, Any]) -> bytes:
        r = requests.get(f"{self.base}/blobs/{desc['digest']}", timeout=10)
        r.raise_for_status()
        assert "sha256:" + hashlib.sha256(r.content).hexdigest() == desc["digest"], "blob digest mismatch"
        return r.content

    def digest_of(self, tag: str) -> str:
        r = requests.head(f"{self.base}/manifests/{tag}", headers={"Accept": ACCEPT}, timeout=10)
        r.raise_for_status()
        return r.headers["Docker-Content-Digest"]

    def referrers_api(self, digest: str) -> bool:
        r = requests.get(f"{self.base}/referrers/{digest}", headers={"Accept": ACCEPT}, timeout=10)
        return r.status_code == 200 and r.headers.get("Content-Type") == "application/vnd.oci.image.index.v1+json"


def _key(pub_pem: bytes) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(pub_pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def _ok(key: ec.EllipticCurvePublicKey, sig: bytes, data: bytes) -> bool:
    try:
        key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def pae(payload_type: str, body: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(body), body)


def _dsse_ok(key: ec.EllipticCurvePublicKey, env: dict[str, Any], hexdigest: str) -> dict[str, Any] | None:
    if env.get("payloadType") != "application/vnd.in-toto+json" or len(env.get("signatures", [])) != 1:
        return None
    body = base64.b64decode(env["payload"])
    if not _ok(key, base64.b64decode(env["signatures"][0]["sig"]), pae(env["payloadType"], body)):
        return None
    statement = json.loads(body)
    assert set(statement) <= {"_type", "subject", "predicateType", "predicate"}, statement.keys()
    if not any(s.get("digest", {}).get("sha256") == hexdigest for s in statement["subject"]):
        return None
    return statement


def bundles(reg: Registry, digest: str) -> list[dict[str, Any]]:
    """Sigstore v0.3 bundles listed for ``digest`` (referrers API, else the sha256-<hex> index)."""
    if reg.referrers_api(digest):
        r = requests.get(f"{reg.base}/referrers/{digest}", headers={"Accept": ACCEPT}, timeout=10)
        entries = r.json()["manifests"]
    else:
        index = reg.manifest(digest.replace(":", "-"))
        entries = index[0]["manifests"] if index else []
    out = []
    for e in entries:
        got = reg.manifest(e["digest"])
        if not got:
            continue
        layers = got[0]["layers"]
        if len(layers) == 1 and layers[0]["mediaType"].startswith("application/vnd.dev.sigstore.bundle"):
            b = json.loads(reg.blob(layers[0]))
            if b.get("mediaType") == "application/vnd.dev.sigstore.bundle.v0.3+json" and "dsseEnvelope" in b:
                out.append(b)
    return out


def cosign_verify(host: str, repo: str, digest: str, pub_pem: bytes) -> bool:
    """Would ``cosign verify --key --insecure-ignore-tlog`` accept ``repo@digest``?"""
    reg, key, hexdigest = Registry(host, repo), _key(pub_pem), digest.split(":")[1]
    found = bundles(reg, digest)
    if found:
        return any(_dsse_ok(key, b["dsseEnvelope"], hexdigest) is not None for b in found)
    sig = reg.manifest(f"sha256-{hexdigest}.sig")
    if sig is None:
        return False
    for layer in sig[0]["layers"]:
        try:
            signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"], validate=True)
        except (KeyError, ValueError):
            continue
        payload = reg.blob(layer)
        if _ok(key, signature, payload) and json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == digest:
            return True
    return False


def cosign_verify_attestation(host: str, repo: str, digest: str, pub_pem: bytes,
                              predicate_type: str = "https://slsa.dev/provenance/v1") -> dict[str, Any] | None:
    """The statement ``cosign verify-attestation --type slsaprovenance1`` would accept, or None."""
    reg, key, hexdigest = Registry(host, repo), _key(pub_pem), digest.split(":")[1]
    found = bundles(reg, digest)
    envelopes = [b["dsseEnvelope"] for b in found]
    if not found:
        att = reg.manifest(f"sha256-{hexdigest}.att")
        for layer in att[0]["layers"] if att else []:
            if "dev.cosignproject.cosign/signature" in layer.get("annotations", {}):
                envelopes.append(json.loads(reg.blob(layer)))
    for env in envelopes:
        statement = _dsse_ok(key, env, hexdigest)
        if statement is not None and statement["predicateType"] == predicate_type:
            return statement
    return None
