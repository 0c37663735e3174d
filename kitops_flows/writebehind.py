"""Write-behind: hand a stream's writes to a thread, so hashing and disk I/O overlap the producer.

Pack's producer (walking the tree, reading files, building tar headers) is Python work that holds the
GIL; ``sha256`` updates and ``write``/``fdatasync`` calls release it. Moving the second group to a
thread lets both run at once on two cores::

    with store.ingest() as blob:
        with WriteBehind(blob, sync_fd=blob.file.fileno()) as sink:
            write_tar_layer(ctx, "data", [], rules, sink, log.warning)
        blob.digest   # every write has reached the blob here

``sync_fd``: every ``sync_every`` bytes the thread calls ``fdatasync`` on it, so the kernel writes the
blob out while the producer works and the store's final ``fsync`` finds little left to do.

Writes are queued in order, at most ``depth`` at a time (bounded memory: the producer waits when the
thread falls behind). A failure in the thread (a full disk) is raised by the next ``write`` or by
``close``; it is never lost. The queue holds ``bytes``: anything else is copied, because producers
reuse their buffers.
"""

from __future__ import annotations

import os
import queue
import threading
from types import TracebackType

from .digests import Sink

#: Chunks queued at once: the producer hands over ~1 MiB per write, so this bounds memory at a few MiB.
DEPTH = 4
#: Bytes between two ``fdatasync`` calls: early writeback without a sync per write.
SYNC_EVERY = 16 << 20


class WriteBehind:
    """A ``Sink`` whose writes reach ``sink`` on a worker thread; ``close`` (or the ``with``) waits for them."""

    def __init__(self, sink: Sink, *, sync_fd: int | None = None, sync_every: int = SYNC_EVERY,
                 depth: int = DEPTH) -> None:
        self._sink = sink
        self._sync_fd = sync_fd
        self._sync_every = sync_every
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="kitops-write-behind", daemon=True)
        self._thread.start()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed WriteBehind")
        if self._error is not None:
            raise self._error
        n = len(data)
        if n:
            self._queue.put(data if type(data) is bytes else bytes(data))
        return n

    def close(self) -> None:
        """Wait until every queued write reached the sink; raise the worker's failure, if any. Idempotent."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
            return
        # The body failed: stop the worker, but report the body's error, not a consequence of it.
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        unsynced = 0
        while (data := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so a producer blocked on a full queue wakes up and sees the error
            try:
                self._sink.write(data)
                unsynced += len(data)
                if self._sync_fd is not None and unsynced >= self._sync_every:
                    os.fdatasync(self._sync_fd)
                    unsynced = 0
            except BaseException as e:  # noqa: BLE001 - re-raised in the producer's thread
                self._error = e


__all__ = ["WriteBehind"]
