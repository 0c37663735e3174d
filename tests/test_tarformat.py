"""GoTarWriter: byte-for-byte against Go's archive/tar (tests/golden/gotar), plus streaming rules."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest
from golden.gorunner import go_header, go_tree_tar, gotar_binary

from kitops_flows.errors import PackError
from kitops_flows.ignore import IgnoreRules
from kitops_flows.layerwalk import write_tar_layer
from kitops_flows.tarformat import BLOCK, USTAR_MAX_SIZE, GoTarWriter, encode_header, split_ustar_path


@pytest.fixture(scope="module")
def gotar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gotar_binary(tmp_path_factory)


def _write(path: Path, data: bytes = b"", mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mode is not None:
        os.chmod(path, mode)


def _our_tree_tar(directory: Path) -> bytes:
    buf = io.BytesIO()
    # No ignore patterns other than kit's fixed names, which the trees below do not use.
    write_tar_layer(directory, ".", [], IgnoreRules.from_patterns([]), buf, lambda msg: None)
    return buf.getvalue()


def _first_difference(ours: bytes, theirs: bytes) -> str:
    for i in range(0, max(len(ours), len(theirs)), BLOCK):
        if ours[i : i + BLOCK] != theirs[i : i + BLOCK]:
            return f"block {i // BLOCK}: ours {ours[i:i + 160]!r}\n go {theirs[i:i + 160]!r}"
    return "identical"


def _assert_same(ours: bytes, theirs: bytes) -> None:
    assert len(ours) == len(theirs), _first_difference(ours, theirs)
    assert ours == theirs, _first_difference(ours, theirs)


# --- whole trees, walked and written by Go vs by us ------------------------------------------------

def test_tree_nested_empty_dirs_modes_and_sizes(gotar: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    _write(ctx / "a" / "x" / "deep.txt", b"deep\n")
    (ctx / "a" / "empty").mkdir()
    (ctx / "empty-top").mkdir()
    _write(ctx / "a-b", b"sibling")
    _write(ctx / "a.txt", b"", 0o600)           # empty file, 0600
    _write(ctx / "zero", b"")
    _write(ctx / "one-block", os.urandom(512))
    _write(ctx / "block-and-one", os.urandom(513), 0o755)
    _write(ctx / "setuid-tool", b"#!/bin/sh\n", 0o4755)
    _write(ctx / "setgid-tool", b"#!/bin/sh\n", 0o2750)
    (ctx / "sticky").mkdir()
    os.chmod(ctx / "sticky", 0o1777)
    (ctx / "private").mkdir()
    _write(ctx / "private" / "key", b"k", 0o400)
    os.chmod(ctx / "private", 0o700)
    _write(ctx / "big", os.urandom(3 * 1024 * 1024 + 17))  # several copy chunks, odd tail
    _assert_same(_our_tree_tar(ctx), go_tree_tar(gotar, ctx, tmp_path / "go.tar"))


def test_tree_long_names_prefix_split_and_pax(gotar: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    names = [
        "n" * 100,                                   # exactly 100: plain USTAR name
        "o" * 101,                                   # 101, no slash: PAX
        "d" * 60 + "/" + "e" * 60,                   # 121: prefix split
        "f" * 155 + "/" + "g" * 100,                 # 256: largest splittable (prefix 155, name 100)
        "h" * 155 + "/" + "i" * 101,                 # name part 101: PAX
        "j" * 156 + "/" + "k" * 10,                  # prefix would be 156: PAX
        "l" * 99 + "/" + "m" * 101,                  # PAX; truncated v7 name ends in "/" -> NUL fix-up
        "p" * 150 + "/" + "q" * 99 + "/" + "r" * 60,  # > 255: PAX, split impossible
        "s" * 40 + "/" + "t" * 40 + "/" + "u" * 40,  # split at the LAST slash within 156 bytes
        "v" * 200 + "/" + "w" * 200 + "/" + "x" * 200,  # long nested dirs
    ]
    for name in names:
        _write(ctx / name, name[-3:].encode())
    (ctx / ("y" * 120) / ("z" * 120)).mkdir(parents=True)  # long empty directory names
    _assert_same(_our_tree_tar(ctx), go_tree_tar(gotar, ctx, tmp_path / "go.tar"))


def test_tree_non_ascii_names(gotar: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    _write(ctx / "données" / "éte.csv", b"1,2\n")
    _write(ctx / "模型" / "权重.bin", os.urandom(700))
    _write(ctx / "emoji-🚀" / ("ü" * 60), b"x")       # 120 bytes, non-ASCII: PAX
    _write(ctx / "ascii" / "Ωmega", b"")
    _write(ctx / ("α" * 30) / "b", b"b")
    _assert_same(_our_tree_tar(ctx), go_tree_tar(gotar, ctx, tmp_path / "go.tar"))


def test_tree_sort_order_matches_go(gotar: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    for name in ["a/x", "a-b", "a.txt", "B", "b", "a0", "_", "~", "é", "Z/z"]:
        _write(ctx / name, name.encode())
    ours = _our_tree_tar(ctx)
    _assert_same(ours, go_tree_tar(gotar, ctx, tmp_path / "go.tar"))
    with tarfile.open(fileobj=io.BytesIO(ours)) as t:
        assert t.getnames()[:6] == ["B", "Z", "Z/z", "_", "a", "a/x"]


# --- single headers (sizes too big to write in a test) ---------------------------------------------

HEADER_CASES = [
    ("small.bin", 0, 0o644, False),
    ("small.bin", 1, 0o644, False),
    ("model", 0, 0o755, True),
    ("exec", 12345, 0o4755, False),
    ("max-ustar.bin", USTAR_MAX_SIZE - 1, 0o644, False),
    ("eight-gib.bin", USTAR_MAX_SIZE, 0o644, False),            # size record
    ("huge.bin", 5 * 2**40 + 3, 0o640, False),
    ("a" * 60 + "/" + "b" * 60, USTAR_MAX_SIZE, 0o644, False),  # splittable name, but PAX for size: path too
    ("ünïcödé/w.bin", USTAR_MAX_SIZE + 1, 0o644, False),         # path + size records
    ("ünïcödé", 0, 0o755, True),
    ("c" * 300, 7, 0o600, False),
    ("dir/" + "d" * 120, 0, 0o700, True),
]


@pytest.mark.parametrize(("name", "size", "mode", "is_dir"), HEADER_CASES)
def test_header_matches_go(gotar: Path, tmp_path: Path, name: str, size: int, mode: int, is_dir: bool) -> None:
    theirs = go_header(gotar, name, size, mode, is_dir, tmp_path / "hdr")
    _assert_same(encode_header(name, mode, size, is_dir), theirs)


def test_pax_size_record_for_8gib() -> None:
    hdr = encode_header("model/weights.bin", 0o644, USTAR_MAX_SIZE)
    assert len(hdr) == 3 * BLOCK
    assert hdr[:27] == b"model/PaxHeaders.0/weights."
    assert hdr[156:157] == b"x"
    assert hdr[BLOCK : BLOCK + 20] == b"19 size=8589934592\n\0"
    main = hdr[2 * BLOCK :]
    assert main[124:136] == b"00000000000\0"  # real size only in the PAX record
    assert main[:17] == b"model/weights.bin"
    # just below the limit stays USTAR with the size in octal
    below = encode_header("model/weights.bin", 0o644, USTAR_MAX_SIZE - 1)
    assert len(below) == BLOCK and below[124:136] == b"77777777777\0"


def test_split_prefers_last_slash() -> None:
    name = b"a" * 40 + b"/" + b"b" * 40 + b"/" + b"c" * 40
    assert split_ustar_path(name) == (b"a" * 40 + b"/" + b"b" * 40, b"c" * 40)
    assert split_ustar_path(b"short/name") is None
    assert split_ustar_path(b"x" * 101) is None
    assert split_ustar_path("é".encode() * 60 + b"/x") is None


# --- streaming and size checks -----------------------------------------------------------------------

class _CountingReader(io.RawIOBase):
    """Yields ``size`` bytes lazily and records the largest single read, to prove chunking."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.largest = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self.left)
        self.largest = max(self.largest, len(b))
        b[:n] = b"\x5a" * n
        self.left -= n
        return n


