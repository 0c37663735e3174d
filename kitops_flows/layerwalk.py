"""Which files of a context directory go into a layer, in kit's order (spec §6.2).

kit walks the *whole* context directory with ``filepath.Walk`` for every layer (entries sorted
bytewise, a directory's children right after it, never following symlinks) and keeps:

- the ancestors of the layer path (as directory entries) and everything below it;
- only regular files and directories (symlinks, devices, sockets and fifos are skipped);
- nothing ``.kitignore`` ignores (an ignored directory is pruned, unless the rules contain ``!``
  re-inclusions: then only its own entry is dropped and its children are still considered);
- nothing inside *another* layer's path, unless that path contains this layer's path
  ("most specific layer wins": with layers ``.``, ``data`` and ``data/raw``, ``data/raw/x`` goes to
  ``data/raw`` only, ``data/y`` to ``data`` only, the rest to ``.``). ``data-v2`` is not inside ``data``.

    >>> import io, tempfile, pathlib
    >>> ctx = pathlib.Path(tempfile.mkdtemp())
    >>> (ctx / "data" / "raw").mkdir(parents=True); _ = (ctx / "data" / "raw" / "a.csv").write_text("1")
    >>> _ = (ctx / "train.py").write_text("print()")
    >>> rules = IgnoreRules.from_patterns([])
    >>> [m.name for m in iter_layer_members(ctx, "data/raw/", [".", "data"], rules, print)]
    ['data', 'data/raw', 'data/raw/a.csv']
    >>> [m.name for m in iter_layer_members(ctx, ".", ["data"], rules, print)]
    ['train.py']

Warnings go to ``warn(message)``. The two kit emits name the layer type (``model``,
``dataset``...): pass it as ``kind`` and the text is kit's own, e.g.
``No files detected in dataset layer with path data``.

One kit quirk is kept on purpose because it changes the layer digest: kit decides "same tree" by
looking for the substring ``..`` in ``filepath.Rel`` results, so names such as ``v1..2`` are left out
of layers. We leave them out too (byte-identical layers) but warn about each one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import BinaryIO

from .errors import PackError
from .ignore import IgnoreRules, go_trim_space
from .kitfile import clean_path
from .tarformat import SMALL_FILE, GoTarWriter

Warn = Callable[[str], None]
_TAR_MODE_BITS = 0o7777


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1 µs per file, 20 ms for 20,000 files
class LayerMember:
    """One tar entry: ``name`` in the tar (``/``-separated, no ``./``), ``path`` on disk."""

    name: str
    path: str
    is_dir: bool
    mode: int  # permission bits + setuid/setgid/sticky, as tar.FileInfoHeader keeps them
    size: int  # 0 for directories
    # While the walk is at this member: its directory's open fd and its own name there, so it is opened
    # with a one-component lookup (``open_member``); -1 when the member was built by hand.
    dir_fd: int = field(default=-1, compare=False)
    base: str = field(default="", compare=False)
    mtime_ns: int = field(default=0, compare=False)  # from the walk's own stat (fingerprints need no second one)


def open_member(m: LayerMember) -> int:
    """Open a file member for reading (never through a symlink); PackError naming it if that fails."""
    try:
        if m.dir_fd >= 0:
            return os.open(m.base, _OPEN_FLAGS, dir_fd=m.dir_fd)
        return os.open(m.path, _OPEN_FLAGS)
    except OSError as e:
        raise PackError(f"failed to open {m.name} for packing: {e.strerror}") from None


def _is_within(path: str, directory: str) -> bool:
    """kit's ``isWithin``: ``path`` is ``directory`` or below it; everything is within ``.``."""
    return directory == "." or path == directory or path.startswith(directory + "/")


def _go_rel(base: str, target: str) -> str:
    """Go's ``filepath.Rel`` for two clean, relative, local paths."""
    if base == target:
        return "."
    b = [] if base == "." else base.split("/")
    t = [] if target == "." else target.split("/")
    common = 0
    for x, y in zip(b, t, strict=False):
        if x != y:
            break
        common += 1
    return "/".join([".."] * (len(b) - common) + t[common:]) or "."


def _kit_same_tree(base: str, path: str) -> bool:
    """kit's ``sameDirTree``: false only when both relative paths contain ``..`` as a substring."""
    return not (".." in _go_rel(base, path) and ".." in _go_rel(path, base))


def _layer_label(kind: str) -> str:
    return f"{kind} layer" if kind else "layer"


