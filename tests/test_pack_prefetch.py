"""write_tar_layer's fast path (small files read whole with one ``read``, entries coalesced by GoTarWriter,
big or changed files streamed) keeps kit's bytes and the error rules: same tar as a plain entry-by-entry
write, errors raised in walk order with the file's name, no thread left behind after a failure."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitops_flows import layerwalk
from kitops_flows.errors import PackError
from kitops_flows.ignore import IgnoreRules
from kitops_flows.layerwalk import LayerMember, write_tar_layer
from kitops_flows.tarformat import SMALL_FILE, GoTarWriter


def _tree(root: Path, files: int) -> None:
    for i in range(files):
        d = root / "data" / f"shard{i // 300:02}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05}.bin").write_bytes(os.urandom(i % 5000))
    (root / "data" / "big.bin").write_bytes(os.urandom(SMALL_FILE * 3 + 7))  # streamed, not read whole
    if files > 300:  # a streamed file between small ones of the same batch: the runs around it keep their order
        (root / "data" / "shard00" / "g_big.bin").write_bytes(os.urandom(SMALL_FILE + 1))


def _serial_tar(root: Path) -> bytes:
    """The same layer written entry by entry through ``add_file``, without the small-file fast path."""
    out = io.BytesIO()
    writer = GoTarWriter(out)
    for m in layerwalk.iter_layer_members(root, "data", [], IgnoreRules.from_patterns([]), print):
        if m.is_dir:
            writer.add_dir(m.name, m.mode)
        else:
            with open(m.path, "rb") as f:
                writer.add_file(m.name, m.mode, m.size, f)
    writer.close()
    return out.getvalue()


def test_fast_path_writes_the_same_bytes_as_an_entry_by_entry_walk(tmp_path: Path) -> None:
    _tree(tmp_path, 1500)  # several batches
    out = io.BytesIO()
    entries = write_tar_layer(tmp_path, "data", [], IgnoreRules.from_patterns([]), out, print)
    assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(_serial_tar(tmp_path)).digest()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        names = tf.getnames()
        assert len(names) == entries == 1500 + 2 + 5 + 1  # files, big.bin + g_big.bin, shard dirs, data
        assert tf.extractfile("data/big.bin").read() == (tmp_path / "data" / "big.bin").read_bytes()
        g_big = "data/shard00/g_big.bin"
        assert tf.extractfile(g_big).read() == (tmp_path / g_big).read_bytes()
        assert names.index("data/shard00/f00299.bin") + 1 == names.index(g_big) == names.index("data/shard01") - 1


def test_out_sees_few_large_writes(tmp_path: Path) -> None:
    _tree(tmp_path, 1200)
    sizes: list[int] = []

    class Sink:
        def write(self, data: bytes) -> int:
            sizes.append(len(data))
            return len(data)

    write_tar_layer(tmp_path, "data", [], IgnoreRules.from_patterns([]), Sink(), print)  # type: ignore[arg-type]
    assert len(sizes) < 20  # coalesced into ~1 MiB pieces, not one write per file
    assert sum(sizes) > 1200 * 512


def _members_then(tmp_path: Path, fail: Exception | None, wrong_size: bool = False) -> Iterator[LayerMember]:
    for i in range(600):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(b"x" * 100)
        yield LayerMember(f"f{i}.bin", str(p), False, 0o644, 99 if wrong_size and i == 400 else 100)
    if fail is not None:
        raise fail


def test_a_file_that_changed_size_fails_with_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layerwalk, "iter_layer_members", lambda *a, **k: _members_then(tmp_path, None, True))
    with pytest.raises(PackError, match=r"f400\.bin .*expected 99 bytes"):
        write_tar_layer(tmp_path, ".", [], IgnoreRules.from_patterns([]), io.BytesIO(), print)
    assert not [t for t in threading.enumerate() if t.name.startswith("layer-prefetch")]


def test_walk_error_reaches_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layerwalk, "iter_layer_members",
                        lambda *a, **k: _members_then(tmp_path, PackError("cannot read directory x")))
    with pytest.raises(PackError, match="cannot read directory x"):
        write_tar_layer(tmp_path, ".", [], IgnoreRules.from_patterns([]), io.BytesIO(), print)
    assert not [t for t in threading.enumerate() if t.name.startswith("layer-prefetch")]


def test_a_failing_sink_stops_the_pack(tmp_path: Path) -> None:
    _tree(tmp_path, 3000)

    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_tar_layer(tmp_path, "data", [], IgnoreRules.from_patterns([]), Full(), print)  # type: ignore[arg-type]
    assert not [t for t in threading.enumerate() if t.name.startswith("layer-prefetch")]


@pytest.mark.parametrize("path", ["data/a.txt", "data/a.txt ", " data/a.txt", "data/ b", "models/x.bin",
                                  "Kitfile", ".kitignore", "data/sub/.git", "data/..x", "logs/run1/out.log"])
def test_walk_fast_ignore_check_agrees_with_the_full_one(path: str) -> None:
    rules = IgnoreRules.from_patterns(["*.txt", "models/", "logs/**/*.log", "!logs/keep.log", "data/sub"])
    assert rules.matches_clean(path) == rules.matches(path)


@pytest.mark.parametrize("path", ["data/a.txt", "data/a.txt ", " data/a.txt", "data/ b", "models/x.bin", "models",
                                  "Kitfile", "data/Kitfile", ".kitignore", "data/sub", "data/..x", "logs/run1/out.log"])
def test_walked_ignore_check_agrees_where_the_parent_matched_nothing(path: str) -> None:
    for patterns in (["*.txt", "models/", "logs/**/*.log", "data/sub", "Kitfile"], ["*.txt", "!keep.txt", "data/sub"]):
        rules = IgnoreRules.from_patterns(patterns)
        parent = path.strip().rpartition("/")[0]
        if parent and rules.matches(parent):
            continue  # the walk never asks about a pruned directory's children
        assert rules.matches_walked(path) == rules.matches(path), (patterns, path)
