"""The one verified layer reader (kitops_flows.layerreader): every sink sees the same checked members.

unpack (a staging directory), unpack_to_s3 (S3) and small in-memory values all read layers through
``read_layer``; these tests drive it with a recording sink over real store blobs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from kitops_flows.errors import DigestMismatchError, UnsafeLayerError
from kitops_flows.extract import Member
from kitops_flows.kitfile import DatasetEntry, LayerEntry, LayerInfo
from kitops_flows.layerreader import MemorySink, read_layer
from kitops_flows.manifest import ANNOTATION_FILEPATH, PlannedLayer
from kitops_flows.mediatypes import LayerMediaType
from kitops_flows.store import Descriptor, LocalStore


def _tar(*members: tuple[str, bytes | None, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind or tarfile.REGTYPE
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            if info.type == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            tf.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def _layer(store: LocalStore, blob: bytes, *, fmt: str = "tar", compression: str = "none", diff_id: str = "",
           annotations: dict[str, str] | None = None) -> PlannedLayer:
    digest, size = store.put_bytes(blob)
    media = LayerMediaType("dataset", fmt, compression)
    entry = DatasetEntry(name="d", path="data", layer_info=LayerInfo(digest, diff_id or digest))
    return PlannedLayer(LayerEntry("dataset", entry, "data", "d", 0), Descriptor(str(media), digest, size, annotations),
                        media)


class Recorder:
    """A sink that keeps names and reads nothing (the reader drains and verifies what is left)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, member: Member) -> None:
        self.names.append(member.name + ("/" if member.is_dir else ""))


@pytest.mark.parametrize("name,kind", [("../evil", None), ("/abs", None), ("a/../../b", None),
                                       ("ok/link", tarfile.SYMTYPE)])
def test_unsafe_member_stops_the_reader_after_the_good_ones(tmp_path: Path, name: str, kind: bytes | None) -> None:
    store = LocalStore(tmp_path)
    layer = _layer(store, _tar(("ok/first", None, b"1"), (name, kind, b"x")))
    sink = Recorder()
    with pytest.raises(UnsafeLayerError, match=r"dataset layer sha256:\w+ \('data'\) of team/x:v1: "):
        read_layer(store, layer, sink, what="team/x:v1")
    assert sink.names == ["ok/first"]  # unpack_to_s3's verify pass stops before anything is uploaded


def test_members_are_cleaned_and_streamed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    sink = MemorySink()
    total = read_layer(store, _layer(store, _tar(("./d", tarfile.DIRTYPE, b""), ("d//a", None, b"abc"),
                                                 ("d/b", None, b""))), sink, what="m")
    assert (sink.files, sink.dirs, total) == ({"d/a": b"abc", "d/b": b""}, ["d"], 3)


def test_compressed_layer_checks_the_diff_id(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    tar = _tar(("a", None, b"payload"))
    good = "sha256:" + hashlib.sha256(tar).hexdigest()
    sink = MemorySink()
    read_layer(store, _layer(store, gzip.compress(tar), compression="gzip", diff_id=good), sink, what="m")
    assert sink.files == {"a": b"payload"}
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatchError, match="uncompressed dataset layer"):
        read_layer(store, _layer(store, gzip.compress(tar, mtime=1), compression="gzip", diff_id=wrong),
                   MemorySink(), what="m")


def test_raw_layer_is_one_member_at_its_annotated_path(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    layer = _layer(store, b"weights", fmt="raw", annotations={ANNOTATION_FILEPATH: "data/w.bin"})
    sink = MemorySink()
    assert read_layer(store, layer, sink, what="m") == 7
    assert sink.files == {"data/w.bin": b"weights"}
    hostile = _layer(store, b"x", fmt="raw", annotations={ANNOTATION_FILEPATH: "../w.bin"})
    with pytest.raises(UnsafeLayerError, match=r"raw layer path '\.\./w\.bin' contains '\.\.'"):
        read_layer(store, hostile, MemorySink(), what="m")


def test_memory_sink_refuses_more_than_its_limit(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    layer = _layer(store, _tar(("a", None, b"x" * 100)))
    with pytest.raises(Exception, match="more than 10 bytes"):
        read_layer(store, layer, MemorySink(max_bytes=10), what="m")
