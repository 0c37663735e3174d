"""The OCI 1.1 referrers-API branch of signing, on a small in-memory registry fake.

distribution 2.8 (the real registry of the other tests) has no referrers API, and no registry that has
one can be installed here, so this branch runs on a fake that answers ``referrers()`` from the manifests
it stores (what zot, Harbor 2.8+ or distribution 3 do). It checks: ``auto`` picks bundles, no
``sha256-<hex>`` index tag is written, verification reads the API's list, and a wrong key is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

import pytest

from kitops_flows.descriptor import Descriptor
from kitops_flows.errors import DigestMismatchError
from kitops_flows.registry.client import FetchedManifest
from kitops_flows.registry.errors import RegistryNotFoundError
from kitops_flows.signing import SignatureError, generate_key_pair, sign_modelkit, verify_modelkit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class ReferrersRegistry:
    """Blobs and manifests in memory; ``referrers`` lists stored manifests whose subject is the digest."""

    registry: str = "reg.test"
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)
    referrer_calls: int = 0

    def push_blob(self, repo: str, digest: str, size: int, open_blob: Callable[[], BinaryIO], **_: object) -> bool:
        data = open_blob().read()
        assert _sha(data) == digest and len(data) == size
        self.blobs[digest] = data
        return True

    @contextmanager
    def open_blob(self, repo: str, digest: str, size: int) -> Iterator[BinaryIO]:
        data = self.blobs[digest]
        if _sha(data) != digest:
            raise DigestMismatchError(f"blob {digest} hashes to {_sha(data)}")
        yield io.BytesIO(data)

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        self.manifests[(repo, reference)] = data
        self.manifests[(repo, _sha(data))] = data
        return _sha(data)

    def get_manifest(self, repo: str, reference: str, **_: object) -> FetchedManifest:
        try:
            data = self.manifests[(repo, reference)]
        except KeyError:
            raise RegistryNotFoundError(f"manifest {repo}:{reference} not found") from None
        return FetchedManifest(data, json.loads(data).get("mediaType", OCI_MANIFEST), _sha(data))

    def referrers(self, repo: str, digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        self.referrer_calls += 1
        out = []
        for (r, ref), data in self.manifests.items():
            doc = json.loads(data)
            if r == repo and ref == _sha(data) and (doc.get("subject") or {}).get("digest") == digest:
                out.append(Descriptor(OCI_MANIFEST, ref, len(data), artifact_type=doc.get("artifactType")))
        return out


@dataclass
class FakeSource:
    rc: ReferrersRegistry

    def registry(self, host: str) -> ReferrersRegistry:
        return self.rc


@dataclass
class FakeClient:
    source: FakeSource


@pytest.fixture
def client() -> FakeClient:
    rc = ReferrersRegistry()
    modelkit = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()
    rc.put_manifest("team/m", "v1", modelkit, OCI_MANIFEST)
    return FakeClient(FakeSource(rc))


def test_auto_mode_uses_the_referrers_api_and_writes_no_index_tag(client: FakeClient) -> None:
    key = generate_key_pair()
    attestation = {"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://slsa.dev/provenance/v1",
                   "subject": [], "predicate": {"buildDefinition": {"buildType": "test"}}}
    result = sign_modelkit(client, "reg.test/team/m:v1", key, provenance=lambda pinned: attestation)
    assert result.mode == "referrers" and result.attestation
    rc = client.source.rc
    tags = {ref for (_, ref) in rc.manifests if not ref.startswith("sha256:")}
    assert tags == {"v1"}  # no sha256-<hex> index: the registry lists referrers itself
    verified = verify_modelkit(client, "reg.test/team/m:v1", key.public_key)
    assert verified.mode == "referrers" and verified.verified == 2  # cosign verify accepts attestation bundles too
    with pytest.raises(SignatureError) as info:
        verify_modelkit(client, "reg.test/team/m:v1", generate_key_pair().public_key)
    assert [line.split(":")[0] for line in info.value.failures] == ["wrong key", "wrong key"]


def test_a_tampered_bundle_blob_is_refused(client: FakeClient) -> None:
    key = generate_key_pair()
    sign_modelkit(client, "reg.test/team/m:v1", key)
    rc = client.source.rc
    [bundle_digest] = [d for d, data in rc.blobs.items() if b"dsseEnvelope" in data]
    rc.blobs[bundle_digest] = rc.blobs[bundle_digest].replace(b'"payloadType"', b'"payloadtype"')
    with pytest.raises(SignatureError) as info:
        verify_modelkit(client, "reg.test/team/m:v1", key.public_key)
    assert info.value.failures[0].startswith("tampered payload: ")


def _bundle(key, statement: dict, *, sigs: int = 1, keyid: str = "", payload_type: str = "application/vnd.in-toto+json",
            media_type: str = "application/vnd.dev.sigstore.bundle.v0.3+json", extra: dict | None = None) -> bytes:  # noqa: ANN001
    import base64

    from kitops_flows.signing.dsse import pae

    body = json.dumps(statement, separators=(",", ":")).encode()
    sig = base64.b64encode(key.sign(pae(payload_type, body))).decode()
    signature = {"sig": sig, **({"keyid": keyid} if keyid else {})}
    doc = {"mediaType": media_type, "verificationMaterial": {"publicKey": {"hint": key.public_key.hint}},
           "dsseEnvelope": {"payload": base64.b64encode(body).decode(), "payloadType": payload_type,
                            "signatures": [signature] * sigs}, **(extra or {})}
    return json.dumps(doc).encode()


def _statement(digest: str, **more: object) -> dict:
    return {"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {"sha256": digest.split(":")[1]}}],
            "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}, **more}


@pytest.mark.parametrize(("variant", "line"), [
    ({"sigs": 2}, "malformed: "),                                             # two DSSE signatures
    ({"keyid": "SHA256:not-this-key"}, "wrong key: "),                        # a keyid naming another key
    ({"payload_type": "application/json"}, "malformed: "),                    # payloadType is not in-toto
    # unparseable bundles do not count as bundles: cosign then reads the (absent) .sig tag
    ({"extra": {"unknownField": 1}}, "malformed: |unsigned: "),               # strict bundle parse
    ({"media_type": "application/vnd.dev.sigstore.bundle+json;version=0.2"}, "malformed: |unsigned: "),  # v0.2
    ({"statement_extra": {"extra": 1}}, "malformed: "),                       # a fifth top-level statement key
    ({"other_digest": True}, "payload for another digest: "),                 # signed statement about another digest
])
def test_bundle_rules_of_the_spec_each_refuse(client: FakeClient, variant: dict, line: str) -> None:
    from kitops_flows.signing.placement import SignatureRepository
    from kitops_flows.signing.target import resolve_target

    key = generate_key_pair()
    target = resolve_target(client, "reg.test/team/m:v1", "sign")
    digest = "sha256:" + "ab" * 32 if variant.pop("other_digest", False) else target.digest
    statement = _statement(digest, **variant.pop("statement_extra", {}))
    repo = SignatureRepository(client.source.rc, "team/m")
    repo.put_bundle(target.subject, _bundle(key, statement, **variant), "https://sigstore.dev/cosign/sign/v1",
                    "2026-01-02T03:04:05Z", api=True)
    with pytest.raises(SignatureError) as info:
        verify_modelkit(client, "reg.test/team/m:v1", key.public_key)
    expected = line.split("|")
    assert len(info.value.failures) == len(expected), info.value.failures
    assert all(f.startswith(e) for f, e in zip(info.value.failures, expected, strict=True)), info.value.failures


def test_attestation_of_another_predicate_type_is_not_enough(client: FakeClient) -> None:
    from kitops_flows.signing import verify_attestation

    key = generate_key_pair()
    attestation = {"predicate": {"buildDefinition": {}}, "predicateType": "https://slsa.dev/provenance/v1"}
    sign_modelkit(client, "reg.test/team/m:v1", key, provenance=lambda pinned: attestation)
    assert verify_attestation(client, "reg.test/team/m:v1", key.public_key).verified == 1
    with pytest.raises(SignatureError) as info:
        verify_attestation(client, "reg.test/team/m:v1", key.public_key, predicate_type="custom")
    assert all(f.startswith("other predicate: ") for f in info.value.failures) and len(info.value.failures) == 2
