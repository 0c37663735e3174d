"""Layer compression streams: gzip as Go's compress/gzip frames it, zstd, and their readers.

Digests of compressed layers can never match kit's (different deflate/zstd encoders), which is why
``none`` is the default, as in kit; we still frame gzip like Go (mtime 0, OS 255, XFL by level) so
the only difference is the deflate stream itself.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import zstandard

from .digests import Sink


class GzipWriter:
    """Streaming gzip encoder writing into ``sink``; ``close()`` writes the trailer (not closing sink)."""

    def __init__(self, sink: Sink, fastest: bool = False) -> None:
        self._sink = sink
        level = 1 if fastest else 6
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -15)
        self._crc = 0
        self._size = 0
        xfl = 4 if fastest else 0
        sink.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([xfl, 255]))

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        out = self._deflate.compress(data)
        if out:
            self._sink.write(out)
        return len(data)

    def close(self) -> None:
        self._sink.write(self._deflate.flush())
        self._sink.write(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))


class ZstdWriter:
    def __init__(self, sink: Sink) -> None:
        self._w = zstandard.ZstdCompressor().stream_writer(sink, closefd=False, write_return_read=True)  # type: ignore[arg-type]

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return self._w.write(data)

    def close(self) -> None:
        self._w.close()


def compressing_writer(sink: Sink, compression: str) -> GzipWriter | ZstdWriter | None:
    """A compressor for ``compression`` (none -> None: write straight to sink)."""
    if compression == "none":
        return None
    if compression in ("gzip", "gzip-fastest"):
        return GzipWriter(sink, fastest=compression == "gzip-fastest")
    if compression == "zstd":
        return ZstdWriter(sink)
    raise ValueError(f"unknown compression {compression!r}")


class _ZstdReader:
    def __init__(self, raw: BinaryIO) -> None:
        self._r = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            chunks = []
            while chunk := self._r.read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        return self._r.read(n)

    def readable(self) -> bool:
        return True


class _GzipReader:
    """Streaming gunzip that tolerates concatenated members, reading ``raw`` in 1 MiB chunks."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._d = zlib.decompressobj(31)
        self._buf = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        want = (1 << 62) if n is None or n < 0 else n
        while len(self._buf) < want and not self._eof:
            chunk = self._raw.read(1 << 20)
            if not chunk:
                self._buf += self._d.flush()
                self._eof = True
                break
            self._buf += self._d.decompress(chunk)
            while self._d.eof and self._d.unused_data:
                rest = self._d.unused_data
                self._d = zlib.decompressobj(31)
                self._buf += self._d.decompress(rest)
        out, self._buf = self._buf[:want], self._buf[want:]
        return out

    def readable(self) -> bool:
        return True


def decompressing_reader(raw: BinaryIO, compression: str) -> BinaryIO:
    """Wrap ``raw`` so reads return the uncompressed layer."""
    if compression == "none":
        return raw
    if compression == "gzip":
        return _GzipReader(raw)  # type: ignore[return-value]
    if compression == "zstd":
        return _ZstdReader(raw)  # type: ignore[return-value]
    raise ValueError(f"unknown compression {compression!r}")
