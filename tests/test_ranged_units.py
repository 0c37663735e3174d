"""RangedDownload with in-memory sources: how many connections it opens, and that the result verifies.

A fast first connection (nothing caps it: loopback, a LAN) keeps the blob on that one connection; a slow
one (a capped long-haul link) brings in the others.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kitops_flows.registry.ranged import ParallelDownload, RangedDownload

MiB = 1 << 20
DATA = os.urandom(24 * MiB)
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


class _Body:
    def __init__(self, data: bytes, delay: float) -> None:
        self._data, self._delay = data, delay

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        for i in range(0, len(self._data), chunk_size):
            if self._delay:
                time.sleep(self._delay)
            yield self._data[i:i + chunk_size]

    def close(self) -> None:
        pass


class _Tracker:
    def __init__(self) -> None:
        self.done = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n


def _download(dest: Path, delay: float) -> RangedDownload:
    policy = ParallelDownload(connections=4, min_size=4 * MiB, min_part=2 * MiB, max_part=2 * MiB,
                              one_stream_above=20e6, probe_bytes=2 * MiB)

    def open_range(start: int, end: int) -> _Body:
        return _Body(DATA[start:end + 1], delay)

    def retrying(fn: Callable[[], None]) -> None:
        fn()

    tracker = _Tracker()
    download = RangedDownload(dest, DIGEST, len(DATA), policy, open_range, retrying, tracker, "blob x")
    download.run()
    assert dest.read_bytes() == DATA and tracker.done == len(DATA)
    return download


def test_fast_first_connection_keeps_the_blob_on_it(tmp_path: Path) -> None:
    download = _download(tmp_path / "fast", delay=0)
    assert download.connections_used == 1


def test_slow_first_connection_brings_in_the_others(tmp_path: Path) -> None:
    download = _download(tmp_path / "slow", delay=0.1)  # 1 MiB per 0.1 s: about 10 MB/s a connection
    assert download.connections_used == 4


def test_run_killed_as_the_file_grows_leaves_a_part_list_so_zeros_are_never_taken_for_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill between growing the ingest file and writing its part list used to leave a full-size
    file of zeros with no list; the next run took it for a single-stream prefix, every part "done",
    and the hash failed (so the whole blob came again). The list is now written before the file grows."""
    import kitops_flows.registry.ranged as ranged

    dest = tmp_path / "blob"

    def killed(fd: int, size: int) -> None:
        os.ftruncate(fd, size)  # the file has grown ...
        raise KeyboardInterrupt  # ... and the process dies before anything else

    monkeypatch.setattr(ranged, "_preallocate", killed)
    with pytest.raises(KeyboardInterrupt):
        _download(dest, delay=0)
    assert dest.stat().st_size == len(DATA)
    assert ranged.state_path(dest).exists()  # so the next run knows no part is done yet

    monkeypatch.undo()
    fetched: list[tuple[int, int]] = []
    policy = ParallelDownload(connections=1, min_size=4 * MiB, min_part=2 * MiB, max_part=2 * MiB)

    def open_range(start: int, end: int) -> _Body:
        fetched.append((start, end))
        return _Body(DATA[start:end + 1], 0)

    download = RangedDownload(dest, DIGEST, len(DATA), policy, open_range, lambda fn: fn(), _Tracker(), "blob x")
    download.run()
    assert dest.read_bytes() == DATA
    assert not download.resumed and sum(e - s + 1 for s, e in fetched) == len(DATA)  # no part trusted, each fetched once
