"""The one verified layer reader: blob -> decompress -> diffId check -> tar or raw members -> a sink.

Every way out of a ModelKit reads layers here: ``unpack`` into a directory (``DirectorySink``),
``unpack_to_s3`` into a bucket, small values into memory (``MemorySink``). The layer is untrusted:
member names pass ``extract.safe_relpath``, only files and directories are accepted, and the blob's
digest (and its diffId when compressed) is checked once the last byte is read. A sink sees members
before the digest is known to be good, so sinks write somewhere the caller can discard (a staging
directory), or the caller reads every layer once with no sink (verify only) before writing.

>>> import io, tarfile, tempfile
>>> from kitops_flows.kitfile import DatasetEntry, LayerEntry
>>> from kitops_flows.mediatypes import LayerMediaType
>>> from kitops_flows.store import Descriptor, LocalStore
>>> buf = io.BytesIO()
>>> with tarfile.open(fileobj=buf, mode="w") as t:
...     info = tarfile.TarInfo("data/a.csv"); info.size = 4
...     t.addfile(info, io.BytesIO(b"1,2\\n"))
>>> store = LocalStore(tempfile.mkdtemp())
>>> digest, size = store.put_bytes(buf.getvalue())
>>> media = LayerMediaType("dataset")
>>> layer = PlannedLayer(LayerEntry("dataset", DatasetEntry(path="data"), "data", "", 0),
...                      Descriptor(str(media), digest, size), media)
>>> sink = MemorySink()
>>> read_layer(store, layer, sink, what="team/data:v1")
4
>>> sink.files
{'data/a.csv': b'1,2\\n'}
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from .compression import decompressing_reader
from .digests import CHUNK, VerifyingReader
from .errors import UnpackError
from .extract import Member, MemberSink, raw_member, tar_members
from .kitfile import clean_path
from .manifest import ANNOTATION_FILE_METADATA, ANNOTATION_FILEPATH, PlannedLayer

__all__ = ["BlobOpener", "MemorySink", "layer_label", "read_layer", "read_layers"]


class BlobOpener(Protocol):
    """Opens a blob for streaming, verifying size and digest at its end (``LocalStore`` is one)."""

    def open_blob(self, digest: str, size: int | None = None, what: str | None = None) -> VerifyingReader: ...


def layer_label(p: PlannedLayer, what: str) -> str:
    """How errors name a layer: kind, digest, Kitfile path and the ModelKit."""
    return f"{p.entry.kind} layer {p.layer.digest} ({p.entry.path!r}) of {what}"


def read_layer(blobs: BlobOpener, p: PlannedLayer, sink: MemberSink | None, *, what: str) -> int:
    """Read one layer, verified, handing each member to ``sink`` (None: verify only). Returns file bytes read.

    Raises ``UnpackError``/``UnsafeLayerError`` (prefixed with the layer's label) for a bad member,
    ``DigestMismatchError`` when the blob or its uncompressed bytes do not hash as declared.
    """
    label = layer_label(p, what)
    total = 0
    with blobs.open_blob(p.layer.digest, p.layer.size, what=label) as blob:
        stream = decompressing_reader(blob, p.media.compression)
        info = p.entry.entry.layer_info
        checked = stream
        if p.media.compression != "none" and info is not None and info.diff_id:
            checked = VerifyingReader(stream, info.diff_id, None, f"uncompressed {label}")  # type: ignore[assignment]
        try:
            for member in _members(checked, p):
                if sink is not None:
                    sink.add(member)
                total += _drain(member)
        except UnpackError as e:
            raise type(e)(f"{label}: {e}") from None
        if isinstance(checked, VerifyingReader):
            checked.verify()
        blob.verify()  # reads any tail the tar reader skipped, then checks size and digest
    return total


def read_layers(blobs: BlobOpener, planned: Iterable[PlannedLayer], sink: MemberSink | None, *, what: str) -> int:
    """``read_layer`` for each layer in order; returns the total file bytes."""
    return sum(read_layer(blobs, p, sink, what=what) for p in planned)


def _members(stream: object, p: PlannedLayer) -> Iterable[Member]:
    if p.media.format != "raw":
        return tar_members(stream)  # type: ignore[arg-type]
    annotations = p.layer.annotations or {}
    filepath = annotations.get(ANNOTATION_FILEPATH) or clean_path(p.entry.path)
    meta = _file_metadata(annotations)
    return [raw_member(stream, filepath, int(meta.get("mode", 0o644)), meta.get("size"))]  # type: ignore[arg-type]


def _drain(member: Member) -> int:
    """Read what the sink left of a file, so size checks run and the stream stays in step; return its size."""
    if member.data is None:
        return 0
    left = 0
    while chunk := member.data.read(CHUNK):
        left += len(chunk)
    return member.size if member.size >= 0 else getattr(member.data, "count", left)


def _file_metadata(annotations: dict[str, str]) -> dict[str, int]:
    with contextlib.suppress(ValueError, TypeError):
        meta = json.loads(annotations.get(ANNOTATION_FILE_METADATA, "{}"))
        if isinstance(meta, dict):
            return {k: v for k, v in meta.items() if k in ("mode", "size") and isinstance(v, int)}
    return {}


@dataclass
class MemorySink:
    """Collects files as ``{name: bytes}`` (small values only: more than ``max_bytes`` in total is refused)."""

    max_bytes: int = 64 << 20
    files: dict[str, bytes] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    _total: int = 0

    def add(self, member: Member) -> None:
        if member.is_dir:
            self.dirs.append(member.name)
            return
        assert member.data is not None
        if member.name in self.files:
            raise UnpackError(f"path '{member.name}' already exists (written by an earlier layer)")
        chunks = []
        while chunk := member.data.read(CHUNK):
            self._total += len(chunk)
            if self._total > self.max_bytes:
                raise UnpackError(f"layers hold more than {self.max_bytes} bytes; unpack them to a directory instead")
            chunks.append(chunk)
        self.files[member.name] = b"".join(chunks)
