"""Safe extraction of untrusted layers into a staging directory, then an all-or-nothing merge.

A layer comes from a registry or a store that someone else filled, so every tar entry is checked
before anything is written:

- only regular files (typeflag ``0`` or ``\\0``) and directories (``5``) are accepted, like kit
  (``unrecognized type in archive``); symlinks, hard links, devices and fifos are refused;
- names must be relative, valid UTF-8, without NUL and without ``..`` components (kit:
  ``illegal file path``), must not put a file below a file, and a file may appear only once;
- a declared size above ``max_size`` is refused before any byte is read; data is streamed in
  1 MiB chunks and never more than the declared size is written;
- files get their header permission bits without setuid/setgid/sticky; directories get their
  header bits plus owner ``rwx`` (so later layers and merges can write into them). The process
  umask applies to both, as it does for kit.

Extraction goes into a fresh staging directory that the caller creates beside the destination.
:func:`merge_tree` then checks every conflict first and only then renames into place, so a
refused unpack leaves the destination exactly as it was.

    >>> import io, tarfile, tempfile, pathlib
    >>> buf = io.BytesIO()
    >>> with tarfile.open(fileobj=buf, mode="w") as t:
    ...     info = tarfile.TarInfo("model/w.bin"); info.size = 3
    ...     t.addfile(info, io.BytesIO(b"abc"))
    >>> _ = buf.seek(0)
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> extract_tar(buf, root / "staging")
    ['model/w.bin']
    >>> merge_tree(root / "staging", root / "dest")
    >>> (root / "dest" / "model" / "w.bin").read_bytes()
    b'abc'
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from .digests import CHUNK, ReadOnlyStream
from .errors import UnpackError, UnsafeLayerError

EXISTING_POLICIES = ("error", "overwrite", "ignore")
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
_TYPE_NAMES = {
    tarfile.SYMTYPE: "a symlink",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a fifo",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}
_DIR_OWNER_BITS = 0o700
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def safe_relpath(name: str, what: str = "entry") -> str:
    """Normalise an untrusted ``/``-separated name to a local relative path, or raise.

    Empty and ``.`` components are dropped (``./a//b`` -> ``a/b``); the result is ``.`` for the root.

    >>> safe_relpath("./model//w.bin")
    'model/w.bin'
    """
    if "\0" in name:
        raise UnsafeLayerError(f"illegal file path: {what} {name!r} contains a NUL byte")
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in name):
        raise UnsafeLayerError(
            f"illegal file path: {what} {name!r} is not valid UTF-8; this layer was not written by kit or kitops-flows"
        )
    if name.startswith("/"):
        raise UnsafeLayerError(f"illegal file path: {what} {name!r} is absolute")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayerError(f"illegal file path: {what} {name!r} contains '..'")
    return "/".join(parts) or "."


@dataclass
class _Staging:
    """What has been created under the staging root during one extraction call."""

    root: str
    dirs: set[str] = field(default_factory=lambda: {"."})
    files: set[str] = field(default_factory=set)

    def ensure_parents(self, rel: str, entry: str) -> None:
        parent, _, _ = rel.rpartition("/")
        if parent:
            self.ensure_dir(parent, 0o755, entry)

    def ensure_dir(self, rel: str, mode: int, entry: str) -> None:
        """``MkdirAll``: create missing directories, refuse when a component is not a directory."""
        if rel in self.dirs:
            return
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub in self.dirs:
                continue
            if sub in self.files:
                raise UnsafeLayerError(f"entry {entry!r} puts a directory at or below the file {sub!r}")
            path = os.path.join(self.root, sub)
            want = (mode if i == len(parts) else 0o755) & 0o777 | _DIR_OWNER_BITS
            try:
                os.mkdir(path, want)
            except FileExistsError:
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode):  # left by an earlier layer in this staging dir
                    raise UnsafeLayerError(f"entry {entry!r} puts a directory at or below the file {sub!r}") from None
            self.dirs.add(sub)


@dataclass(frozen=True)
class Member:
    """One checked member of an untrusted layer, as the layer reader hands it to a sink.

    ``name`` is already cleaned by :func:`safe_relpath` (relative, no ``..``). ``data`` reads the
    file's bytes (None for a directory) and raises when the layer holds fewer (or, for a raw
    layer, more) bytes than declared. ``size`` is ``-1`` when a raw layer declares none.
    """

    name: str
    is_dir: bool
    mode: int
    size: int = 0
    data: BinaryIO | None = None
    raw: bool = False  # the single file of a raw layer (errors call it "raw layer path")


class MemberSink(Protocol):
    """Where the layer reader puts members: a staging directory, S3, memory."""

    def add(self, member: Member) -> None: ...


class _MemberReader(ReadOnlyStream):
    """A tar member's bytes, at most ``size``; a stream ending early is an error naming the entry."""

    def __init__(self, raw: BinaryIO, size: int, entry: str) -> None:
        self._raw = raw
        self._left = size
        self._size = size
        self._entry = entry

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        if n == 0:
            return b""
        try:
            data = self._raw.read(n)
        except tarfile.ReadError:
            data = b""  # tarfile's "unexpected end of data"
        if not data:
            raise UnpackError(
                f"layer ended in the middle of {self._entry!r} ({self._left} of {self._size} bytes missing)"
            )
        self._left -= len(data)
        return data


