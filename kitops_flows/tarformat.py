"""Tar bytes identical to what Go's ``archive/tar`` Writer emits for the headers ``kit pack`` builds.

kit builds every header with ``tar.FileInfoHeader`` and then zeroes the times, sets uid 1000 /
gid 0 and empties uname/gname (spec §6.2 step 7), so the only things that vary per entry are the
name, the mode, the size and the type. That makes a hand-written header much faster than
``tarfile`` and, more importantly, byte-identical to kit's (``tarfile`` splits long names
differently, names its PAX headers ``././@PaxHeader``, appends ``/`` to directories and pads the
archive to 10 KiB; spec §6.3). Uncompressed layer digests therefore match kit's for the same tree.

    >>> import io
    >>> buf = io.BytesIO()
    >>> tw = GoTarWriter(buf)
    >>> tw.add_dir("model", 0o755)
    >>> tw.add_file("model/weights.bin", 0o644, 3, io.BytesIO(b"abc"))
    >>> tw.close()
    >>> len(buf.getvalue())   # 2 headers + 1 data block + 2 trailer blocks
    2560

Format choice (Go's ``Header.allowedFormats`` with ``Format`` unset): USTAR when the name is
ASCII and fits (directly, or split into prefix/name at the last ``/`` Go picks), and the size
fits 11 octal digits (< 8 GiB); otherwise PAX, whose extended header ``dir/PaxHeaders.0/base``
carries ``path`` and/or ``size`` records sorted by key.
"""

from __future__ import annotations

from functools import lru_cache
from typing import BinaryIO

from .digests import CHUNK
from .errors import PackError
from .kitfile import clean_path

BLOCK = 512
#: Files up to this size are read whole and queued with their header (``add_file_bytes``).
SMALL_FILE = 64 * 1024
#: Files of this size or more cannot be described by USTAR's 11 octal digits: Go switches to PAX.
USTAR_MAX_SIZE = 1 << 33
_TYPE_FILE = b"0"
_TYPE_DIR = b"5"
_TYPE_PAX = b"x"
_ZEROS = bytes(BLOCK)
_TRAILER = bytes(2 * BLOCK)
_NAME_SIZE = 100
_PREFIX_SIZE = 155
_SPECIAL_BITS = 0o7777  # permission bits + setuid/setgid/sticky, what FileInfoHeader keeps
# Bytes toASCII drops: NUL and everything >= 0x80 (parts of multi-byte runes or invalid UTF-8).
_NOT_ASCII = bytes([0, *range(0x80, 0x100)])
_EMPTY_PREFIX = bytes(_PREFIX_SIZE)
_TAIL_PAD = bytes(12)

# Fixed fields of kit's sanitised headers (uid 1000, gid 0, zero mtime, no uname/gname/linkname).
_UID_GID = b"0001750\0" + b"0000000\0"
_MTIME_ZERO = b"00000000000\0"
_MAGIC = b"ustar\x0000"
_DEV = b"0000000\0" * 2
_LINKNAME = bytes(100)
_OWNER_NAMES = bytes(64)
# The checksum is computed with its own 8 bytes read as spaces.
_CHKSUM_SPACES = 8 * 0x20
_FIXED_SUM = sum(_UID_GID) + sum(_MTIME_ZERO) + sum(_MAGIC) + sum(_DEV) + _CHKSUM_SPACES


def _octal(value: int, width: int) -> bytes:
    """Go's ``formatOctal``: zero-padded octal leaving room for a NUL; 0 when it does not fit."""
    if value < 0 or value >= 1 << (3 * (width - 1)):
        value = 0
    return b"%0*o\0" % (width - 1, value)


def split_ustar_path(name: bytes) -> tuple[bytes, bytes] | None:
    """Go's ``splitUSTARPath``: (prefix, suffix) split at the last ``/`` in the first 156 bytes.

    >>> split_ustar_path(b"a" * 60 + b"/" + b"b" * 60)[0] == b"a" * 60
    True
    """
    length = len(name)
    if length <= _NAME_SIZE or not _is_ascii(name):
        return None
    if length > _PREFIX_SIZE + 1:
        length = _PREFIX_SIZE + 1
    elif name[length - 1] == 0x2F:  # '/'
        length -= 1
    i = name.rfind(b"/", 0, length)
    suffix_len = len(name) - i - 1
    if i <= 0 or suffix_len > _NAME_SIZE or suffix_len == 0 or i > _PREFIX_SIZE:
        return None
    return name[:i], name[i + 1 :]


def _is_ascii(b: bytes) -> bool:
    return b.isascii() and b"\0" not in b


def _to_ascii(b: bytes) -> bytes:
    return b if _is_ascii(b) else b.translate(None, _NOT_ASCII)


def _v7_name(name: bytes) -> bytes:
    """Go's ``formatString`` into the 100-byte name field, incl. its trailing-slash fix-up."""
    if len(name) <= _NAME_SIZE:
        return name.ljust(_NAME_SIZE, b"\0")
    field = bytearray(name[:_NAME_SIZE])
    if field[-1] == 0x2F:
        field[len(bytes(field).rstrip(b"/"))] = 0
    return bytes(field)


