"""Chunked uploads honour the registry's OCI-Chunk-Min-Length (OCI distribution 1.1), checked against the
scripted server of test_registry_protocol.py (docker-registry 2.8 does not send the header)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_registry_protocol import Reply, Scripted, Seen, sequence

from kitops_flows.registry import RegistryClient, UploadPolicy


@pytest.fixture
def server() -> Iterator[Scripted]:
    s = Scripted().start()
    yield s
    s.stop()


@pytest.mark.parametrize(("advertised", "chunks"), [("1500", [1500, 1000]), ("", [1000, 1000, 500]),
                                                     ("junk", [1000, 1000, 500]), ("600", [1000, 1000, 500])])
def test_chunks_are_at_least_the_registrys_minimum(server: Scripted, tmp_path: Path, advertised: str,
                                                   chunks: list[int]) -> None:
    data = b"y" * 2500
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = tmp_path / "blob"
    path.write_bytes(data)
    received: list[int] = []

    def patch(req: Seen) -> Reply:
        start, end = map(int, req.headers["Content-Range"].split("-"))
        received.append(req.body_len)
        return 202, {"Location": f"/v2/r/blobs/uploads/s{len(received)}", "Range": f"0-{end}"}, b""

    started = {"Location": "/v2/r/blobs/uploads/s0"} | ({"OCI-Chunk-Min-Length": advertised} if advertised else {})
    server.on("HEAD", r"/v2/r/blobs/.*", sequence((404, {}, b"")))
    server.on("POST", "/v2/r/blobs/uploads/", sequence((202, started, b"")))
    server.on("PATCH", r"/v2/r/blobs/uploads/s\d+", patch)
    server.on("PUT", r"/v2/r/blobs/uploads/s\d+", sequence((201, {}, b"")))
    client = RegistryClient(server.host, plain_http=True, upload_policy=UploadPolicy(chunk_size=1000))
    assert client.push_blob("r", digest, len(data), lambda: open(path, "rb"))
    assert received == chunks
