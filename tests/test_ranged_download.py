"""Parallel ranged downloads of one blob against the real docker-registry, direct, through the counting
proxy (faults, a server that ignores Range) and through the long-haul link proxy.

Small part sizes make a 12-40 MiB blob several parts, so every path runs in seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from services import CountingProxy, RegistryServer
from test_registry_client import make_blob
from wan_proxy import WanProxy

from kitops_flows.errors import DigestMismatchError, NotFoundError
from kitops_flows.progress import ProgressReporter
from kitops_flows.registry import NO_RETRY, RegistryClient, RetryPolicy
from kitops_flows.registry.ranged import ParallelDownload, state_path

MiB = 1 << 20
# one_stream_above=0: always parallel, though loopback is fast (the probe's own test is test_ranged_units.py)
SMALL_PARTS = ParallelDownload(connections=4, min_size=4 * MiB, min_part=2 * MiB, max_part=2 * MiB,
                               one_stream_above=0)


def _push(registry: RegistryServer, tmp_path: Path, repo: str, size: int) -> tuple[Path, str]:
    path, digest = make_blob(tmp_path, size, f"src-{repo.replace('/', '-')}")
    with RegistryClient(registry.host, plain_http=True) as client:
        client.push_blob(repo, digest, size, lambda: open(path, "rb"))
    return path, digest


def _ranges(proxy: CountingProxy, digest: str) -> list[tuple[int, int]]:
    """(start, end) of every ranged GET of ``digest`` the proxy forwarded."""
    out = []
    for r in proxy.matching(digest, method="GET"):
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", r.headers.get("range", ""))
        if m:
            out.append((int(m[1]), int(m[2])))
    return out


def test_blob_is_fetched_in_parallel_parts_and_verified(registry: RegistryServer, tmp_path: Path,
                                                        proxy_factory: Callable[[str], CountingProxy]) -> None:
    size = 12 * MiB + 12345  # a short last part
    src, digest = _push(registry, tmp_path, "ranged/parts", size)
    proxy = proxy_factory(registry.host)
    dest = tmp_path / "ingest" / digest.split(":")[1]
    seen: list[int] = []
    reporter = ProgressReporter("pull", total=size, on_update=lambda _label, done, _total: seen.append(done))
    with RegistryClient(proxy.host, plain_http=True, parallel_download=SMALL_PARTS) as client:
        client.fetch_blob("ranged/parts", digest, size, dest, progress=reporter)
    assert dest.read_bytes() == src.read_bytes()
    assert not state_path(dest).exists()  # the part list goes once the blob verified
    ranges = sorted(_ranges(proxy, digest))
    assert ranges == [(i * 2 * MiB, min((i + 1) * 2 * MiB, size) - 1) for i in range(7)]  # each part once
    assert proxy.bytes_for(digest, method="GET") == size  # not a byte fetched twice
    assert max(seen) == size


def test_broken_part_resumes_from_its_last_byte(registry: RegistryServer, tmp_path: Path,
                                                proxy_factory: Callable[[str], CountingProxy]) -> None:
    size = 10 * MiB
    src, digest = _push(registry, tmp_path, "ranged/broken", size)
    proxy = proxy_factory(registry.host)
    proxy.truncate_next(1, after_bytes=MiB + 300_000, path_contains=digest, method="GET", after=2)
    dest = tmp_path / "dl"
    retry = RetryPolicy(base_delay=0.01, max_delay=0.05)
    with RegistryClient(proxy.host, plain_http=True, parallel_download=SMALL_PARTS, retry=retry) as client:
        client.fetch_blob("ranged/broken", digest, size, dest)
    assert dest.read_bytes() == src.read_bytes()
    assert [r.fault for r in proxy.matching(digest)].count("truncate") == 1
    # the whole 1 MiB block read before the break was kept; the retry asked for the rest of the part only
    resumed = [(start, end) for start, end in _ranges(proxy, digest) if start % (2 * MiB) == MiB]
    assert len(resumed) == 1 and all(end - start + 1 == MiB for start, end in resumed)
    assert proxy.bytes_for(digest, method="GET") <= size + 300_000  # at most the broken-off block again


def test_failed_download_resumes_per_part_in_a_new_client(registry: RegistryServer, tmp_path: Path,
                                                          proxy_factory: Callable[[str], CountingProxy]) -> None:
    size = 16 * MiB
    src, digest = _push(registry, tmp_path, "ranged/resume", size)
    proxy = proxy_factory(registry.host)
    proxy.fail_next(1, status=404, path_contains=digest, method="GET", after=3)  # the 4th part: a final error
    dest = tmp_path / "dl"
    one_at_a_time = ParallelDownload(connections=2, min_size=4 * MiB, min_part=2 * MiB, max_part=2 * MiB,
                                     one_stream_above=0)
    with RegistryClient(proxy.host, plain_http=True, parallel_download=one_at_a_time, retry=NO_RETRY) as client, \
            pytest.raises(NotFoundError):
        client.fetch_blob("ranged/resume", digest, size, dest)
    assert dest.stat().st_size == size and state_path(dest).exists()  # kept for the next attempt
    kept = json.loads(state_path(dest).read_text())["done"]
    assert len(kept) >= 2
    proxy.reset()
    with RegistryClient(proxy.host, plain_http=True, parallel_download=SMALL_PARTS) as client:
        client.fetch_blob("ranged/resume", digest, size, dest)
    assert dest.read_bytes() == src.read_bytes()
    assert proxy.bytes_for(digest, method="GET") == size - len(kept) * 2 * MiB  # only the parts the first run lacked
    assert not state_path(dest).exists()


def test_single_stream_prefix_is_kept_by_a_ranged_download(registry: RegistryServer, tmp_path: Path,
                                                           proxy_factory: Callable[[str], CountingProxy]) -> None:
    size = 8 * MiB
    src, digest = _push(registry, tmp_path, "ranged/prefix", size)
    dest = tmp_path / "dl"
    dest.write_bytes(src.read_bytes()[: 5 * MiB])  # what an interrupted one-stream download left
    proxy = proxy_factory(registry.host)
    with RegistryClient(proxy.host, plain_http=True, parallel_download=SMALL_PARTS) as client:
        client.fetch_blob("ranged/prefix", digest, size, dest)
    assert dest.read_bytes() == src.read_bytes()
    assert proxy.bytes_for(digest, method="GET") == 4 * MiB  # parts 0 and 1 were whole in the prefix


def test_registry_ignoring_range_gets_one_stream(registry: RegistryServer, tmp_path: Path,
                                                 proxy_factory: Callable[[str], CountingProxy]) -> None:
    size = 8 * MiB
    src, digest = _push(registry, tmp_path, "ranged/norange", size)
    proxy = proxy_factory(registry.host)
    proxy.ignore_range = True
    dest = tmp_path / "dl"
    with RegistryClient(proxy.host, plain_http=True, parallel_download=SMALL_PARTS) as client:
        client.fetch_blob("ranged/norange", digest, size, dest)
    assert dest.read_bytes() == src.read_bytes()
    assert not state_path(dest).exists()
    whole = [r for r in proxy.matching(digest, method="GET") if r.status == 200 and r.body_bytes == size]
    assert len(whole) == 1  # the fallback: one full stream


def test_corrupt_registry_copy_is_refused_and_removed(registry_factory: Callable[..., RegistryServer],
                                                      tmp_path: Path) -> None:
    reg = registry_factory()
    size = 8 * MiB
    _, digest = _push(reg, tmp_path, "ranged/corrupt", size)
    stored = reg.blob_path(digest)
    data = bytearray(stored.read_bytes())
    data[5 * MiB] ^= 0xFF
    stored.write_bytes(bytes(data))
    dest = tmp_path / "dl"
    with RegistryClient(reg.host, plain_http=True, parallel_download=SMALL_PARTS) as client, \
            pytest.raises(DigestMismatchError, match="corrupt"):
        client.fetch_blob("ranged/corrupt", digest, size, dest)
    assert not dest.exists() and not state_path(dest).exists()


def test_parallel_parts_over_a_long_haul_link(registry: RegistryServer, tmp_path: Path,
                                              wan_factory: Callable[..., WanProxy]) -> None:
    size = 24 * MiB
    src, digest = _push(registry, tmp_path, "ranged/wan", size)
    wan = wan_factory(registry.host, rate=10e6, rtt=0.03)
    dest = tmp_path / "dl"
    policy = ParallelDownload(connections=6, min_size=4 * MiB, min_part=2 * MiB, max_part=4 * MiB)
    with RegistryClient(wan.host, plain_http=True, parallel_download=policy) as client:
        client.fetch_blob("ranged/wan", digest, size, dest)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest.split(":")[1] == \
        hashlib.sha256(src.read_bytes()).hexdigest()
    assert wan.peak_connections >= 4  # the blob really went over several capped connections
    assert size <= wan.bytes_down < size + 200_000  # ranges, not repeated whole blobs


def test_small_blob_uses_one_request(registry: RegistryServer, tmp_path: Path,
                                     proxy_factory: Callable[[str], CountingProxy]) -> None:
    size = 3 * MiB
    src, digest = _push(registry, tmp_path, "ranged/small", size)
    proxy = proxy_factory(registry.host)
    with RegistryClient(proxy.host, plain_http=True, parallel_download=SMALL_PARTS) as client:
        client.fetch_blob("ranged/small", digest, size, tmp_path / "dl")
    assert [r.headers.get("range") for r in proxy.matching(digest, method="GET")] == [None]
