"""WriteBehind (pack's hashing and writing on a thread): same bytes in the same order, buffers the producer
reuses are copied, failures reach the producer, early writeback syncs the file, and no thread outlives it."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from pathlib import Path

import pytest

from kitops_flows import writebehind
from kitops_flows.pack import pack
from kitops_flows.store import LocalStore, StoreError
from kitops_flows.writebehind import WriteBehind


class _Collect:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.chunks.append(bytes(data))
        return len(data)


class _FailAfter:
    def __init__(self, n: int) -> None:
        self.left = n

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.left == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.left -= 1
        return len(data)


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name == "kitops-write-behind"}


def test_order_and_reused_buffers() -> None:
    sink = _Collect()
    buf = bytearray(4)
    with WriteBehind(sink, depth=2) as behind:
        for i in range(200):
            buf[:] = i.to_bytes(4, "big")  # the producer reuses its buffer right after write()
            assert behind.write(memoryview(buf)) == 4
        behind.write(b"end")
        behind.write(b"")
    assert sink.chunks == [i.to_bytes(4, "big") for i in range(200)] + [b"end"]
    assert not _threads()


def test_worker_failure_reaches_the_producer() -> None:
    behind = WriteBehind(_FailAfter(3), depth=1)
    with pytest.raises(OSError, match="No space left"):
        for _ in range(100):  # a producer blocked on the full queue is woken, and the next write raises
            behind.write(b"x" * 10)
    with pytest.raises(OSError, match="No space left"):
        behind.close()
    assert not _threads()


def test_failure_seen_at_close() -> None:
    behind = WriteBehind(_FailAfter(0))
    behind.write(b"x")
    with pytest.raises(OSError, match="No space left"):
        behind.close()
    with pytest.raises(ValueError, match="closed"):
        behind.write(b"y")


def test_body_error_wins_over_worker_error() -> None:
    with pytest.raises(RuntimeError, match="walk failed"), WriteBehind(_FailAfter(0)) as behind:
        behind.write(b"x")
        raise RuntimeError("walk failed")
    assert not _threads()


def test_early_writeback_covers_each_range_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``sync_every`` bytes the kernel is asked to start writing exactly the bytes since the last request
    (no device flush per request: that is the store's one final fsync)."""
    asked: list[tuple[int, int, int]] = []
    real = os.posix_fadvise
    monkeypatch.setattr(writebehind, "_FADVISE",
                        lambda fd, offset, length, advice: (asked.append((offset, length, advice)),
                                                            real(fd, offset, length, advice)))
    monkeypatch.setattr(writebehind.os, "fdatasync", lambda fd: pytest.fail("no fdatasync per interval"))
    with open(tmp_path / "blob", "wb", buffering=0) as f, WriteBehind(f, sync_fd=f.fileno(), sync_every=1000) as behind:
        for _ in range(10):
            behind.write(b"y" * 450)
    assert asked == [(0, 1350, os.POSIX_FADV_DONTNEED), (1350, 1350, os.POSIX_FADV_DONTNEED),
                     (2700, 1350, os.POSIX_FADV_DONTNEED)]
    assert (tmp_path / "blob").read_bytes() == b"y" * 4500

    monkeypatch.setattr(writebehind, "_FADVISE", None)  # a platform without posix_fadvise (macOS): writes only
    with open(tmp_path / "mac", "wb") as f, WriteBehind(f, sync_fd=f.fileno(), sync_every=10) as behind:
        behind.write(b"z" * 100)
    assert (tmp_path / "mac").read_bytes() == b"z" * 100


def test_pack_through_write_behind_matches_and_cleans_up(tmp_path: Path) -> None:
    """A real pack: the blob's digest is the sha256 of its bytes, and a full disk leaves no ingest file."""
    ctx = tmp_path / "ctx"
    (ctx / "data").mkdir(parents=True)
    for i in range(300):
        (ctx / "data" / f"f{i:03}.bin").write_bytes(os.urandom(3000 + i))
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: t}\ndatasets:\n  - {name: d, path: data}\n")
    store = LocalStore(tmp_path / "home")
    desc = pack(store, ctx, reference="t/m:v1")
    layer = desc.layers[0]
    data = store.blob_path(layer.digest).read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == layer.digest and len(data) == layer.size

    class Full:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    other = LocalStore(tmp_path / "full")
    real_init = WriteBehind.__init__

    def failing_init(self: WriteBehind, sink: object, **kw: object) -> None:
        real_init(self, Full(sink), **kw)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(WriteBehind, "__init__", failing_init)
        with pytest.raises(StoreError, match="space"):
            pack(other, ctx, reference="t/m:v1")
    ingest = other.ingest_dir
    assert not ingest.exists() or not [p for p in ingest.iterdir() if p.name.startswith("ingest-")]
    assert not _threads()
