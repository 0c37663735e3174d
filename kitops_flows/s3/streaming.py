"""Reading listed objects in order with a bounded read-ahead window (ranged GETs, ``If-Match`` the listed ETag).

The window holds at most ``PARTS_IN_FLIGHT * PART_SIZE`` bytes (and ``MAX_REQUESTS_IN_FLIGHT``
requests), so memory stays flat whether a prefix holds one 50 GB object or 100,000 small ones.

>>> for obj, reader in ObjectStreamer(s3, "ml-data", inp.objects).readers():   # doctest: +SKIP
...     out.write(reader.read())
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..errors import S3SourceError
from .listing import S3Object
from .uris import WORKERS, etag_of, translated

PART_SIZE = 8 << 20  # ranged GET size
PARTS_IN_FLIGHT = 6  # read-ahead window in bytes: PARTS_IN_FLIGHT * PART_SIZE bounds memory
MAX_REQUESTS_IN_FLIGHT = 64  # many small objects: keep the workers busy despite per-request latency


@dataclass
class _Part:
    obj: S3Object
    start: int
    end: int  # exclusive
    whole: bool


class ObjectStreamer:
    """Yields readers over objects in the given order, reading ahead a bounded window of parts.

    The window holds at most ``window * part_size`` bytes (and ``MAX_REQUESTS_IN_FLIGHT`` requests),
    so memory stays flat whether the prefix holds one 50 GB object or 100,000 small ones.

    Every GET carries ``If-Match`` with the listed ETag and its answer is checked against the listed
    ETag, VersionId and size, so a layer is never built from an object that changed after listing.
    """

    def __init__(self, s3: Any, bucket: str, objects: Sequence[S3Object], *,
                 part_size: int = PART_SIZE, window: int = PARTS_IN_FLIGHT, workers: int = WORKERS) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._objects = objects
        self._part_size = part_size
        self._window = max(1, window)
        self._workers = workers

    def _parts(self) -> Iterator[_Part]:
        for obj in self._objects:
            if obj.size <= self._part_size:
                yield _Part(obj, 0, obj.size, True)
                continue
            for start in range(0, obj.size, self._part_size):
                yield _Part(obj, start, min(obj.size, start + self._part_size), False)

    def _fetch(self, part: _Part) -> bytes:
        obj = part.obj
        uri = f"s3://{self._bucket}/{obj.key}"
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Key": obj.key, "IfMatch": f'"{obj.etag}"'}
        if not part.whole:
            kwargs["Range"] = f"bytes={part.start}-{part.end - 1}"
        with translated(uri, "reading the object"):
            resp = self._s3.get_object(**kwargs)
            body = resp["Body"]
            try:
                data = body.read()
            finally:
                body.close()
        version = str(resp.get("VersionId") or "")
        if etag_of(resp.get("ETag")) != obj.etag or (obj.version_id and version and version != obj.version_id):
            raise S3SourceError(
                f"{uri}: object changed while reading (listed ETag {obj.etag} version {obj.version_id or '-'}, "
                f"now {etag_of(resp.get('ETag'))} version {version or '-'}); nothing was stored: retry the pack"
            )
        if len(data) != part.end - part.start:
            raise S3SourceError(f"{uri}: expected {part.end - part.start} bytes at offset {part.start}, "
                                f"got {len(data)} (object changed or truncated response)")
        return data

    def readers(self) -> Iterator[tuple[S3Object, _PartReader]]:
        """(object, reader) in order; read each reader to its end before taking the next."""
        pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="kitops-s3")
        pending: deque[tuple[_Part, Future[bytes]]] = deque()
        parts = self._parts()
        try:
            def refill() -> None:
                while len(pending) < MAX_REQUESTS_IN_FLIGHT and (
                    not pending or sum(p.end - p.start for p, _ in pending) < self._window * self._part_size
                ):
                    part = next(parts, None)
                    if part is None:
                        return
                    pending.append((part, pool.submit(self._fetch, part)))

            refill()
            for obj in self._objects:
                reader = _PartReader(obj, pending, refill)
                yield obj, reader
                reader.finish()
        finally:
            for _, fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


class _PartReader:
    """File-like view of one object's parts as they arrive from the read-ahead window."""

    def __init__(self, obj: S3Object, pending: deque[tuple[_Part, Future[bytes]]], refill: Callable[[], None]) -> None:
        self._obj = obj
        self._pending = pending
        self._refill = refill
        self._buf = memoryview(b"")
        self._remaining = obj.size

    def _next_part(self) -> None:
        part, fut = self._pending.popleft()
        assert part.obj is self._obj, "parts consumed out of order"
        data = fut.result()
        self._refill()
        self._buf = memoryview(data)

    def finish(self) -> None:
        """Called before the next object: an empty object's (only) GET is still checked here."""
        if self._remaining > 0:
            raise S3SourceError(f"s3://…/{self._obj.key}: reader closed with {self._remaining} bytes unread")
        while self._pending and self._pending[0][0].obj is self._obj:
            self._next_part()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._remaining
        if not self._buf and self._remaining > 0:
            self._next_part()
        out = bytes(self._buf[:n])
        self._buf = self._buf[len(out):]
        self._remaining -= len(out)
        return out

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


__all__ = ["MAX_REQUESTS_IN_FLIGHT", "PARTS_IN_FLIGHT", "PART_SIZE", "ObjectStreamer"]