def iter_layer_members(
    context_dir: Path | str,
    layer_path: str,
    other_layer_paths: Sequence[str],
    ignore: IgnoreRules,
    warn: Warn,
    *,
    kind: str = "",
) -> Iterator[LayerMember]:
    """The entries of the tar layer for ``layer_path`` (relative to ``context_dir``), in kit's order.

    ``other_layer_paths`` are the paths of every other layer of the ModelKit (and of a parent
    ModelKit referenced by ``model.path``); files inside them are left to those layers.
    Raises :class:`PackError` if the layer path does not exist or a directory cannot be read.
    """
    context = os.fspath(Path(context_dir))
    base = clean_path(go_trim_space(layer_path))
    if base.startswith("/") or base == ".." or base.startswith("../"):
        raise PackError(f"layer path {layer_path} is outside the context directory {context}; use a relative path inside it")
    try:
        os.stat(os.path.join(context, base))
    except FileNotFoundError:
        raise PackError(f"path {base} does not exist (in context directory {context})") from None
    except OSError as e:
        raise PackError(f"cannot read layer path {base} in {context}: {e.strerror}") from None

    label = _layer_label(kind)
    if ignore.matches(base):
        warn(f"Warning: {label} path {base} ignored by kitignore")
    # Other layers that contain this one (e.g. ".") do not take anything away from it.
    claimed = [p for p in (clean_path(go_trim_space(o)) for o in other_layer_paths) if not _is_within(base, p)]
    prune_ignored = not ignore.has_exclusions
    base_prefix = base + "/"
    base_has_dots = ".." in base

    # walked paths are clean already: skip matches()' normalisation (per-file cost with 20,000 files);
    # without "!" rules an excluded directory is pruned, so a walked path's parent matched nothing
    matches = ignore.matches_walked if prune_ignored else ignore.matches_clean

    def excluded(rel: str) -> bool:
        return matches(rel) or (bool(claimed) and any(_is_within(rel, p) for p in claimed))

    # Depth-first, children sorted bytewise, exactly as filepath.Walk visits them. Each directory on the
    # stack is held open: its entries are stat'ed and opened relative to it (one path component per lookup
    # instead of the whole path, a visible share of the time with 20,000 files).
    stack: list[tuple[int, str, Iterator[tuple[str, os.DirEntry[str]]]]] = []
    _push_dir(stack, None, context, context, context, ".", flags=_ROOT_FLAGS)  # the context may be a symlink
    total = 0
    try:
        while stack:
            dir_fd, directory, children = stack[-1]
            try:
                rel, entry = next(children)
            except StopIteration:
                stack.pop()
                if dir_fd >= 0:
                    os.close(dir_fd)
                continue
            inside = base == "." or rel == base or rel.startswith(base_prefix)
            if not inside and not base.startswith(rel + "/"):
                continue  # neither below nor above the layer path: pruned
            if (base_has_dots or ".." in rel) and not _kit_same_tree(base, rel):
                warn(f"Skipping {rel}: kit leaves out paths whose names contain '..' (rename it to pack it)")
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # vanished since the directory was listed
            except OSError as e:
                raise PackError(f"cannot stat {rel} in {context}: {e.strerror}") from None
            mode = st.st_mode
            is_dir = stat.S_ISDIR(mode)
            if not is_dir and not stat.S_ISREG(mode):
                if inside and not excluded(rel):
                    if stat.S_ISLNK(mode):
                        warn(f"Skipping symlink {rel} (symlinks are not supported)")
                    else:
                        warn(f"Skipping {rel}: only regular files and directories can be packed")
                continue
            path = directory + "/" + entry.name
            if excluded(rel):
                if is_dir and not prune_ignored:
                    _push_dir(stack, dir_fd, entry.name, path, context, rel)
                continue
            if is_dir:
                yield LayerMember(rel, path, True, mode & _TAR_MODE_BITS, 0, dir_fd, entry.name, st.st_mtime_ns)
                _push_dir(stack, dir_fd, entry.name, path, context, rel)
            else:
                total += st.st_size
                yield LayerMember(rel, path, False, mode & _TAR_MODE_BITS, st.st_size, dir_fd, entry.name,
                                  st.st_mtime_ns)
    finally:
        for fd, _, _ in stack:
            if fd >= 0:
                os.close(fd)
    if total == 0:
        warn(f"No files detected in {label} with path {base}")


