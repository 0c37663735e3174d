"""A few worker threads for S3 calls, with the memory they hold capped and the first failure stopping the rest.

``S3PrefixWriter`` uploads thousands of small files: one at a time, every PUT waits for the previous
round trip. The layer is a sequential tar stream, so the bytes are read (and verified) in the
caller's thread, and only the call goes to a worker::

    pool = BoundedPool(workers=8, max_bytes=64 << 20)
    for key, reader, size in files:
        pool.submit_bytes(size, lambda: reader.read(size), lambda body: s3.put_object(..., Body=body))
    pool.wait()      # every call done; raises the first failure
    ...
    pool.cancel()    # the error path: drop what has not started, wait for what has
    pool.close()

``submit_bytes`` waits for room *before* loading, so the bytes read and not yet sent never exceed
``max_bytes`` (one item larger than the cap goes alone), and at most ``max_pending`` items wait at a
time, so memory stays flat whatever the number of files. boto3 clients are thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class BoundedPool:
    """Run calls on ``workers`` threads; ``peak_bytes``/``peak_items`` record the most ever held at once."""

    def __init__(self, workers: int, max_bytes: int, max_pending: int | None = None) -> None:
        if workers < 1 or max_bytes < 1:
            raise ValueError(f"BoundedPool needs workers >= 1 and max_bytes >= 1 (got {workers}, {max_bytes})")
        self.workers, self.max_bytes = workers, max_bytes
        self.max_pending = max_pending or 2 * workers  # a queue deep enough to keep every worker busy
        self._cond = threading.Condition()
        self._executor: ThreadPoolExecutor | None = None  # threads only once there is work
        self._items = 0  # submitted and not finished (queued or running)
        self._bytes = 0  # bytes those items hold
        self._failure: BaseException | None = None
        self._stopped = False  # failed or cancelled: queued items are dropped, new ones refused
        self.peak_bytes = 0
        self.peak_items = 0

    def submit(self, call: Callable[[], object]) -> None:
        """Run ``call()`` on a worker (it holds no data of ours): waits while ``max_pending`` items are queued."""
        self.submit_bytes(0, _nothing, lambda _: call())

    def submit_bytes(self, size: int, load: Callable[[], T], send: Callable[[T], object]) -> None:
        """Wait for room for ``size`` bytes, ``load()`` here, then ``send(loaded)`` on a worker.

        Raises the first failure of an earlier call instead of submitting (nothing more starts after one).
        """
        size = min(size, self.max_bytes)  # an item larger than the cap still goes, alone
        with self._cond:
            while not self._stopped and (self._items >= self.max_pending
                                         or (self._items and self._bytes + size > self.max_bytes)):
                self._cond.wait()
            self._raise_if_stopped()
            self._items += 1
            self._bytes += size
            self.peak_items = max(self.peak_items, self._items)
            self.peak_bytes = max(self.peak_bytes, self._bytes)
        try:
            box = [load()]  # the worker takes it out, so the bytes are freed before the room is given back
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="kitops-s3")
            self._executor.submit(self._run, size, box, send)
        except BaseException:
            self._release(size)
            raise

    def _run(self, size: int, box: list[T], send: Callable[[T], object]) -> None:
        try:
            value = box.pop()
            if not self._stopped:  # after a failure or a cancel, what has not started never starts
                send(value)
            del value
        except BaseException as e:  # noqa: BLE001 - kept for wait()/submit() to raise in the caller's thread
            with self._cond:
                if self._failure is None:
                    self._failure = e
                self._stopped = True
        finally:
            self._release(size)

    def _release(self, size: int) -> None:
        with self._cond:
            self._items -= 1
            self._bytes -= size
            self._cond.notify_all()

    def _raise_if_stopped(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._stopped:
            raise RuntimeError("BoundedPool was cancelled")

    def check(self) -> None:
        """Raise the first failure so far, if any (before starting work that does not go through the pool)."""
        with self._cond:
            self._raise_if_stopped()

    def wait(self) -> None:
        """Wait until every call has finished; raise the first failure (as soon as there is one)."""
        with self._cond:
            while self._items and self._failure is None:
                self._cond.wait()
            self._raise_if_stopped()

    def cancel(self) -> BaseException | None:
        """Drop what has not started, wait for what has; returns the first failure (not raised)."""
        with self._cond:
            self._stopped = True
            while self._items:
                self._cond.wait()
            return self._failure

    def close(self) -> None:
        """Stop the worker threads (after ``wait`` or ``cancel``)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _nothing() -> None:
    return None


__all__ = ["BoundedPool"]
