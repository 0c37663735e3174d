"""Uploads and downloads reuse HTTP connections: counted at a long-haul link proxy (tests/wan_proxy.py), where
every new connection costs a handshake round trip and starts a fresh per-connection bandwidth cap."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from services import RegistryServer
from wan_proxy import WanProxy

from kitops_flows.api import KitOpsClient
from kitops_flows.store import LocalStore


def _four_layers(ctx: Path) -> Path:
    for d in ("data", "src", "docs"):
        (ctx / d).mkdir(parents=True)
    (ctx / "model.bin").write_bytes(os.urandom(3 << 20))
    (ctx / "data" / "rows.bin").write_bytes(os.urandom(1 << 20))
    (ctx / "src" / "train.py").write_text("print('train')\n")
    (ctx / "docs" / "README.md").write_text("# model\n")
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: reuse}\nmodel: {name: m, path: model.bin}\n"
                                 "datasets:\n  - {name: d, path: data}\ncode:\n  - {path: src}\ndocs:\n  - {path: docs}\n")
    return ctx


def test_push_and_pull_reuse_one_connection_per_worker(registry: RegistryServer, tmp_path: Path,
                                                        wan_factory: Callable[..., WanProxy]) -> None:
    wan = wan_factory(registry.host, rate=0, rtt=0.005)
    ref = f"{wan.host}/reuse/kit:v1"
    packer = KitOpsClient(store=LocalStore(tmp_path / "home"), plain_http=True, concurrency=1)
    packer.pack(_four_layers(tmp_path / "ctx"), reference="reuse/kit:v1", record_lineage=False)
    packer.push("reuse/kit:v1", ref)  # 5 blobs (HEAD, POST, PUT each), manifest HEADs and PUTs
    assert wan.connections == 1

    wan.reset_counters()
    puller = KitOpsClient(store=LocalStore(tmp_path / "pulled"), plain_http=True, concurrency=1)
    puller.pull(ref)
    assert puller.verify().ok
    assert wan.connections == 1

    wan.reset_counters()
    parallel = KitOpsClient(store=LocalStore(tmp_path / "pulled-4"), plain_http=True, concurrency=4)
    parallel.pull(ref)
    assert 1 <= wan.connections <= 4  # one per worker at most, each reused for its blobs


def test_the_clients_upload_policy_sets_the_chunk_size(registry: RegistryServer, tmp_path: Path) -> None:
    """``KitOpsClient(upload_policy=...)`` replaces kit's table: 1 MiB chunks give one PATCH per MiB, and the
    pushed ModelKit is whole (a fresh client pulls and verifies it)."""
    from services import CountingProxy

    from kitops_flows.registry import UploadPolicy

    proxy = CountingProxy(registry.host).start()
    try:
        ref = f"{proxy.host}/chunks/kit:v1"
        kit = KitOpsClient(store=LocalStore(tmp_path / "home"), plain_http=True,
                           upload_policy=UploadPolicy(chunk_size=1 << 20))
        desc = kit.pack(_four_layers(tmp_path / "ctx"), reference=ref, record_lineage=False)
        kit.push(ref)
        patches = [r for r in proxy.requests if r.method == "PATCH"]
        # chunked from 1 MiB up: the 3 MiB model and the 1 MiB dataset (+ tar headers) in 1 MiB PATCHes
        expected = sum(-(-lay.size // (1 << 20)) for lay in desc.layers if lay.size >= 1 << 20)
        assert len(patches) == expected >= 4
        puller = KitOpsClient(store=LocalStore(tmp_path / "pulled"), plain_http=True)
        puller.pull(ref)
        assert puller.verify().ok
    finally:
        proxy.stop()
