"""Streaming sha256 helpers: every byte is hashed as it passes, nothing is buffered whole."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO, Protocol

from .errors import DigestMismatchError

CHUNK = 1 << 20


class Sink(Protocol):
    """Anything bytes can be written to (a file, a hashing writer, a compressor, a blob writer)."""

    def write(self, data: bytes | bytearray | memoryview) -> int: ...


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def copy_file(path: Path, sink: Sink) -> int:
    """Stream a file into ``sink`` in 1 MiB chunks (one reused buffer); return the bytes copied."""
    copied = 0
    with open(path, "rb") as f:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            sink.write(view[:n])
            copied += n
    return copied


def file_digest(path: Path) -> tuple[str, int]:
    """(digest, size) of a file, read in 1 MiB chunks."""
    h = HashingWriter()
    copy_file(path, h)
    return h.digest, h.size


class HashingWriter:
    """File-like sink that hashes and counts what is written, then passes it on (if ``sink`` is set)."""

    def __init__(self, sink: BinaryIO | None = None) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        n = len(data)
        self.size += n
        if self._sink is not None:
            self._sink.write(data)
        return n

    def flush(self) -> None:
        if self._sink is not None:
            self._sink.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class ReadOnlyStream:
    """What file-like consumers (tarfile, shutil, decompressors) ask of a stream, over a subclass's ``read``."""

    def read(self, n: int = -1) -> bytes:
        raise NotImplementedError

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


class VerifyingReader(ReadOnlyStream):
    """Read-only stream that checks size and sha256 when the end is reached.

    A consumer that reads to EOF gets DigestMismatchError instead of EOF if the bytes were wrong,
    so nothing built from unverified bytes can be committed. ``what`` names the blob in errors.
    """

    def __init__(self, raw: BinaryIO, digest: str, size: int | None, what: str) -> None:
        self._raw = raw
        self._expected = digest
        self._size = size
        self._what = what
        self._hash = hashlib.sha256()
        self._read = 0
        self._checked = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._hash.update(data)
            self._read += len(data)
            if self._size is not None and self._read > self._size:
                raise DigestMismatchError(f"{self._what} is larger than its descriptor size {self._size}")
        if not data or n is None or n < 0:
            self.verify()
        return data

    def verify(self) -> None:
        """Check size and digest now (idempotent). Call after the consumer stopped early to drain."""
        if self._checked:
            return
        while chunk := self._raw.read(CHUNK):  # a tar reader may stop before the end: hash the rest too
            self._hash.update(chunk)
            self._read += len(chunk)
        self._checked = True
        actual = "sha256:" + self._hash.hexdigest()
        if self._size is not None and self._read != self._size:
            raise DigestMismatchError(
                f"{self._what}: expected {self._size} bytes, read {self._read} (blob truncated or corrupted)"
            )
        if actual != self._expected:
            raise DigestMismatchError(f"{self._what}: content hashes to {actual}, expected {self._expected}")

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
