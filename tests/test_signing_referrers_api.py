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