def test_large_file_streams_in_1mib_chunks() -> None:
    size = 5 * 1024 * 1024 + 1
    src = _CountingReader(size)

    class Sink:
        total = 0
        largest = 0

        def write(self, data: bytes | memoryview) -> int:
            self.total += len(data)
            self.largest = max(self.largest, len(data))
            return len(data)

    sink = Sink()
    tw = GoTarWriter(sink)  # type: ignore[arg-type]
    tw.add_file("big.bin", 0o644, size, src)
    tw.close()
    assert src.largest <= 1024 * 1024 + 1
    assert sink.largest <= 1024 * 1024
    assert sink.total == tw.bytes_written == BLOCK + size + (-size % BLOCK) + 2 * BLOCK


@pytest.mark.parametrize("actual", [0, 99, 101, 5000])
def test_size_mismatch_is_a_pack_error(actual: int) -> None:
    tw = GoTarWriter(io.BytesIO())
    with pytest.raises(PackError, match=r"file written to tar does not match expected size: data/x\.bin"):
        tw.add_file("data/x.bin", 0o644, 100, io.BytesIO(b"q" * actual))


def test_size_mismatch_large_source() -> None:
    tw = GoTarWriter(io.BytesIO())
    with pytest.raises(PackError, match="does not match expected size: w"):
        tw.add_file("w", 0o644, 2 * 1024 * 1024, _CountingReader(2 * 1024 * 1024 + 1))
    with pytest.raises(PackError, match="does not match expected size: w"):
        GoTarWriter(io.BytesIO()).add_file("w", 0o644, 2 * 1024 * 1024, _CountingReader(2 * 1024 * 1024 - 1))


