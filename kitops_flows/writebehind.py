"""Write-behind: hand a stream's writes to a thread, so hashing and disk I/O overlap the producer.

Pack's producer (walking the tree, reading files, building tar headers) is Python work that holds the
GIL; ``sha256`` updates and ``write`` calls release it. Moving the second group to a
thread lets both run at once on two cores::

    with store.ingest() as blob:
        with WriteBehind(blob, sync_fd=blob.file.fileno()) as sink:
            write_tar_layer(ctx, "data", [], rules, sink, log.warning)
        blob.digest   # every write has reached the blob here

``sync_fd``: every ``sync_every`` bytes the thread asks the kernel to start writing those bytes out
(``_start_writeback``), so the disk works while the producer does and the store's final ``fsync``
finds little left to do.

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
#: Bytes between two early-writeback requests.
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
        written = started = 0  # bytes written; bytes whose writeback was started
        while (data := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so a producer blocked on a full queue wakes up and sees the error
            try:
                self._sink.write(data)
                written += len(data)
                if self._sync_fd is not None and written - started >= self._sync_every:
                    _start_writeback(self._sync_fd, started, written - started)
                    started = written
            except BaseException as e:  # noqa: BLE001 - re-raised in the producer's thread
                self._error = e


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``[offset, offset+length)`` out, without waiting or flushing the device.

    ``POSIX_FADV_DONTNEED`` on dirty pages starts their writeback (and drops only pages already clean,
    which bytes written a moment ago are not), like ``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which
    Python does not offer. ``fdatasync`` here instead flushed the device's cache on every call: 128
    flushes for a 2 GiB blob cost more than the one final ``fsync`` they were meant to shorten.
    """
    if _FADVISE is not None:  # Linux and most Unixes; macOS has no posix_fadvise: the final fsync does it all
        _FADVISE(fd, offset, length, os.POSIX_FADV_DONTNEED)


_FADVISE = getattr(os, "posix_fadvise", None)


__all__ = ["WriteBehind"]
