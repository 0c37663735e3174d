"""Blob GETs redirected to object storage: Debian's docker-registry on its S3 driver (moto), ``redirect`` on.

Chain: registry --(its S3 API calls)--> long-haul link --> counting proxy --> moto. The registry hands out
presigned URLs for the link's address, so a pull's blob bytes really come from "S3", across a capped link,
and the counting proxy sees (and keeps the headers of) every request that reaches S3: the registry's own
signed calls and the clients' presigned GETs.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from services import CountingProxy, MotoS3Server, RegistryServer, S3Storage
from wan_proxy import WanProxy

from kitops_flows.api import KitOpsClient
from kitops_flows.registry import RegistryClient, RegistryCredentials
from kitops_flows.store import LocalStore

MiB = 1 << 20


@pytest.fixture
def s3_registry(s3: MotoS3Server, tmp_path: Path, proxy_factory: Callable[[str], CountingProxy],
                wan_factory: Callable[..., WanProxy]) -> tuple[RegistryServer, CountingProxy, WanProxy]:
    """An htpasswd registry storing blobs in moto, redirecting blob GETs there; (registry, S3 proxy, link)."""
    s3.client().create_bucket(Bucket="registry-blobs")
    at_s3 = proxy_factory(s3.endpoint_url.removeprefix("http://"))
    link = wan_factory(at_s3.host, rate=20e6, rtt=0.01)
    registry = RegistryServer(tmp_path / "s3-registry", username="ciuser", password="s3-" + os.urandom(8).hex(),
                              s3=S3Storage(endpoint_url=link.url, bucket="registry-blobs"))
    registry.start()
    yield registry, at_s3, link
    registry.stop()


def _context(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    with open(root / "model.bin", "wb") as f:
        for _ in range(40):
            f.write(os.urandom(MiB))
    (root / "data" / "rows.csv").write_text("a,b\n1,2\n")
    (root / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: redirect}\n"
                                  "model: {name: m, path: model.bin}\ndatasets:\n  - {name: rows, path: data}\n")
    return root


def test_pull_follows_redirect_to_s3_in_parallel_ranges_without_our_credentials(
        s3_registry: tuple[RegistryServer, CountingProxy, WanProxy], tmp_path: Path) -> None:
    registry, at_s3, link = s3_registry
    assert registry.username is not None and registry.password is not None
    creds = RegistryCredentials(username=registry.username, password=registry.password)
    ref = f"{registry.host}/team/redirect:v1"
    packer = KitOpsClient(store=LocalStore(tmp_path / "home"), plain_http=True, credentials=creds)
    desc = packer.pack(_context(tmp_path / "ctx"), reference=ref, record_lineage=False)
    packer.push(ref)

    offset = registry.log_offset()
    with RegistryClient(registry.host, credentials=creds, plain_http=True) as client:
        # a HEAD answered 307 (to S3) means "present": not followed (S3 would refuse a HEAD presigned for GET)
        assert client.blob_exists("team/redirect", desc.layer("model").digest)
    heads = [e for e in registry.access_log(since=offset) if e.method == "HEAD" and "/blobs/" in e.path]
    assert [e.status for e in heads][-1] == 307  # (after the 401 that starts the auth dance)

    at_s3.reset()
    link.reset_counters()
    offset = registry.log_offset()
    puller = KitOpsClient(store=LocalStore(tmp_path / "pulled"), plain_http=True, credentials=creds)
    pulled = puller.pull(ref)
    assert pulled.digest == desc.digest
    assert puller.verify().ok

    blob_gets = [e for e in registry.access_log(since=offset) if e.method == "GET" and "/blobs/" in e.path]
    assert blob_gets and {e.status for e in blob_gets} == {307}  # the registry served no blob byte itself
    presigned = [r for r in at_s3.requests if "X-Amz-Signature=" in r.path]
    model = desc.layer("model")
    model_parts = [r for r in presigned if model.digest.split(":")[1] in r.path]
    assert len(model_parts) >= 5 and all(r.headers.get("range", "").startswith("bytes=") for r in model_parts)
    assert sum(r.body_bytes for r in model_parts) == model.size  # each byte of the big layer fetched once
    assert link.peak_connections >= 4  # the parts went over several capped connections at once
    # our credentials never reached S3; the only Authorization there is the registry's own AWS signature
    assert presigned and all("authorization" not in r.headers for r in presigned)
    basic = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    for r in at_s3.requests:
        for value in r.headers.values():
            assert registry.password not in value and basic not in value
    signed = [r for r in at_s3.requests if "authorization" in r.headers]
    assert all(r.headers["authorization"].startswith("AWS4-HMAC-SHA256 ") for r in signed)
