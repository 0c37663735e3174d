"""Parallel ranged download of one blob: several connections, written in place, verified as a whole.

Registries (and the object stores they redirect blob GETs to) cap each TCP connection, so one stream
per blob is as slow as the link allows one connection to be. Like ``hf_transfer`` or ``s5cmd``, a
big blob is split into parts fetched with ``Range`` requests over several connections::

    policy = ParallelDownload(connections=8)
    policy.parts_for(1 << 30)          # 32 parts of 32 MiB
    RangedDownload(dest, digest, size, policy, open_range, retrying, tracker, what).run()

* **In place**: the ingest file is preallocated to the blob's size (a full disk fails before any
  byte is fetched) and each part is ``pwrite``-n at its offset; memory is one block per connection.
* **Verified as a whole**: a hashing thread reads finished parts back in order (from the page
  cache) while the others download, so the sha256 of the whole blob is ready soon after the last
  byte; a mismatch removes the file.
* **Resumable per range**: finished parts are listed in ``<ingest>.parts``; a later attempt (or
  process) fetches only the rest. A part that broke off resumes from its last byte, in-process.
* **Fallback**: a server that answers a ranged GET with a whole ``200`` raises ``RangeIgnored``;
  the caller then downloads with one stream.
* **Only where it helps**: the first connection starts alone and is timed over its first 4 MiB;
  the others join only if it is slower than ``one_stream_above`` (150 MB/s). On loopback or a
  LAN one stream is already as fast as the disk, and eight would only cost CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from ..errors import DigestMismatchError, RegistryError

T = TypeVar("T")
BLOCK = 1 << 20  # bytes read from the socket and written per call; the memory each connection holds
STATE_SUFFIX = ".parts"


@dataclass(frozen=True)
class ParallelDownload:
    """How many connections one blob may use, and how it is cut into parts.

    Blobs under ``min_size`` (or with ``connections`` 1) use one stream. Parts are
    ``size / (connections * parts_per_connection)`` clamped to ``[min_part, max_part]``: several
    parts per connection, so a slow connection does not hold the tail, and each part a few seconds
    of transfer, so a request's round trip is small next to it.
    """

    connections: int = 8
    min_size: int = 32 << 20
    min_part: int = 8 << 20
    max_part: int = 64 << 20
    parts_per_connection: int = 4
    #: The first connection is measured over ``probe_bytes`` (or ``probe_seconds``): faster than
    #: ``one_stream_above`` bytes/s means nothing caps a connection (loopback, a LAN), where more
    #: connections only cost CPU, so the blob stays on that one. 0 = always go parallel.
    one_stream_above: float = 150e6
    probe_bytes: int = 4 << 20
    probe_seconds: float = 0.5

    def __post_init__(self) -> None:
        if self.connections < 1 or self.min_part < 1 or self.max_part < self.min_part:
            raise ValueError(f"invalid ParallelDownload settings: {self}")

    def use_for(self, size: int) -> bool:
        return self.connections > 1 and size >= max(self.min_size, 2 * self.min_part)

    def part_size(self, size: int) -> int:
        want = -(-size // (self.connections * self.parts_per_connection))
        return max(self.min_part, min(self.max_part, want))

    def parts_for(self, size: int) -> int:
        return -(-size // self.part_size(size))


ONE_STREAM = ParallelDownload(connections=1)


class RangeIgnored(RegistryError):
    """The server sent the whole blob (200) to a ranged GET: download it with one stream instead."""


class RangeResponse(Protocol):
    """What ``open_range`` returns: the body of exactly the asked range, in blocks."""

    def iter_content(self, chunk_size: int) -> Iterable[bytes]: ...

    def close(self) -> None: ...


class Tracker(Protocol):
    def add(self, n: int) -> None: ...


class _Stop(Exception):
    """Another part failed: this worker stops after its current block."""


@dataclass
class _State:
    """Which parts of ``<ingest>`` hold verified-later bytes; saved beside it as ``<ingest>.parts``."""

    digest: str
    size: int
    part_size: int
    done: set[int]

    @classmethod
    def load(cls, path: Path, digest: str, size: int, part_size: int) -> _State | None:
        try:
            doc = json.loads(path.read_bytes())
            state = cls(doc["digest"], int(doc["size"]), int(doc["part_size"]), {int(i) for i in doc["done"]})
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return state if (state.digest, state.size, state.part_size) == (digest, size, part_size) else None

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"digest": self.digest, "size": self.size, "part_size": self.part_size,
                                   "done": sorted(self.done)}))
        os.replace(tmp, path)  # no fsync: a lost state only costs re-fetching, the final hash catches the rest


def state_path(dest: Path) -> Path:
    return dest.with_name(dest.name + STATE_SUFFIX)


def remove_partial(dest: Path) -> None:
    """Forget a download: the ingest file and its part list."""
    for p in (dest, state_path(dest)):
        p.unlink(missing_ok=True)


class RangedDownload:
    """One blob, fetched in parts by up to ``workers`` threads into ``dest``; see the module docstring.

    ``open_range(start, end)`` sends one ranged GET (following redirects, choosing auth) and returns
    the streaming body of exactly ``[start, end]`` or raises (``RangeIgnored`` on a 200, the client's
    transient errors otherwise); ``retrying(fn)`` runs ``fn`` under the client's retry policy.
    """

    def __init__(self, dest: Path, digest: str, size: int, policy: ParallelDownload,
                 open_range: Callable[[int, int], RangeResponse], retrying: Callable[[Callable[[], None]], None],
                 tracker: Tracker, what: str, workers: int | None = None) -> None:
        self.dest = dest
        self.digest = digest
        self.size = size
        self.part_size = policy.part_size(size)
        self.parts = -(-size // self.part_size)
        self.workers = max(1, min(workers or policy.connections, self.parts))
        self._open_range = open_range
        self._retrying = retrying
        self._tracker = tracker
        self._what = what
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)
        self._failed: BaseException | None = None
        self._state_path = state_path(dest)
        self._policy = policy
        self._probe = threading.Event()  # set once the first connection's speed is known
        self._probe_rate = 0.0
        self.resumed = False
        self.connections_used = 0

    def run(self) -> None:
        """Fetch every missing part, then check the whole file's sha256 (DigestMismatchError removes it)."""
        state = self._prepare()
        todo = [i for i in range(self.parts) if i not in state.done]
        fd = os.open(self.dest, os.O_RDWR)
        try:
            hasher = threading.Thread(target=self._hash, args=(fd, state), name="blob-hash", daemon=True)
            self._digest_result: str | None = None
            hasher.start()
            queue = list(reversed(todo))

            def worker(n: int) -> threading.Thread:
                t = threading.Thread(target=self._work, args=(fd, state, queue), daemon=True, name=f"blob-range-{n}")
                t.start()
                return t

            threads = [worker(0)]
            extra = min(self.workers, len(todo)) - 1
            if extra > 0:
                # one connection first: if it is fast, the link is not capped per connection (stay on it)
                self._probe.wait(self._policy.probe_seconds)
                if not (self._probe.is_set() and self._probe_rate > self._policy.one_stream_above > 0):
                    threads += [worker(n) for n in range(1, extra + 1)]
            self.connections_used = len(threads)
            for t in threads:
                t.join()
            if self._failed is not None:
                with self._finished:
                    self._finished.notify_all()
                hasher.join()
                raise self._failed
            hasher.join()
        finally:
            os.close(fd)
        actual = self._digest_result
        if actual != self.digest:
            remove_partial(self.dest)
            raise DigestMismatchError(
                f"{self._what} hashes to {actual}: the registry's copy is corrupt or was altered "
                "(download removed; push the blob again or pull from another source)"
            )
        self._state_path.unlink(missing_ok=True)

    # -- setup -------------------------------------------------------------------------------------
    def _prepare(self) -> _State:
        """Reuse an earlier attempt's parts (or a single-stream prefix), else start a preallocated file."""
        state = _State.load(self._state_path, self.digest, self.size, self.part_size)
        have = self.dest.stat().st_size if self.dest.exists() else -1
        if state is not None and have == self.size:
            self.resumed = bool(state.done)
        else:
            done: set[int] = set()
            if state is None and 0 < have <= self.size:  # a single-stream download's prefix: keep whole parts
                done = {i for i in range(self.parts) if (i + 1) * self.part_size <= have}
            state = _State(self.digest, self.size, self.part_size, done)
            self.resumed = bool(done)
            if have > self.size:
                self.dest.unlink()
            # the part list first: a run killed right after the file grows must not take the
            # preallocated zeros for a single-stream prefix (it then re-fetched the whole blob)
            state.save(self._state_path)
            with open(self.dest, "ab") as f:  # keep a prefix; grow to the full size
                _preallocate(f.fileno(), self.size)
        done_bytes = sum(self._bounds(i)[1] - self._bounds(i)[0] + 1 for i in state.done)
        self._tracker.add(done_bytes)
        return state

    def _bounds(self, index: int) -> tuple[int, int]:
        start = index * self.part_size
        return start, min(start + self.part_size, self.size) - 1

    # -- workers -----------------------------------------------------------------------------------
    def _work(self, fd: int, state: _State, queue: list[int]) -> None:
        while True:
            with self._lock:
                if self._failed is not None or not queue:
                    return
                index = queue.pop()
            try:
                self._fetch_part(fd, index)
            except _Stop:
                return
            except BaseException as e:  # noqa: BLE001 - handed to run(), which re-raises it
                with self._finished:
                    if self._failed is None:
                        self._failed = e
                    self._finished.notify_all()
                return
            with self._finished:
                state.done.add(index)
                state.save(self._state_path)
                self._finished.notify_all()

    def _fetch_part(self, fd: int, index: int) -> None:
        start, end = self._bounds(index)
        written = [0]  # survives attempts: a retry asks only for the rest of the part
        began = time.monotonic()

        def attempt() -> None:
            if self._failed is not None:
                raise _Stop
            offset = start + written[0]
            resp = self._open_range(offset, end)
            with contextlib.closing(resp):  # type: ignore[type-var]
                for block in resp.iter_content(BLOCK):
                    if self._failed is not None:
                        raise _Stop
                    if offset + len(block) > end + 1:
                        raise RegistryError(f"{self._what}: the server sent more than the asked range "
                                            f"{start}-{end}")
                    _pwrite_all(fd, block, offset)
                    offset += len(block)
                    written[0] += len(block)
                    self._tracker.add(len(block))
                    if not self._probe.is_set() and (written[0] >= self._policy.probe_bytes or offset > end):
                        self._probe_rate = written[0] / max(time.monotonic() - began, 1e-6)
                        self._probe.set()
            if offset != end + 1:
                from .retry import TransientError

                raise TransientError(RegistryError(
                    f"{self._what}: range {start}-{end} ended after {offset - start} bytes"))

        self._retrying(attempt)

    # -- hashing -------------------------------------------------------------------------------------
    def _hash(self, fd: int, state: _State) -> None:
        """Hash parts in order as they are finished, reading them back from the (cached) file."""
        hasher = hashlib.sha256()
        for index in range(self.parts):
            with self._finished:
                while index not in state.done and self._failed is None:
                    self._finished.wait()
                if index not in state.done:
                    return
            pos, end = self._bounds(index)
            while pos <= end:
                block = os.pread(fd, min(BLOCK, end + 1 - pos), pos)
                if not block:
                    return  # the file shrank under us: the digest stays None, a mismatch
                hasher.update(block)
                pos += len(block)
        self._digest_result = "sha256:" + hasher.hexdigest()


def _preallocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes (ENOSPC now rather than mid-download); sparse growth where unsupported."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (95, 22):  # EOPNOTSUPP / EINVAL: a filesystem without fallocate
            raise
        os.ftruncate(fd, max(size, os.fstat(fd).st_size))


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n