class _RawReader(ReadOnlyStream):
    """A raw layer's bytes: exactly ``size`` when declared (``-1``: whatever the stream holds)."""

    def __init__(self, raw: BinaryIO, size: int, rel: str) -> None:
        self._raw = raw
        self._size = size
        self._rel = rel
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = CHUNK
        if self._size >= 0:
            n = min(n, self._size - self.count + 1)  # one byte more reveals an oversized layer
        data = self._raw.read(n) if n else b""
        self.count += len(data)
        if self._size >= 0 and self.count > self._size:
            raise UnsafeLayerError(f"raw layer {self._rel!r} holds more than its declared {self._size} bytes")
        if not data and self._size >= 0 and self.count != self._size:
            raise UnpackError(f"raw layer {self._rel!r} holds {self.count} bytes, its metadata says {self._size}")
        return data


def tar_members(stream: BinaryIO, *, max_size: int | None = None) -> Iterator[Member]:
    """The members of an uncompressed tar stream, checked, in archive order (the root entry is skipped).

    Only regular files and directories; names through :func:`safe_relpath`; a file appears once,
    never below another file and never where a directory of the same name came earlier (and the
    reverse); a declared size above ``max_size`` is refused before any byte is read. Reads the
    stream once, front to back; a member's unread bytes are skipped when the next one is taken.

    >>> import io, tarfile
    >>> buf = io.BytesIO()
    >>> with tarfile.open(fileobj=buf, mode="w") as t:
    ...     t.addfile(tarfile.TarInfo("./m//a"))
    >>> _ = buf.seek(0)
    >>> [(m.name, m.is_dir, m.size) for m in tar_members(buf)]
    [('m/a', False, 0)]
    """
    dirs: set[str] = set()
    files: set[str] = set()
    try:
        with tarfile.open(fileobj=stream, mode="r|", errorlevel=2) as tar:
            for info in tar:
                rel = safe_relpath(info.name)
                if info.type == tarfile.DIRTYPE:
                    if rel in files:
                        raise UnsafeLayerError(f"entry {info.name!r} is a directory but a file of that name came earlier")
                    if rel == ".":
                        continue
                    _check_parents(rel, files, info.name)
                    dirs.add(rel)
                    yield Member(rel, True, info.mode)
                    continue
                if info.type not in _FILE_TYPES:
                    kind = _TYPE_NAMES.get(info.type, f"of type {info.type!r}")
                    raise UnsafeLayerError(
                        f"unrecognized type in archive: {info.name!r} is {kind}; only regular files and directories "
                        "are allowed in ModelKit layers"
                    )
                if rel == ".":
                    raise UnsafeLayerError(f"illegal file path: file entry {info.name!r} names the root directory")
                if rel in files:
                    raise UnsafeLayerError(f"duplicate entry {info.name!r}: a file may appear only once in a layer")
                if rel in dirs:
                    raise UnsafeLayerError(f"entry {info.name!r} is a file but a directory of that name came earlier")
                if max_size is not None and info.size > max_size:
                    raise UnsafeLayerError(
                        f"entry {info.name!r} declares {info.size} bytes, more than the allowed {max_size}"
                    )
                _check_parents(rel, files, info.name)
                src = tar.extractfile(info)
                assert src is not None  # regular files always have a reader
                files.add(rel)
                yield Member(rel, False, info.mode, info.size, _MemberReader(src, info.size, info.name))
    except tarfile.TarError as e:
        raise UnpackError(f"layer is not a valid tar archive: {e}") from None