def _header_block(name: bytes, mode: int, size: int, typeflag: bytes, prefix: bytes = b"") -> bytes:
    """One USTAR-magic header block with kit's fixed fields; ``name`` fits the 100-byte field.

    Per-file cost matters with thousands of small files: the mode and size fields (and their share
    of the checksum) come from small caches, and only the non-zero name/prefix bytes are summed.
    """
    mode_b, mode_sum = _mode_field(mode)
    size_b, size_sum = _size_field(size)
    chksum = _FIXED_SUM + sum(name) + mode_sum + size_sum + typeflag[0]
    if prefix:
        chksum += sum(prefix)
        prefix_field = prefix.ljust(_PREFIX_SIZE, b"\0")
    else:
        prefix_field = _EMPTY_PREFIX
    return b"".join(
        (
            name.ljust(_NAME_SIZE, b"\0"), mode_b, _UID_GID, size_b, _MTIME_ZERO, b"%06o\0 " % chksum, typeflag,
            _LINKNAME, _MAGIC, _OWNER_NAMES, _DEV, prefix_field, _TAIL_PAD,
        )
    )


@lru_cache(maxsize=256)
def _mode_field(mode: int) -> tuple[bytes, int]:
    """The 8-byte mode field and its byte sum (a tree has a handful of distinct modes)."""
    field = b"%07o\0" % mode
    return field, sum(field)


@lru_cache(maxsize=4096)
def _size_field(size: int) -> tuple[bytes, int]:
    """The 12-byte size field and its byte sum (many small files share a size)."""
    field = _octal(size, 12)
    return field, sum(field)


def _pax_record(key: str, value: bytes) -> bytes:
    """Go's ``formatPAXRecord``: ``"<len> key=value\\n"`` where len counts itself."""
    body = b" " + key.encode() + b"=" + value + b"\n"
    size = len(body) + len(str(len(body)))
    size = len(body) + len(str(size))  # adding the length's digits may add a digit
    return str(size).encode() + body


def _pax_entry_name(name: str) -> bytes:
    """``path.Join(dir, "PaxHeaders.0", base)``, then Go's ``writeRawFile`` name handling."""
    head, _, base = name.rpartition("/")
    joined = clean_path(f"{head}/PaxHeaders.0/{base}" if head else f"PaxHeaders.0/{base}")
    raw = _to_ascii(joined.encode("utf-8", "surrogateescape"))[:_NAME_SIZE]
    return raw.rstrip(b"/")


def encode_header(name: str, mode: int, size: int, is_dir: bool = False) -> bytes:
    """The header block(s) Go writes for one of kit's entries (USTAR, or PAX extension + header).

    ``mode`` may be a full ``st_mode``: only permission, setuid, setgid and sticky bits are kept,
    as ``tar.FileInfoHeader`` does. The result is 512 bytes, or 1024+ bytes in PAX form.
    """
    if "\0" in name:
        raise PackError(f"cannot put {name!r} in a tar layer: the name contains a NUL byte")
    if not name:
        raise PackError("cannot put an entry with an empty name in a tar layer")
    if not is_dir and name.endswith("/"):
        raise PackError(f"cannot put file {name!r} in a tar layer: a file name may not end with '/'")
    if size < 0:
        raise PackError(f"cannot put {name!r} in a tar layer: negative size {size}")
    raw = name.encode("utf-8", "surrogateescape")
    mode &= _SPECIAL_BITS
    typeflag = _TYPE_DIR if is_dir else _TYPE_FILE
    records: dict[str, bytes] = {}
    split: tuple[bytes, bytes] | None = None
    if len(raw) > _NAME_SIZE or not _is_ascii(raw):
        # Go records the path even when it can still split it for USTAR.
        records["path"] = raw
        split = split_ustar_path(raw)
        name_ok = split is not None
    else:
        name_ok = True
    if size >= USTAR_MAX_SIZE:
        records["size"] = str(size).encode()
    elif name_ok:
        if split is None:
            return _header_block(raw, mode, size, typeflag)
        prefix, suffix = split
        return _header_block(suffix, mode, size, typeflag, prefix)
    data = b"".join(_pax_record(k, records[k]) for k in sorted(records))
    pax_header = _raw_header(_pax_entry_name(name), len(data))
    pad = -len(data) % BLOCK
    main = _header_block(_v7_name(_to_ascii(raw)), mode, size, typeflag)
    return b"".join((pax_header, data, _ZEROS[:pad], main))


def _raw_header(name: bytes, size: int) -> bytes:
    """Go's ``writeRawFile`` header for a PAX extension: zero mode/uid/gid/mtime, no dev numbers."""
    zero8 = b"0000000\0"
    fields = (
        name.ljust(_NAME_SIZE, b"\0"), zero8, zero8, zero8, _octal(size, 12), _MTIME_ZERO,
    )
    head = b"".join(fields)
    tail = _TYPE_PAX + _LINKNAME + _MAGIC + bytes(BLOCK - 265)
    chksum = sum(head) + sum(tail) + _CHKSUM_SPACES
    return head + b"%06o\0 " % chksum + tail