def _push_dir(stack: list[tuple[int, str, Iterator[tuple[str, os.DirEntry[str]]]]], parent_fd: int | None,
              name: str, path: str, context: str, rel: str, *, flags: int = 0) -> None:
    """Open directory ``name`` (relative to ``parent_fd``) and push it with its sorted children.

    Below ``MAX_OPEN_DIRS`` levels a directory is listed by path and not held open (fd -1; its entries are
    then stat'ed and opened by path), so a pathologically deep tree cannot exhaust the process's fds.
    """
    if len(stack) >= MAX_OPEN_DIRS:
        stack.append((-1, path, _sorted_children(path, context, rel)))
        return
    try:
        fd = os.open(name, flags or _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as e:
        raise PackError(f"cannot read directory {rel} in {context}: {e.strerror}") from None
    try:
        children = _sorted_children(fd, context, "" if rel == "." else rel)
    except BaseException:
        os.close(fd)
        raise
    stack.append((fd, path, children))


def _sorted_children(directory: int | str, context: str, rel: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative path, entry) of a directory's children, sorted by their bytes like Go's sort.Strings."""
    try:
        with os.scandir(directory) as it:
            entries = list(it)
    except OSError as e:
        raise PackError(f"cannot read directory {rel or '.'} in {context}: {e.strerror}") from None
    if "".join(e.name for e in entries).isascii():
        entries.sort(key=_NAME)  # same order as the bytes, without encoding each name
    else:
        entries.sort(key=lambda e: e.name.encode("utf-8", "surrogateescape"))
    prefix = rel + "/" if rel else ""
    return ((prefix + e.name, e) for e in entries)


_NAME = attrgetter("name")


def write_tar_layer(
    context_dir: Path | str,
    layer_path: str,
    other_layer_paths: Sequence[str],
    ignore: IgnoreRules,
    out: BinaryIO,
    warn: Warn,
    *,
    kind: str = "",
) -> int:
    """Write the tar layer for ``layer_path`` to ``out`` (kit's bytes); returns the number of entries.

    Usage (pack streams ``out`` through the digest and into the store)::

        with store.ingest() as blob:
            write_tar_layer(ctx, "model", ["data", "."], IgnoreRules.from_context(ctx), blob, log.warning,
                            kind="model")

    The walk runs in the caller's thread, in walk order: files are stat'ed and opened relative to their
    open directory, small ones read with one ``read`` each and their entries gathered into ~1 MiB writes,
    big files streamed. Hashing and writing those MiB is ``out``'s business: pack gives a
    ``WriteBehind``, which does it on a second thread. Read-ahead threads (walker, reader) were measured
    against this: handing the GIL back and forth per file cost more than the overlapped syscalls saved
    (bench/pack_bench.py); a hand-off per MiB costs nothing visible.
    """
    writer = GoTarWriter(out)
    for m in iter_layer_members(context_dir, layer_path, other_layer_paths, ignore, warn, kind=kind):
        if m.is_dir:
            writer.add_dir(m.name, m.mode)
            continue
        data = _read_small(m)
        if data is None:  # big, or changed size: streamed (and checked) by the writer
            _add_streamed(writer, m)
        else:
            writer.add_file_bytes(m.name, m.mode, data)
    writer.close()
    return writer.entries


def _read_small(m: LayerMember) -> bytes | None:
    """A small file's bytes, read with one ``read`` of size + 1 (a regular file's short read is its end, so
    this also checks it did not grow); None when it is big or changed size: the caller streams and checks it."""
    if m.size > SMALL_FILE:
        return None
    fd = open_member(m)
    try:
        data = os.read(fd, m.size + 1)
    finally:
        os.close(fd)
    return data if len(data) == m.size else None


def _add_streamed(writer: GoTarWriter, m: LayerMember) -> None:
    fd = open_member(m)
    try:
        writer.add_file(m.name, m.mode, m.size, _FdReader(fd))  # type: ignore[arg-type]
    finally:
        os.close(fd)


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
#: Directories the walk holds open at once (one per level); deeper levels are read by path.
MAX_OPEN_DIRS = 64
_DIR_FLAGS = _OPEN_FLAGS | getattr(os, "O_DIRECTORY", 0)
_ROOT_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_DIRECTORY", 0)


class _FdReader:
    """A bare ``read`` over a file descriptor: with 20,000 small files the cost of building an
    ``io.FileIO`` per file is a visible share of packing time."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def read(self, n: int = -1) -> bytes:
        return os.read(self._fd, n if n is not None and n >= 0 else 1 << 20)


__all__ = ["LayerMember", "iter_layer_members", "open_member", "write_tar_layer"]