def test_source_without_readinto() -> None:
    class ReadOnly:
        def __init__(self, data: bytes) -> None:
            self._b = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._b.read(min(n, 7000) if n > 0 else n)  # short reads on purpose

    data = os.urandom(1024 * 1024 + 12345)
    out = io.BytesIO()
    tw = GoTarWriter(out)
    tw.add_file("r.bin", 0o644, len(data), ReadOnly(data))  # type: ignore[arg-type]
    tw.add_file("s.bin", 0o644, 3000, ReadOnly(data[:3000]))  # type: ignore[arg-type]
    tw.close()
    out.seek(0)
    with tarfile.open(fileobj=out) as t:
        assert t.extractfile("r.bin").read() == data  # type: ignore[union-attr]
        assert t.extractfile("s.bin").read() == data[:3000]  # type: ignore[union-attr]


def test_output_reads_back_with_tarfile_and_ends_with_two_zero_blocks() -> None:
    out = io.BytesIO()
    tw = GoTarWriter(out)
    tw.add_dir("m", 0o755)
    tw.add_file("m/a", 0o4755, 4, io.BytesIO(b"abcd"))
    tw.add_file("m/" + "é" * 80, 0o600, 0, io.BytesIO())
    tw.close()
    tw.close()  # idempotent
    raw = out.getvalue()
    assert raw.endswith(bytes(1024)) and len(raw) % BLOCK == 0
    assert tw.entries == 3
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        members = t.getmembers()
    assert [(m.name, m.type, m.mode, m.uid, m.gid, m.uname, m.mtime) for m in members] == [
        ("m", tarfile.DIRTYPE, 0o755, 1000, 0, "", 0),
        ("m/a", tarfile.REGTYPE, 0o4755, 1000, 0, "", 0),
        ("m/" + "é" * 80, tarfile.REGTYPE, 0o600, 1000, 0, "", 0),
    ]


def test_rejects_bad_names_and_closed_writer() -> None:
    tw = GoTarWriter(io.BytesIO())
    with pytest.raises(PackError, match="NUL"):
        tw.add_dir("a\0b", 0o755)
    with pytest.raises(PackError, match="may not end with '/'"):
        tw.add_file("a/", 0o644, 0, io.BytesIO())
    tw.close()
    with pytest.raises(PackError, match="closed"):
        tw.add_dir("late", 0o755)


def test_mode_keeps_only_permission_and_special_bits() -> None:
    full_st_mode = 0o100644 | 0o2000
    assert encode_header("f", full_st_mode, 0)[100:108] == b"0002644\0"


def test_twenty_thousand_small_files_are_faster_than_tarfile() -> None:
    """Per-entry overhead: 20,000 small entries, compared with the stdlib writer on the same machine."""
    payload = b"x" * 100
    names = [f"data/shard-{i // 1000:02d}/item-{i:05d}.json" for i in range(20_000)]

    out = io.BytesIO()
    start = time.perf_counter()
    tw = GoTarWriter(out)
    for name in names:
        tw.add_file(name, 0o644, 100, io.BytesIO(payload))
    tw.close()
    ours = time.perf_counter() - start

    start = time.perf_counter()
    with tarfile.open(fileobj=io.BytesIO(), mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 100
            t.addfile(info, io.BytesIO(payload))
    stdlib = time.perf_counter() - start

    assert len(out.getvalue()) == 20_000 * 2 * BLOCK + 2 * BLOCK
    assert ours < stdlib, f"GoTarWriter {ours:.2f}s vs tarfile {stdlib:.2f}s for 20,000 entries"