class GoTarWriter:
    """Stream entries into ``out`` as Go's ``tar.Writer`` would for kit's headers.

    >>> import io
    >>> out = io.BytesIO()
    >>> tw = GoTarWriter(out)
    >>> tw.add_file("README.md", 0o644, 5, io.BytesIO(b"hello"))
    >>> tw.close()
    >>> out.getvalue()[:9], tw.bytes_written == len(out.getvalue())
    (b'README.md', True)

    ``out`` only needs ``write``. File data is copied in 1 MiB chunks, each a fresh ``bytes`` that ``out``
    may keep, and must be exactly ``size`` bytes. Headers and small files are gathered into
    ``COALESCE`` bytes before they reach ``out``: with 20,000 small files, one ``write`` (and one
    hash update downstream) per MiB instead of per file. ``close`` writes the two zero blocks that
    end the archive, flushes, and does not close ``out``.
    """

    COALESCE = 1 << 20

    def __init__(self, out: BinaryIO) -> None:
        self._out_write = out.write
        self._pending = bytearray()
        self.bytes_written = 0
        self.entries = 0
        self._closed = False

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue small pieces; large ones go straight through (after what is queued)."""
        pending = self._pending
        if len(data) >= self.COALESCE:
            if pending:
                self._out_write(pending)
                self._pending = bytearray()
            self._out_write(data)
            return
        pending += data
        if len(pending) >= self.COALESCE:
            self._out_write(pending)
            self._pending = bytearray()

    def flush(self) -> None:
        """Hand everything queued to ``out`` (``close`` does this too)."""
        if self._pending:
            self._out_write(self._pending)
            self._pending = bytearray()

    def add_dir(self, name: str, mode: int) -> None:
        """A directory entry (typeflag ``5``, size 0); ``name`` has no trailing ``/`` in kit's tars."""
        self._check_open()
        header = encode_header(name, mode, 0, is_dir=True)
        self._write(header)
        self.bytes_written += len(header)
        self.entries += 1

    def add_file(self, name: str, mode: int, size: int, src: BinaryIO) -> None:
        """A regular file entry whose ``size`` bytes are read from ``src`` (exactly that many)."""
        self._check_open()
        header = encode_header(name, mode, size)
        write = self._write
        if size <= SMALL_FILE:
            # Small files (the common case when there are thousands): read whole, queued with the header.
            self._add_small(header, _read_exact_small(src, size, name))
            return
        write(header)
        self._copy(name, size, src)
        pad = -size % BLOCK
        if pad:
            write(_ZEROS[:pad])
        self.bytes_written += len(header) + size + pad
        self.entries += 1

    def add_file_bytes(self, name: str, mode: int, data: bytes) -> None:
        """A regular file entry whose content the caller already read (up to ``SMALL_FILE`` bytes)."""
        self._check_open()
        self._add_small(encode_header(name, mode, len(data)), data)

    def _add_small(self, header: bytes, data: bytes) -> None:
        pending = self._pending
        pending += header
        pending += data
        pad = -len(data) % BLOCK
        if pad:
            pending += _ZEROS[:pad]
        self.bytes_written += len(header) + len(data) + pad
        self.entries += 1
        if len(pending) >= self.COALESCE:
            self._out_write(pending)
            self._pending = bytearray()

    def close(self) -> None:
        """Write the end-of-archive marker (two zero blocks, no record padding) and flush. Idempotent."""
        if self._closed:
            return
        self._write(_TRAILER)
        self.bytes_written += len(_TRAILER)
        self.flush()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise PackError("tar writer is closed: entries cannot be added after close()")

    def _copy(self, name: str, size: int, src: BinaryIO) -> None:
        # ``read`` (a fresh bytes per chunk), not ``readinto`` a reused buffer: a write-behind ``out`` can
        # then queue each chunk as it is, where a reused buffer would have to be copied first
        write = self._write
        remaining = size
        while remaining:
            data = src.read(min(remaining, CHUNK))
            n = len(data)
            if not n:
                break
            write(data)
            remaining -= n
        if remaining or src.read(1):
            raise _size_mismatch(name, size, size - remaining if remaining else None)


def _read_exact_small(src: BinaryIO, size: int, name: str) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        data = src.read(size - got)
        if not data:
            raise _size_mismatch(name, size, got)
        parts.append(data)
        got += len(data)
    if src.read(1):
        raise _size_mismatch(name, size, None)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _size_mismatch(name: str, size: int, got: int | None) -> PackError:
    actual = "more" if got is None else str(got)
    return PackError(
        f"file written to tar does not match expected size: {name} (expected {size} bytes, source gave "
        f"{actual}); the file changed while it was being packed, pack again once it is stable"
    )


__all__ = ["GoTarWriter", "encode_header", "split_ustar_path", "USTAR_MAX_SIZE", "BLOCK", "SMALL_FILE"]