def _check_parents(rel: str, files: set[str], entry: str) -> None:
    parts = rel.split("/")
    for i in range(1, len(parts)):
        sub = "/".join(parts[:i])
        if sub in files:
            raise UnsafeLayerError(f"entry {entry!r} puts a directory at or below the file {sub!r}")


def raw_member(stream: BinaryIO, filepath: str, mode: int = 0o644, size: int | None = None) -> Member:
    """The one file of a raw layer at ``filepath`` (from the layer's annotation; must be local)."""
    rel = safe_relpath(filepath, "raw layer path")
    if rel == ".":
        raise UnsafeLayerError(f"illegal file path: raw layer path {filepath!r} names a directory, not a file")
    declared = -1 if size is None else size
    return Member(rel, False, mode, declared, _RawReader(stream, declared, rel), raw=True)


class DirectorySink:
    """Writes members under a staging directory (created if missing): new files only, no links followed.

    Files get their mode without setuid/setgid/sticky; directories their mode plus owner ``rwx``.
    A path already written (by an earlier layer into the same staging directory) is an error.
    """

    def __init__(self, staging_dir: Path | str) -> None:
        root = Path(staging_dir)
        root.mkdir(parents=True, exist_ok=True)
        self._staging = _Staging(os.fspath(root))
        self._buf = bytearray(CHUNK)

    def add(self, member: Member) -> None:
        if member.is_dir:
            self._staging.ensure_dir(member.name, member.mode, member.name)
            return
        staging, rel = self._staging, member.name
        staging.ensure_parents(rel, member.name)
        path = os.path.join(staging.root, rel)
        if member.raw and stat.S_ISDIR(_lstat_mode(path)):
            raise UnpackError(f"raw layer path '{rel}' is a directory in another layer of this ModelKit")
        try:
            fd = os.open(path, _OPEN_FLAGS, member.mode & 0o777)
        except FileExistsError:
            raise UnpackError(f"path '{rel}' already exists in the staging directory (written by an earlier layer)") from None
        except OSError as e:
            raise UnsafeLayerError(f"cannot create {member.name!r}: {e.strerror}") from None
        view = memoryview(self._buf)
        assert member.data is not None
        with open(fd, "wb", buffering=0, closefd=True) as out:
            while n := member.data.readinto(view):  # type: ignore[attr-defined]
                out.write(view[:n])
        staging.files.add(rel)


def extract_tar(stream: BinaryIO, staging_dir: Path | str, *, max_size: int | None = None) -> list[str]:
    """Extract an uncompressed tar stream into ``staging_dir`` (created if missing); return entry names.

    Raises :class:`UnsafeLayerError` naming the first bad entry (see :func:`tar_members`); what was
    already written stays in the staging directory, which the caller discards.
    """
    sink = DirectorySink(staging_dir)
    names = []
    for member in tar_members(stream, max_size=max_size):
        sink.add(member)
        names.append(member.name)
    return names


def extract_raw(
    stream: BinaryIO, staging_dir: Path | str, filepath: str, mode: int = 0o644, size: int | None = None
) -> str:
    """Write a raw layer (one file's bytes) to ``staging_dir/filepath``; return the relative path.

    ``filepath`` comes from the layer's ``org.cncf.model.filepath`` annotation and must be local.
    When ``size`` is given the stream must hold exactly that many bytes.
    """
    member = raw_member(stream, filepath, mode, size)
    DirectorySink(staging_dir).add(member)
    return member.name


