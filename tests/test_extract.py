"""Untrusted layers: hostile tars are refused and leave nothing in the destination; merges are all-or-nothing."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kitops_flows.errors import UnpackError, UnsafeLayerError
from kitops_flows.extract import extract_raw, extract_tar, merge_tree
from kitops_flows.ignore import IgnoreRules
from kitops_flows.layerwalk import write_tar_layer

Entry = tuple[str, bytes | None]  # (name, data) or (name, None) for a directory


def _info(name: str, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def make_tar(*members: tuple[tarfile.TarInfo, bytes | None], fmt: int = tarfile.PAX_FORMAT) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, mode=mode), data


def directory(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    return _info(name, type=tarfile.DIRTYPE, mode=mode), None


def special(name: str, typ: bytes, **kw: object) -> tuple[tarfile.TarInfo, None]:
    return _info(name, type=typ, **kw), None


def _declared_huge() -> io.BytesIO:
    # a header declaring 1 TiB followed by only a little data
    info = _info("huge.bin", size=1 << 40)
    raw = info.tobuf(tarfile.PAX_FORMAT) + b"\0" * 1024
    return io.BytesIO(raw)


def _non_utf8_name() -> io.BytesIO:
    info = _info("caf\udce9.txt", size=1)
    raw = info.tobuf(tarfile.USTAR_FORMAT, encoding="utf-8", errors="surrogateescape") + b"x".ljust(512, b"\0")
    return io.BytesIO(raw + b"\0" * 1024)


def _nul_in_pax_path() -> io.BytesIO:
    info = _info("ok.txt", size=1, pax_headers={"path": "a\0b"})
    return io.BytesIO(info.tobuf(tarfile.PAX_FORMAT) + b"x".ljust(512, b"\0") + b"\0" * 1024)


HOSTILE: dict[str, tuple[Callable[[], io.BytesIO], str]] = {
    "absolute": (lambda: make_tar(file("/etc/passwd")), "absolute"),
    "dotdot": (lambda: make_tar(file("../x")), r"contains '\.\.'"),
    "nested dotdot": (lambda: make_tar(file("a/../../x")), r"contains '\.\.'"),
    "dotdot dir": (lambda: make_tar(directory("a/.."), file("a/b")), r"contains '\.\.'"),
    "symlink then file through it": (
        lambda: make_tar(special("etc", tarfile.SYMTYPE, linkname="/etc"), file("etc/evil")),
        "'etc' is a symlink",
    ),
    "hardlink": (lambda: make_tar(special("passwd", tarfile.LNKTYPE, linkname="/etc/passwd")), "hard link"),
    "char device": (lambda: make_tar(special("null", tarfile.CHRTYPE, devmajor=1, devminor=3)), "character device"),
    "block device": (lambda: make_tar(special("sda", tarfile.BLKTYPE, devmajor=8)), "block device"),
    "fifo": (lambda: make_tar(special("pipe", tarfile.FIFOTYPE)), "fifo"),
    "duplicate file": (lambda: make_tar(file("a.txt", b"1"), file("a.txt", b"2")), "duplicate entry 'a.txt'"),
    "file under file": (lambda: make_tar(file("a"), file("a/b")), "below the file 'a'"),
    "dir over file": (lambda: make_tar(file("a"), directory("a")), "is a directory but a file"),
    "file over dir": (lambda: make_tar(directory("a"), file("a")), "is a file but a directory"),
    "root as file": (lambda: make_tar(file("./")), "root directory"),
    "non-utf8 name": (_non_utf8_name, "not valid UTF-8"),
    "nul in pax path": (_nul_in_pax_path, "NUL"),
    "truncated data": (_declared_huge, "layer ended in the middle of 'huge.bin'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tar_is_refused_and_dest_untouched(case: str, tmp_path: Path) -> None:
    build, message = HOSTILE[case]
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "existing.txt").write_text("mine")
    staging = tmp_path / ".dest.unpack"
    outside = tmp_path.parent / f"escape-{case.replace(' ', '-')}"
    with pytest.raises(UnpackError, match=message):
        extract_tar(build(), staging)
        merge_tree(staging, dest)  # not reached
    assert sorted(os.listdir(dest)) == ["existing.txt"]
    assert not outside.exists()
    for root, _dirs, files in os.walk(staging):
        for name in files:
            assert not os.path.islink(os.path.join(root, name))


def test_hostile_entries_are_unsafe_layer_errors(tmp_path: Path) -> None:
    for case in ("absolute", "dotdot", "symlink then file through it", "hardlink", "char device", "duplicate file"):
        with pytest.raises(UnsafeLayerError):
            extract_tar(HOSTILE[case][0](), tmp_path / case)


def test_declared_size_over_max_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(UnsafeLayerError, match=r"'huge.bin' declares 1099511627776 bytes, more than the allowed 1000"):
        extract_tar(_declared_huge(), tmp_path / "s", max_size=1000)
    assert not (tmp_path / "s" / "huge.bin").exists()


def test_not_a_tar(tmp_path: Path) -> None:
    with pytest.raises(UnpackError, match="not a valid tar archive"):
        extract_tar(io.BytesIO(b"\x01" * 700), tmp_path / "s")


def test_good_tar_modes_and_names(tmp_path: Path) -> None:
    tar = make_tar(
        directory("model", 0o750),
        file("model/run.sh", b"#!/bin/sh\n", 0o4755),   # setuid stripped
        file("model/secret", b"s", 0o600),
        directory("./data/", 0o555),                     # owner rwx added for directories
        file("data//rows.csv", b"1\n"),
        file("implicit/parent/x.bin", b"x"),              # parents created without entries
        (_info("oldstyle", type=tarfile.AREGTYPE), b"a"),
        directory("."),
    )
    staging = tmp_path / "staging"
    names = extract_tar(tar, staging)
    assert names == [
        "model", "model/run.sh", "model/secret", "data", "data/rows.csv", "implicit/parent/x.bin", "oldstyle",
    ]
    umask = os.umask(0)
    os.umask(umask)

    def perm(p: str) -> int:
        return stat.S_IMODE(os.lstat(staging / p).st_mode)

    assert perm("model/run.sh") == 0o755 & ~umask
    assert perm("model/secret") == 0o600 & ~umask
    assert perm("model") == 0o750 & ~umask
    assert perm("data") == (0o555 | 0o700) & ~umask
    assert (staging / "implicit" / "parent" / "x.bin").read_bytes() == b"x"
    assert (staging / "oldstyle").read_bytes() == b"a"


def test_our_own_tars_round_trip(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "m" / ("d" * 120)).mkdir(parents=True)
    (ctx / "m" / ("d" * 120) / ("é" * 70)).write_bytes(os.urandom(2_000_000))
    (ctx / "m" / "empty").mkdir()
    out = io.BytesIO()
    write_tar_layer(ctx, "m", [], IgnoreRules.from_patterns([]), out, print)
    out.seek(0)
    names = extract_tar(out, tmp_path / "s")
    assert names == ["m", "m/" + "d" * 120, f"m/{'d' * 120}/{'é' * 70}", "m/empty"]
    assert (tmp_path / "s" / names[2]).read_bytes() == (ctx / names[2]).read_bytes()


def test_same_file_from_two_layers_conflicts(tmp_path: Path) -> None:
    staging = tmp_path / "s"
    extract_tar(make_tar(directory("a"), file("a/x")), staging)
    extract_tar(make_tar(directory("a"), file("a/y")), staging)  # shared ancestor dirs are fine
    with pytest.raises(UnpackError, match="path 'a/x' already exists in the staging directory"):
        extract_tar(make_tar(file("a/x")), staging)


# --- raw layers --------------------------------------------------------------------------------------

def test_extract_raw(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    rel = extract_raw(io.BytesIO(data), tmp_path / "s", "./models/w.gguf", 0o640, len(data))
    assert rel == "models/w.gguf"
    assert (tmp_path / "s" / rel).read_bytes() == data
    assert stat.S_IMODE(os.stat(tmp_path / "s" / rel).st_mode) & 0o700 == 0o600


@pytest.mark.parametrize(
    ("filepath", "message"),
    [("/etc/passwd", "absolute"), ("../x", r"'\.\.'"), ("a/../../x", r"'\.\.'"), (".", "names a directory")],
)
def test_extract_raw_refuses_non_local_paths(tmp_path: Path, filepath: str, message: str) -> None:
    with pytest.raises(UnsafeLayerError, match=message):
        extract_raw(io.BytesIO(b"x"), tmp_path / "s", filepath, 0o644, 1)


def test_extract_raw_size_checks(tmp_path: Path) -> None:
    with pytest.raises(UnsafeLayerError, match="more than its declared 4 bytes"):
        extract_raw(io.BytesIO(b"12345"), tmp_path / "a", "f", 0o644, 4)
    with pytest.raises(UnpackError, match="holds 3 bytes, its metadata says 4"):
        extract_raw(io.BytesIO(b"123"), tmp_path / "b", "f", 0o644, 4)
    assert extract_raw(io.BytesIO(b"123"), tmp_path / "c", "f", 0o644, None) == "f"


# --- merge -------------------------------------------------------------------------------------------

def _staged(tmp_path: Path, *entries: Entry) -> Path:
    staging = tmp_path / ".dest.unpack-1"
    for name, data in entries:
        p = staging / name
        if data is None:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    return staging


def _snapshot(root: Path) -> dict[str, bytes | None]:
    snap: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            snap[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in files:
            snap[os.path.relpath(os.path.join(dirpath, f), root)] = Path(dirpath, f).read_bytes()
    return snap


def test_merge_into_fresh_and_existing_dirs(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "data").mkdir(parents=True)
    (dest / "data" / "old.csv").write_bytes(b"old")
    staging = _staged(tmp_path, ("data/new.csv", b"new"), ("model/w.bin", b"w"), ("Kitfile", b"k"))
    merge_tree(staging, dest)
    assert _snapshot(dest) == {
        "data": None, "data/old.csv": b"old", "data/new.csv": b"new", "model": None, "model/w.bin": b"w",
        "Kitfile": b"k",
    }


def test_merge_conflicts_are_all_checked_before_moving(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "b").mkdir(parents=True)
    (dest / "b" / "x").write_bytes(b"mine")
    (dest / "z.txt").write_bytes(b"mine too")
    before = _snapshot(dest)
    # "a/new" sorts before the conflicts and would be moved first if moves happened eagerly
    staging = _staged(tmp_path, ("a/new", b"1"), ("b/x", b"theirs"), ("z.txt", b"theirs"))
    with pytest.raises(UnpackError, match=r"path 'b/x' already exists \(and 1 more: path 'z.txt' already exists\)"):
        merge_tree(staging, dest)
    assert _snapshot(dest) == before


def test_merge_overwrite_and_ignore(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "f").write_bytes(b"old")
    merge_tree(_staged(tmp_path, ("f", b"new"), ("g", b"g")), dest, existing="ignore")
    assert (dest / "f").read_bytes() == b"old" and (dest / "g").read_bytes() == b"g"
    merge_tree(_staged(tmp_path, ("f", b"new")), dest, existing="overwrite")
    assert (dest / "f").read_bytes() == b"new"


def test_merge_overwrite_requires_regular_files(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "d").mkdir(parents=True)
    os.symlink("/etc/hostname", dest / "link")
    before = _snapshot(dest)
    staging = _staged(tmp_path, ("d", b"file over dir"), ("link", b"file over symlink"))
    with pytest.raises(UnpackError, match="path 'd' already exists and is not a regular file"):
        merge_tree(staging, dest, existing="overwrite")
    assert _snapshot(dest) == before
    assert os.path.islink(dest / "link")


def test_merge_directory_over_file_always_conflicts(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "model").write_bytes(b"a file")
    for policy in ("error", "overwrite", "ignore"):
        with pytest.raises(UnpackError, match="path 'model' already exists"):
            merge_tree(_staged(tmp_path, ("model/w.bin", b"w")), dest, existing=policy)
    assert (dest / "model").read_bytes() == b"a file"


def test_merge_rejects_unknown_policy(tmp_path: Path) -> None:
    with pytest.raises(UnpackError, match="invalid existing-file policy 'skip'"):
        merge_tree(tmp_path, tmp_path / "d", existing="skip")


def test_merge_rolls_back_when_a_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "b").write_bytes(b"old b")
    before = _snapshot(dest)
    staging = _staged(tmp_path, ("a", b"new a"), ("b", b"new b"), ("c", b"new c"))
    real_rename = os.rename

    def failing_rename(src: str, dst: str) -> None:
        if dst.endswith(os.sep + "c"):
            raise OSError(18, "Invalid cross-device link")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(UnpackError, match="destination was left as it was"):
        merge_tree(staging, dest, existing="overwrite")
    monkeypatch.undo()
    assert _snapshot(dest) == before
