"""kitops_flows.s3.parallel.BoundedPool on its own: the memory cap, the first failure, cancel.

Counters, not clocks: calls are made to meet with barriers and events (their timeouts are deadlock
guards, never reached when the pool is right). The pool against moto S3 is in test_s3_write.py.
"""

from __future__ import annotations

import threading

import pytest

from kitops_flows.s3.parallel import BoundedPool

GUARD = 30  # seconds


class _Held:
    """Bytes loaded and not yet sent, counted by the calls themselves (independent of the pool's count)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = 0

    def load(self, size: int) -> bytes:
        with self.lock:
            self.now += size
            self.peak = max(self.peak, self.now)
        return b"x" * size

    def sent(self, body: bytes) -> None:
        with self.lock:
            self.now -= len(body)


def test_bytes_held_never_exceed_the_cap_while_calls_overlap() -> None:
    pool = BoundedPool(workers=2, max_bytes=300, max_pending=100)
    held, sent = _Held(), []
    pair = threading.Barrier(2, timeout=GUARD)  # calls go two by two: both workers busy at once

    def send(body: bytes) -> None:
        pair.wait()
        sent.append(len(body))
        held.sent(body)

    for _ in range(20):
        pool.submit_bytes(100, lambda: held.load(100), send)
    pool.wait()
    pool.close()
    assert len(sent) == 20 and held.now == 0
    assert 200 <= held.peak <= 300 and pool.peak_bytes == 300  # the cap is what stopped the reading
    assert not pair.broken


def test_pending_items_are_capped_too() -> None:
    pool = BoundedPool(workers=2, max_bytes=1 << 30, max_pending=3)
    for _ in range(30):
        pool.submit_bytes(1, lambda: b"x", lambda body: None)
    pool.wait()
    pool.close()
    assert 1 <= pool.peak_items <= 3


def test_an_item_larger_than_the_cap_goes_alone() -> None:
    pool = BoundedPool(workers=4, max_bytes=10)
    held = _Held()
    for size in (4, 50, 4):
        pool.submit_bytes(size, lambda size=size: held.load(size), held.sent)
    pool.wait()
    pool.close()
    assert held.peak == 50 and pool.peak_bytes == 10


def test_the_first_failure_stops_what_is_queued_and_is_raised_by_wait_and_submit() -> None:
    pool = BoundedPool(workers=1, max_bytes=100, max_pending=10)
    go, ran = threading.Event(), []

    def fail(_: object) -> None:
        go.wait(GUARD)
        raise OSError("first")

    pool.submit_bytes(1, lambda: None, fail)
    for i in range(3):  # queued behind the failing call on the only worker
        pool.submit_bytes(1, lambda: None, lambda _, i=i: ran.append(i))
    go.set()
    with pytest.raises(OSError, match="first"):
        pool.wait()
    with pytest.raises(OSError, match="first"):
        pool.submit(lambda: ran.append(99))
    assert isinstance(pool.cancel(), OSError)
    pool.close()
    assert ran == []  # nothing queued started after the failure


def test_a_load_failure_gives_the_room_back() -> None:
    pool = BoundedPool(workers=1, max_bytes=10)

    def bad() -> bytes:
        raise ValueError("bytes changed")

    with pytest.raises(ValueError, match="bytes changed"):
        pool.submit_bytes(10, bad, lambda body: None)
    pool.submit_bytes(10, lambda: b"x" * 10, lambda body: None)  # would wait forever if the room were lost
    pool.wait()
    pool.close()


def test_cancel_waits_for_the_calls_already_running() -> None:
    pool = BoundedPool(workers=2, max_bytes=100)
    started, release, finished = threading.Barrier(3, timeout=GUARD), threading.Event(), []

    def slow(_: object) -> None:
        started.wait()
        release.wait(GUARD)
        finished.append(1)

    pool.submit_bytes(1, lambda: None, slow)
    pool.submit_bytes(1, lambda: None, slow)
    started.wait()  # both calls are running
    seen_at_return: list[int] = []
    canceller = threading.Thread(target=lambda: (pool.cancel(), seen_at_return.append(len(finished))))
    canceller.start()
    while not pool._stopped:  # cancel has begun (the attribute is set first); then let the calls end
        threading.Event().wait(0.001)
    release.set()
    canceller.join(GUARD)
    pool.close()
    assert seen_at_return == [2]
    with pytest.raises(RuntimeError, match="cancelled"):
        pool.submit(lambda: None)