def _lstat_mode(path: str) -> int:
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return 0


@dataclass(frozen=True)
class _Move:
    src: str
    dst: str
    replace: bool  # an existing regular file is overwritten


def merge_tree(staging_dir: Path | str, dest_dir: Path | str, existing: str = "error") -> None:
    """Move everything in ``staging_dir`` into ``dest_dir`` (created if missing), all or nothing.

    ``existing`` decides what happens to files that already exist in the destination: ``error``
    (kit's default: ``path 'x' already exists``), ``overwrite`` (they must be regular files) or
    ``ignore`` (kept as they are). Existing directories are reused. Every conflict is found
    before anything moves; staging must be on the destination's filesystem (renames only).
    """
    if existing not in EXISTING_POLICIES:
        raise UnpackError(f"invalid existing-file policy {existing!r}: use one of {', '.join(EXISTING_POLICIES)}")
    src_root, dst_root = os.fspath(staging_dir), os.fspath(dest_dir)
    os.makedirs(dst_root, exist_ok=True)
    moves: list[_Move] = []
    conflicts: list[str] = []
    _plan(src_root, dst_root, "", existing, moves, conflicts)
    if conflicts:
        more = f" (and {len(conflicts) - 1} more: {', '.join(conflicts[1:4])}{'...' if len(conflicts) > 4 else ''})"
        hint = "" if existing == "overwrite" else "; use overwrite to replace files or ignore to keep them"
        raise UnpackError(f"{conflicts[0]}{more if len(conflicts) > 1 else ''} in {dst_root}{hint}")
    _apply(moves, src_root)


def _plan(src_root: str, dst_root: str, rel: str, existing: str, moves: list[_Move], conflicts: list[str]) -> None:
    with os.scandir(os.path.join(src_root, rel) if rel else src_root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        child = f"{rel}/{entry.name}" if rel else entry.name
        dst = os.path.join(dst_root, child)
        is_dir = entry.is_dir(follow_symlinks=False)
        dst_mode = _lstat_mode(dst)
        if not dst_mode:
            moves.append(_Move(entry.path, dst, False))
        elif is_dir:
            if os.path.isdir(dst):  # a directory, or a symlink the user made to one
                _plan(src_root, dst_root, child, existing, moves, conflicts)
            else:
                conflicts.append(f"path '{child}' already exists")
        elif existing == "ignore":
            continue
        elif existing == "overwrite":
            if stat.S_ISREG(dst_mode):
                moves.append(_Move(entry.path, dst, True))
            else:
                conflicts.append(f"path '{child}' already exists and is not a regular file")
        else:
            conflicts.append(f"path '{child}' already exists")


def _apply(moves: list[_Move], src_root: str) -> None:
    """Rename into place; if a rename fails, undo the ones done so far (old files are kept as links)."""
    done: list[tuple[_Move, str | None]] = []
    backup_dir = os.path.join(src_root, ".merge-backup")
    try:
        for i, m in enumerate(moves):
            backup = None
            if m.replace:
                os.makedirs(backup_dir, exist_ok=True)
                backup = os.path.join(backup_dir, str(i))
                os.link(m.dst, backup)  # keeps the old bytes reachable until the merge is complete
            os.replace(m.src, m.dst) if m.replace else os.rename(m.src, m.dst)
            done.append((m, backup))
    except OSError as e:
        failed = m
        for undo, backup in reversed(done):
            try:
                os.rename(undo.dst, undo.src)
                if backup is not None:
                    os.replace(backup, undo.dst)
            except OSError:
                pass
        raise UnpackError(
            f"could not move {failed.src} to {failed.dst}: {e.strerror}; the destination was left as it was "
            "(staging must be on the same filesystem as the destination)"
        ) from None


__all__ = ["DirectorySink", "EXISTING_POLICIES", "Member", "MemberSink", "extract_raw", "extract_tar", "merge_tree",
           "raw_member", "safe_relpath", "tar_members"]
