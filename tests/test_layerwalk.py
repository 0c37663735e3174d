"""kit's layer walk: order, ancestors, most-specific layer, ignore pruning, skipped entry kinds."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from kitops_flows.errors import PackError
from kitops_flows.ignore import IgnoreRules
from kitops_flows.layerwalk import LayerMember, iter_layer_members, open_member, write_tar_layer


def touch(root: Path, *names: str, data: bytes = b"x") -> None:
    for name in names:
        p = root / name
        if name.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)


def walk(
    ctx: Path, layer: str, others: list[str] | None = None, patterns: list[str] | None = None, kind: str = "model"
) -> tuple[list[str], list[str]]:
    warnings: list[str] = []
    rules = IgnoreRules.from_patterns(patterns or [])
    names = [m.name for m in iter_layer_members(ctx, layer, others or [], rules, warnings.append, kind=kind)]
    return names, warnings


def test_walk_order_is_go_filepath_walk(tmp_path: Path) -> None:
    touch(tmp_path, "a.txt", "a-b", "a/x", "a/y/z", "A", "b/")
    names, _ = walk(tmp_path, ".")
    assert names == ["A", "a", "a/x", "a/y", "a/y/z", "a-b", "a.txt", "b"]


def test_ancestors_are_included_and_their_siblings_are_not(tmp_path: Path) -> None:
    touch(tmp_path, "test5/subdir/subdir2/f.csv", "test5/other.csv", "test5/subdir/sib.csv", "top.txt")
    names, _ = walk(tmp_path, "./test5/subdir/subdir2/")
    assert names == ["test5", "test5/subdir", "test5/subdir/subdir2", "test5/subdir/subdir2/f.csv"]


def test_single_file_layer(tmp_path: Path) -> None:
    touch(tmp_path, "test4/file.txt", "test4/other.txt")
    names, _ = walk(tmp_path, "test4/file.txt")
    assert names == ["test4", "test4/file.txt"]


def test_most_specific_layer_wins(tmp_path: Path) -> None:
    touch(tmp_path, "main-dir/a.bin", "main-dir/subdir/b.csv", "train.py", "data/x", "data-v2/y")
    layers = [".", "main-dir", "main-dir/subdir", "data"]

    def layer(path: str) -> list[str]:
        return walk(tmp_path, path, [p for p in layers if p != path])[0]

    assert layer(".") == ["data-v2", "data-v2/y", "train.py"]  # data-v2 is not within data
    assert layer("main-dir") == ["main-dir", "main-dir/a.bin"]
    assert layer("main-dir/subdir") == ["main-dir", "main-dir/subdir", "main-dir/subdir/b.csv"]
    assert layer("data") == ["data", "data/x"]


def test_other_layer_paths_are_cleaned(tmp_path: Path) -> None:
    touch(tmp_path, "models/a", "models/sub/b")
    assert walk(tmp_path, "models", [" ./models/sub/ "])[0] == ["models", "models/a"]


def test_kitignore_prunes_directories_without_exclusions(tmp_path: Path) -> None:
    touch(tmp_path, "data/keep.csv", "data/drop.tmp", "cache/x", "cache/y/z", "ok.txt")
    locked = tmp_path / "cache" / "locked"
    locked.mkdir()
    os.chmod(locked, 0)
    try:
        names, _ = walk(tmp_path, ".", patterns=["cache", "*.tmp", "**/*.tmp"])
    finally:
        os.chmod(locked, 0o755)
    # the unreadable dir inside the pruned "cache" was never opened
    assert names == ["data", "data/keep.csv", "ok.txt"]


def test_kitignore_with_exclusions_visits_children_of_ignored_dirs(tmp_path: Path) -> None:
    touch(tmp_path, "data/keep.csv", "data/drop.csv", "data/sub/deep.csv")
    names, _ = walk(tmp_path, ".", patterns=["data", "!data/keep.csv"])
    # the dir entry itself is ignored; the re-included file appears without its parent entry
    assert names == ["data/keep.csv"]


def test_kitfile_and_kitignore_at_root_are_never_packed(tmp_path: Path) -> None:
    touch(tmp_path, "Kitfile", ".kitignore", "kitfile", ".kitfile", "sub/Kitfile", "model.bin")
    names, _ = walk(tmp_path, ".")
    assert names == ["model.bin", "sub", "sub/Kitfile"]


def test_symlinks_are_skipped_with_warning_and_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    touch(outside, "secret.txt")
    ctx = tmp_path / "ctx"
    touch(ctx, "model/w.bin")
    os.symlink(outside, ctx / "model" / "linked-dir")
    os.symlink(outside / "secret.txt", ctx / "model" / "linked-file")
    os.symlink(outside, ctx / "unrelated-link")
    names, warnings = walk(ctx, "model")
    assert names == ["model", "model/w.bin"]
    assert "Skipping symlink model/linked-dir (symlinks are not supported)" in warnings
    assert "Skipping symlink model/linked-file (symlinks are not supported)" in warnings
    assert not any("unrelated-link" in w for w in warnings)


def test_fifos_are_skipped(tmp_path: Path) -> None:
    touch(tmp_path, "d/f")
    os.mkfifo(tmp_path / "d" / "pipe")
    names, warnings = walk(tmp_path, "d")
    assert names == ["d", "d/f"]
    assert any("d/pipe" in w and "regular files and directories" in w for w in warnings)


def test_missing_layer_path(tmp_path: Path) -> None:
    with pytest.raises(PackError, match=r"path models/v1 does not exist"):
        walk(tmp_path, "./models/v1/")


@pytest.mark.parametrize("bad", ["../x", "/etc", "a/../../x"])
def test_layer_path_outside_context(tmp_path: Path, bad: str) -> None:
    with pytest.raises(PackError, match="outside the context directory"):
        walk(tmp_path, bad)


def test_warnings_name_the_layer_type(tmp_path: Path) -> None:
    touch(tmp_path, "data/")
    touch(tmp_path, "empty-files/a", data=b"")
    touch(tmp_path, "logs/a.log")
    assert walk(tmp_path, "data", kind="dataset")[1] == ["No files detected in dataset layer with path data"]
    # kit sums sizes: a layer of empty files also "has no files"
    assert walk(tmp_path, "empty-files", kind="code")[1] == ["No files detected in code layer with path empty-files"]
    names, warnings = walk(tmp_path, "logs", patterns=["logs"], kind="docs")
    assert names == []
    assert warnings == [
        "Warning: docs layer path logs ignored by kitignore",
        "No files detected in docs layer with path logs",
    ]
    assert walk(tmp_path, "data", kind="")[1] == ["No files detected in layer with path data"]


def test_names_containing_dot_dot_are_left_out_like_kit(tmp_path: Path) -> None:
    touch(tmp_path, "m/v1..2.bin", "m/ok.bin", "x..y/z")
    names, warnings = walk(tmp_path, ".")
    assert names == ["m", "m/ok.bin"]
    assert sorted(w.split(":")[0] for w in warnings if "'..'" in w) == ["Skipping m/v1..2.bin", "Skipping x..y"]


def test_members_carry_mode_size_and_path(tmp_path: Path) -> None:
    touch(tmp_path, "m/run.sh", data=b"#!/bin/sh\n")
    os.chmod(tmp_path / "m" / "run.sh", 0o4750)
    os.chmod(tmp_path / "m", 0o2755)
    members = list(iter_layer_members(tmp_path, "m", [], IgnoreRules.from_patterns([]), print))
    assert members == [
        LayerMember("m", str(tmp_path / "m"), True, 0o2755, 0),
        LayerMember("m/run.sh", str(tmp_path / "m" / "run.sh"), False, 0o4750, 10),
    ]


def test_write_tar_layer_round_trip(tmp_path: Path) -> None:
    touch(tmp_path, "code/src/app.py", data=b"print('hi')\n")
    touch(tmp_path, "code/README.md", data=b"# app\n")
    touch(tmp_path, "data/big.csv", data=b"1,2\n" * 1000)
    out = io.BytesIO()
    count = write_tar_layer(tmp_path, "code", ["data"], IgnoreRules.from_context(tmp_path), out, print, kind="code")
    assert count == 4
    out.seek(0)
    with tarfile.open(fileobj=out) as t:
        assert t.getnames() == ["code", "code/README.md", "code/src", "code/src/app.py"]
        assert t.extractfile("code/src/app.py").read() == b"print('hi')\n"  # type: ignore[union-attr]


def test_file_changing_size_during_pack_fails(tmp_path: Path) -> None:
    touch(tmp_path, "m/a.bin", data=b"12345")
    members = iter_layer_members(tmp_path, "m", [], IgnoreRules.from_patterns([]), print)
    from kitops_flows.tarformat import GoTarWriter

    tw = GoTarWriter(io.BytesIO())
    for m in members:
        if m.is_dir:
            tw.add_dir(m.name, m.mode)
            continue
        (tmp_path / "m" / "a.bin").write_bytes(b"1234567")  # grew after lstat
        with open(m.path, "rb") as f, pytest.raises(PackError, match="does not match expected size: m/a.bin"):
            tw.add_file(m.name, m.mode, m.size, f)


def test_many_files_cost_little_more_than_reading_them(tmp_path: Path) -> None:
    """Walk + ignore + headers for 2,000 files stay within a small factor of bare scandir/stat/read."""
    for d in range(8):
        sub = tmp_path / "data" / f"part-{d:02d}"
        sub.mkdir(parents=True)
        for i in range(250):
            (sub / f"{i:04d}.json").write_bytes(b'{"v": 1}')

    start = time.perf_counter()
    for sub in sorted((tmp_path / "data").iterdir()):
        with os.scandir(sub) as it:
            for e in it:
                size = e.stat(follow_symlinks=False).st_size
                with open(e.path, "rb", buffering=0) as f:
                    f.read(size)
    bare = time.perf_counter() - start

    out = io.BytesIO()
    start = time.perf_counter()
    count = write_tar_layer(tmp_path, "data", ["."], IgnoreRules.from_patterns(["**/*.tmp", "!keep.tmp"]), out, print)
    ours = time.perf_counter() - start
    assert count == 2000 + 9
    assert ours < 4 * bare + 0.5, f"write_tar_layer {ours:.2f}s vs bare I/O {bare:.2f}s for 2,000 files"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_walk_holds_directories_open_only_while_inside_them(tmp_path: Path) -> None:
    """Entries are opened relative to their directory's fd: a context reached through a symlink still
    works, a swapped-in symlink is never followed, and no fd outlives the walk (done, abandoned or failed)."""
    touch(tmp_path / "real", "m/a/x.bin", "m/b/y.bin", "m/c.bin", data=b"abc")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    before = _open_fds()
    out = io.BytesIO()
    assert write_tar_layer(tmp_path / "link", "m", [], IgnoreRules.from_patterns([]), out, print) == 6
    assert _open_fds() == before
    out.seek(0)
    with tarfile.open(fileobj=out) as t:
        assert t.getnames() == ["m", "m/a", "m/a/x.bin", "m/b", "m/b/y.bin", "m/c.bin"]

    walker = iter_layer_members(tmp_path / "real", "m", [], IgnoreRules.from_patterns([]), print)
    assert [next(walker).name for _ in range(3)] == ["m", "m/a", "m/a/x.bin"]
    walker.close()  # abandoned mid-walk
    assert _open_fds() == before

    # a file replaced by a symlink after the walk listed it: O_NOFOLLOW refuses to read through it
    walker = iter_layer_members(tmp_path / "real", "m", [], IgnoreRules.from_patterns([]), print)
    with pytest.raises(PackError, match="failed to open m/a/x.bin"):
        for m in walker:
            if m.name == "m/a/x.bin":
                os.remove(m.path)
                os.symlink("/etc/passwd", m.path)
                open_member(m)
    walker.close()
    assert _open_fds() == before


def test_a_tree_deeper_than_the_open_directory_cap_packs_the_same_bytes(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_OPEN_DIRS levels directories are read by path, not held open: same tar, no fd left behind."""
    from kitops_flows import layerwalk

    deep = "m/" + "/".join(f"d{i}" for i in range(12))
    touch(tmp_path, f"{deep}/leaf.bin", "m/d0/side.bin", f"{deep}/z.bin", data=b"data")
    held = io.BytesIO()
    write_tar_layer(tmp_path, "m", [], IgnoreRules.from_patterns([]), held, print)
    before = _open_fds()
    monkeypatch.setattr(layerwalk, "MAX_OPEN_DIRS", 4)
    capped = io.BytesIO()
    entries = write_tar_layer(tmp_path, "m", [], IgnoreRules.from_patterns([]), capped, print)
    assert capped.getvalue() == held.getvalue() and entries == 16
    by_path = [m.name for m in iter_layer_members(tmp_path, "m", [], IgnoreRules.from_patterns([]), print)
               if m.dir_fd == -1]
    assert f"{deep}/leaf.bin" in by_path and "m/d0/side.bin" not in by_path
    assert _open_fds() == before


def test_a_directory_swapped_for_a_symlink_mid_walk_is_not_followed(tmp_path: Path) -> None:
    """The walk opens each directory with O_NOFOLLOW relative to its parent: a directory replaced by a
    symlink after it was listed stops the pack with its name instead of packing what the link points at."""
    touch(tmp_path / "ctx", "m/a/x.bin", data=b"mine")
    touch(tmp_path / "outside", "secret.txt", data=b"not yours")
    before = _open_fds()
    walker = iter_layer_members(tmp_path / "ctx", "m", [], IgnoreRules.from_patterns([]), print)
    names = []
    with pytest.raises(PackError, match=r"cannot read directory m/a in .*: (Not a directory|Too many levels of symbolic links)"):
        for m in walker:
            names.append(m.name)
            if m.name == "m/a":  # listed and yielded; the walk opens it when it resumes
                (tmp_path / "ctx" / "m" / "a" / "x.bin").unlink()
                (tmp_path / "ctx" / "m" / "a").rmdir()
                (tmp_path / "ctx" / "m" / "a").symlink_to(tmp_path / "outside")
    assert names == ["m", "m/a"]
    assert _open_fds() == before
