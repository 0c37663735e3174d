"""Packing straight to a registry (kitops_flows.stream_push, registry.stream_upload): no layer on disk, no tag
until complete, a re-run resumes. Real docker-registry (behind a bandwidth-capped link or a fault proxy where a
test needs time or faults) and moto's S3 server."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.registry import RegistryClient
from kitops_flows.registry.retry import RetryPolicy
from kitops_flows.registry.stream_upload import StreamingBlobUpload
from kitops_flows.store import LocalStore
from kitops_flows.stream_push import CACHE_FILE

pytestmark = pytest.mark.integration

MiB = 1 << 20
KITFILE = ("manifestVersion: 1.0.0\npackage: {name: stream}\nmodel: {name: m, path: model.bin}\n"
           "datasets:\n  - {name: small, path: data/small}\n  - {name: big, path: data/big}\n")


def _bucket(c: Any, name: str, objects: dict[str, bytes]) -> None:
    c.create_bucket(Bucket=name)
    for key, body in objects.items():
        c.put_object(Bucket=name, Key=key, Body=body)


def _ctx(root: Path, model: bytes = b"weights" * 1000) -> Path:
    root.mkdir(parents=True)
    (root / "Kitfile").write_text(KITFILE)
    (root / "model.bin").write_bytes(model)
    return root


def _du(*roots: Path) -> int:
    total = 0
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for f in files:
                with_size = os.path.join(dirpath, f)
                try:
                    total += os.lstat(with_size).st_size
                except FileNotFoundError:
                    pass
    return total


class _PeakDisk:
    """Samples the bytes under some directories every few ms while running."""

    def __init__(self, *roots: Path) -> None:
        self.roots, self.peak, self._stop = roots, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _du(*self.roots))
            time.sleep(0.002)

    def __enter__(self) -> _PeakDisk:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _du(*self.roots))


SOURCES = {"small": "s3://stream-src/small/", "big": "s3://stream-src/big/"}


def _objects(big_mb: int = 20) -> dict[str, bytes]:
    objs = {f"small/part-{i}.csv": f"{i},x\n".encode() * 100 for i in range(30)}
    objs |= {f"big/shard-{i}.bin": os.urandom(4 * MiB + i) for i in range(big_mb // 4)}
    return objs


def test_streaming_pack_never_writes_a_layer_to_disk(s3: Any, registry: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    c = s3.client()
    objects = _objects()
    _bucket(c, "stream-src", objects)
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    home = tmp_path / "home"
    kit = KitOpsClient(store=LocalStore(home), plain_http=True)
    ref = f"{registry.host}/stream/nodisk:v1"
    ctx = _ctx(tmp_path / "ctx")
    with _PeakDisk(home, tmpdir) as disk:
        desc = kit.pack(ctx, reference=ref, sources=SOURCES, push=True)  # S3 sources + push: streamed by default
    big = [l for l in desc.layers if l.path == "data/big"][0]
    assert big.size > 20 * MiB
    assert disk.peak < 256 * 1024, f"peak {disk.peak} bytes on disk while streaming {big.size} bytes"
    assert not any(kit.store.has_blob(l.digest) for l in desc.layers)
    assert _du(tmpdir) == 0

    # the registry holds exactly what a pack with a local copy produces, and it pulls and verifies
    local = KitOpsClient(store=LocalStore(tmp_path / "local"), plain_http=True)
    copy = local.pack(_ctx(tmp_path / "ctx2"), reference="stream/nodisk:v1", sources=SOURCES, record_lineage=False)
    assert [(l.digest, l.size, l.diff_id) for l in copy.layers] == [(l.digest, l.size, l.diff_id) for l in desc.layers]
    fresh = KitOpsClient(store=LocalStore(tmp_path / "fresh"), plain_http=True)
    pulled = fresh.pull(ref)
    assert pulled.digest == desc.digest and fresh.verify().ok
    out = fresh.unpack(ref, tmp_path / "out")
    for key, body in objects.items():
        assert (out.dest / "data" / key).read_bytes() == body, key
    # lineage went with it
    from kitops_flows.lineage import read_provenance

    assert read_provenance(fresh, ref)["subject"][0]["digest"]["sha256"] == desc.digest.split(":", 1)[1]


def _record_gets(session: Any) -> list[str]:
    keys: list[str] = []
    session.events.register("before-parameter-build.s3.GetObject", lambda params, **_: keys.append(params["Key"]))
    return keys


def test_a_rerun_reads_only_changed_s3_layers(s3: Any, registry: Any, tmp_path: Path) -> None:
    c = s3.client()
    _bucket(c, "stream-src", _objects(8))
    ref = f"{registry.host}/stream/rerun:v1"
    first = KitOpsClient(store=LocalStore(tmp_path / "h1"), plain_http=True).pack(
        _ctx(tmp_path / "c1"), reference=ref, sources=SOURCES, push=True)
    # a fresh worker (no cache): the tag's manifest says which layers are unchanged; only "small" changed
    c.put_object(Bucket="stream-src", Key="small/part-0.csv", Body=b"changed\n")
    session = boto3.session.Session()
    gets = _record_gets(session)
    kit = KitOpsClient(store=LocalStore(tmp_path / "h2"), plain_http=True, s3_session=session)
    second = kit.pack(_ctx(tmp_path / "c2"), reference=ref, sources=SOURCES, push=True)
    assert gets and all(k.startswith("small/") for k in gets), gets
    big1, big2 = ([l for l in d.layers if l.path == "data/big"][0] for d in (first, second))
    assert big1.digest == big2.digest and big1.diff_id == big2.diff_id
    assert second.digest != first.digest
    assert RegistryClient(registry.host, plain_http=True).manifest_digest("stream/rerun", "v1") == second.digest


def test_a_failed_stream_pack_leaves_no_tag_and_the_rerun_finishes(
        s3: Any, registry: Any, proxy_factory: Any, tmp_path: Path) -> None:
    c = s3.client()
    _bucket(c, "stream-src", _objects(12))
    proxy = proxy_factory(registry.host)
    ref = f"{proxy.host}/stream/fail:v1"
    home = tmp_path / "home"
    # S3 denies the third shard of the big layer: model and "small" are committed, "big" is half-sent
    session = boto3.session.Session()
    denied = {"n": 0}

    def deny(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] == "big/shard-2.bin":
            denied["n"] += 1
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    session.events.register("before-parameter-build.s3.GetObject", deny)
    kit = KitOpsClient(store=LocalStore(home), plain_http=True, s3_session=session)
    with pytest.raises(Exception, match=r"s3://stream-src/big/shard-2.bin: access denied"):
        kit.pack(_ctx(tmp_path / "c"), reference=ref, sources=SOURCES, push=True)
    assert denied["n"] >= 1
    rc = RegistryClient(registry.host, plain_http=True)
    assert rc.manifest_digest("stream/fail", "v1") is None
    assert not proxy.matching(path_contains="/manifests/", method="PUT")
    assert proxy.matching(path_contains="/blobs/uploads/", method="DELETE")  # the half-sent upload was cancelled
    assert _cache_entries(home) == 1  # "small" was committed and remembered

    session2 = boto3.session.Session()
    gets = _record_gets(session2)
    kit2 = KitOpsClient(store=LocalStore(home), plain_http=True, s3_session=session2)
    desc = kit2.pack(_ctx(tmp_path / "c2"), reference=ref, sources=SOURCES, push=True)
    assert gets and all(k.startswith("big/") for k in gets), "the committed layer was read again"
    assert rc.manifest_digest("stream/fail", "v1") == desc.digest


def test_a_transient_chunk_failure_resumes_from_the_registrys_offset(
        registry: Any, proxy_factory: Any) -> None:
    proxy = proxy_factory(registry.host)
    rc = RegistryClient(proxy.host, plain_http=True, retry=RetryPolicy(base_delay=0.01, max_delay=0.05))
    data = os.urandom(5 * MiB + 12345)
    proxy.fail_next(1, status=503, path_contains="/blobs/uploads/", method="PATCH")
    with StreamingBlobUpload(rc, "stream/chunks", chunk_size=1 * MiB) as up:
        for start in range(0, len(data), 777_777):  # odd write sizes
            up.write(data[start:start + 777_777])
        desc = up.finish()
    assert desc.digest == "sha256:" + hashlib.sha256(data).hexdigest() and desc.size == len(data)
    assert [r.status for r in proxy.matching(method="PATCH")].count(503) == 1
    assert proxy.matching(path_contains="/blobs/uploads/", method="GET")  # asked where to resume
    got = io.BytesIO()
    with rc.open_blob("stream/chunks", desc.digest, desc.size) as f:
        got.write(f.read())
    assert got.getvalue() == data


def test_monolithic_registries_get_one_streamed_patch(registry: Any, proxy_factory: Any) -> None:
    proxy = proxy_factory(registry.host)
    rc = RegistryClient(proxy.host, plain_http=True)
    data = os.urandom(3 * MiB + 1)
    with StreamingBlobUpload(rc, "stream/mono", chunk_size=MiB, mode="monolithic") as up:
        up.write(data)
        desc = up.finish()
    assert len(proxy.matching(method="PATCH")) == 1
    assert rc.blob_exists("stream/mono", desc.digest)
    with rc.open_blob("stream/mono", desc.digest, desc.size) as f:
        assert f.read() == data
    # a producer that fails mid-way commits nothing
    with pytest.raises(ValueError), StreamingBlobUpload(rc, "stream/mono", chunk_size=MiB) as up:
        up.write(b"x" * (2 * MiB))
        raise ValueError("producer failed")
    assert not rc.blob_exists("stream/mono", "sha256:" + hashlib.sha256(b"x" * (2 * MiB)).hexdigest())


def _cache_entries(home: Path) -> int:
    import json

    try:
        return len(json.loads((home / CACHE_FILE).read_text()))
    except (FileNotFoundError, ValueError):
        return 0


@pytest.fixture
def slow_registry(registry: Any, wan_factory: Any) -> Iterator[Any]:
    yield wan_factory(registry.host, rate=4e6, rtt=0.002)  # 4 MB/s per connection: a 24 MiB layer takes ~6 s


def test_killed_stream_pack_leaves_no_tag_and_the_rerun_resumes(
        s3: Any, registry: Any, slow_registry: Any, tmp_path: Path) -> None:
    c = s3.client()
    objects = _objects(24)
    _bucket(c, "stream-src", objects)
    home = tmp_path / "home"
    ref = f"{slow_registry.host}/stream/killed:v1"
    ctx = _ctx(tmp_path / "ctx")
    args = [sys.executable, "-m", "kitops_flows.cli", "pack", str(ctx), "-t", ref, "--push", "--plain-http",
            "--source", "small=" + SOURCES["small"], "--source", "big=" + SOURCES["big"]]
    proc = subprocess.Popen(args, env={**os.environ, "KITOPS_HOME": str(home)}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _cache_entries(home) < 1:  # the "small" layer is committed; "big" is on its way
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the first layer never finished"
        time.sleep(0.005)
    time.sleep(0.5)
    assert proc.poll() is None, "the pack finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rc = RegistryClient(registry.host, plain_http=True)
    assert rc.manifest_digest("stream/killed", "v1") is None

    session = boto3.session.Session()
    gets = _record_gets(session)
    kit = KitOpsClient(store=LocalStore(home), plain_http=True, s3_session=session)
    desc = kit.pack(ctx, reference=f"{registry.host}/stream/killed:v1", sources=SOURCES, push=True)
    assert gets and all(k.startswith("big/") for k in gets), "the finished layer was read again"
    assert rc.manifest_digest("stream/killed", "v1") == desc.digest
    fresh = KitOpsClient(store=LocalStore(tmp_path / "fresh"), plain_http=True)
    fresh.pull(f"{registry.host}/stream/killed:v1")
    assert fresh.verify().ok


def test_layer_cache_keeps_the_newest_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kitops_flows import stream_push
    from kitops_flows.kitfile import LayerInfo
    from kitops_flows.store import Descriptor

    monkeypatch.setattr(stream_push, "CACHE_ENTRIES", 3)
    cache = stream_push.LayerCache(LocalStore(tmp_path / "home"))
    assert cache.get("sha256:none") is None
    for i in range(5):
        d = f"sha256:{i:064x}"
        cache.put(f"fp{i}", Descriptor("application/x", d, i), LayerInfo(digest=d, diff_id=d))
    cache.put("fp2", Descriptor("application/x", f"sha256:{2:064x}", 2), LayerInfo(digest="", diff_id="x"))
    assert [cache.get(f"fp{i}") is not None for i in range(5)] == [False, False, True, True, True]
    assert cache.get("fp4") == (f"sha256:{4:064x}", 4, f"sha256:{4:064x}")
    (tmp_path / "home" / CACHE_FILE).write_text("not json")  # a damaged hint file is no hint, not an error
    assert cache.get("fp4") is None


def test_streamed_pack_honours_immutable_tags_and_same_content_keeps_its_digest(
        s3: Any, registry: Any, tmp_path: Path) -> None:
    from kitops_flows.errors import TagExistsError

    c = s3.client()
    _bucket(c, "stream-src", _objects(4))
    ref = f"{registry.host}/stream/immutable:v1"
    first = KitOpsClient(store=LocalStore(tmp_path / "h1"), plain_http=True, immutable_tags=True).pack(
        _ctx(tmp_path / "c1"), reference=ref, sources=SOURCES, push=True)
    # same content from a fresh worker: same manifest (idempotent), so the immutable tag needs no move
    again = KitOpsClient(store=LocalStore(tmp_path / "h2"), plain_http=True, immutable_tags=True).pack(
        _ctx(tmp_path / "c2"), reference=ref, sources=SOURCES, push=True)
    assert again.digest == first.digest
    c.put_object(Bucket="stream-src", Key="small/new.csv", Body=b"new\n")
    with pytest.raises(TagExistsError, match=r"stream/immutable:v1 already points at " + first.digest):
        KitOpsClient(store=LocalStore(tmp_path / "h3"), plain_http=True, immutable_tags=True).pack(
            _ctx(tmp_path / "c3"), reference=ref, sources=SOURCES, push=True)
    assert RegistryClient(registry.host, plain_http=True).manifest_digest("stream/immutable", "v1") == first.digest


def test_pack_and_push_streams_and_reports_what_the_push_changed(s3: Any, registry: Any, tmp_path: Path) -> None:
    from kitops_flows.idempotent import pack_and_push

    c = s3.client()
    _bucket(c, "stream-src", _objects(4))
    ref = f"{registry.host}/stream/outcome:nightly"
    kit = KitOpsClient(store=LocalStore(tmp_path / "h1"), plain_http=True)
    first = pack_and_push(kit, _ctx(tmp_path / "c1"), reference=ref, sources=SOURCES, push=True, local_copy=False)
    assert first.packed and first.push is not None
    assert first.push.new_to_repository and first.push.moved_tags == ("nightly",)
    assert first.push.blobs_uploaded == 4  # model, two S3 layers, config
    assert not any(kit.store.has_blob(l.digest) for l in first.descriptor.layers)  # no local copy
    worker = KitOpsClient(store=LocalStore(tmp_path / "h2"), plain_http=True)  # a fresh worker, same inputs
    again = pack_and_push(worker, _ctx(tmp_path / "c2"), reference=ref, sources=SOURCES, push=True, local_copy=False)
    assert again.descriptor.digest == first.descriptor.digest and again.push is not None
    assert not again.push.changed and again.push.blobs_uploaded == 0


def test_pack_and_push_streams_past_an_ephemeral_store_unless_asked_to_keep_a_copy(
        s3: Any, registry: Any, tmp_path: Path) -> None:
    from contextlib import ExitStack

    from kitops_flows.idempotent import pack_and_push
    from kitops_flows.settings import RegistrySettings

    c = s3.client()
    objects = _objects(4)
    _bucket(c, "stream-src", objects)
    settings = RegistrySettings.parse(f"http://{registry.host}", kitops_home="ephemeral")  # as any plugin sets it
    ref = f"{registry.host}/stream/ephemeral:v1"
    with ExitStack() as cleanup:
        kit = settings.client(cleanup=cleanup)
        out = pack_and_push(kit, _ctx(tmp_path / "c1"), reference=ref, sources=SOURCES, push=True)
        assert out.push is not None and out.push.blobs_uploaded == 4  # model, two S3 layers, config
        assert not any(kit.store.has_blob(l.digest) for l in out.descriptor.layers)  # the store was only passed by

        # asked for, the copy is kept: same layers, now in the (also ephemeral) store
        keeper = settings.client(cleanup=cleanup)
        kept = pack_and_push(keeper, _ctx(tmp_path / "c2"), reference=f"{registry.host}/stream/ephemeral-kept:v1",
                             sources=SOURCES, push=True, local_copy=True)
        assert [l.digest for l in kept.descriptor.layers] == [l.digest for l in out.descriptor.layers]
        assert all(keeper.store.has_blob(l.digest, l.size) for l in kept.descriptor.layers)

    # the streamed ModelKit pulls, verifies and unpacks to the S3 objects
    fresh = KitOpsClient(store=LocalStore(tmp_path / "fresh"), plain_http=True)
    assert fresh.pull(ref).digest == out.descriptor.digest and fresh.verify().ok
    dest = fresh.unpack(ref, tmp_path / "out").dest
    for key, body in objects.items():
        assert (dest / "data" / key).read_bytes() == body, key
