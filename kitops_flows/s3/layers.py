"""S3 objects as ModelKit layers: the pack hook (``KitOpsClient.pack(sources=...)`` calls ``s3_layer_sources``).

    kit.pack("job/", reference="reg.example.com/team/churn:v7",
             sources={"train": "s3://ml-data/churn/2026-11-26/",            # prefix -> directory
                      "model.bin": "s3://ml-models/churn/7/model.bin"})      # key -> single file

A source maps a Kitfile entry (its ``name`` or literal ``path``) to ``s3://bucket/key`` or
``s3://bucket/prefix/``. The entry's ``path`` stays the relative path inside the ModelKit, so kit
unpacks the layer like any other. Layout of the layer's tar, identical to packing the same files
from a local directory (same Go ``archive/tar`` bytes, see tarformat.py):

* prefix ``s3://b/runs/7/`` for entry path ``data/train``: directories ``data``, ``data/train``,
  then ``data/train/<key minus prefix>`` for every object, with each object's sub-directories as
  directory entries, all in Go ``filepath.Walk`` order (bytewise per path component, depth first).
  Keys ending in ``/`` (console "folders") become empty directories.
* key ``s3://b/m/model.bin`` for entry path ``model/weights.bin``: directory ``model`` and the
  file ``model/weights.bin`` -- exactly what kit writes for a single-file ``path``. A URI without
  a trailing ``/`` that names no object but has objects under ``key/`` is read as that prefix.
* Files are mode 0644, directories 0755. Objects that fall inside another entry's path go to
  that (more specific) layer, as kit does for local files. ``.kitignore`` applies to the context
  directory only, not to S3 objects.

Objects are listed once (that listing is the ``S3Input`` lineage records), then streamed in tar
order (``streaming.ObjectStreamer``). An ETag or VersionId that differs from the listing, or an
object deleted meanwhile, raises ``S3SourceError`` naming the URI; the error propagates out of the
store's ingest block, so no blob and no ModelKit is created.

Datasets may instead stay in S3 (kit's remote datasets): ``S3Source(uri, mode="reference")`` writes
``remotePath``/``remoteHash`` (the ETag) into the Kitfile and no layer (see ``remote``).

>>> [m.name for m in plan_members(S3Input("b", "p/", "prefix", "train", "embed",
...                                       (S3Object("p/a.csv", "e", 1),)), "data/train")]
['data', 'data/train', 'data/train/a.csv']
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..compression import Sink
from ..digests import CHUNK
from ..errors import PackError, S3SourceError
from ..kitfile import Kitfile, LayerEntry, clean_path
from ..manifest import ANNOTATION_FILE_METADATA
from ..pack import LayerSource
from ..tarformat import GoTarWriter
from .listing import S3Input, S3Object, S3Source, list_input
from .remote import check_remote_datasets
from .streaming import ObjectStreamer
from .uris import s3_client


@dataclass(frozen=True)
class TarMember:
    """One entry of an S3-sourced layer: a directory (``obj is None``) or an object's file."""

    name: str
    obj: S3Object | None = None


def plan_members(inp: S3Input, entry_path: str, other_layer_paths: Sequence[str] = ()) -> list[TarMember]:
    """The tar entries of ``inp`` under ``entry_path``, in Go ``filepath.Walk`` order.

    S3 lists keys in plain byte order (``a-b``, ``a.txt``, ``a/x``); Walk visits a directory's
    children right after it (``a``, ``a/x``, ``a-b``, ``a.txt``), i.e. the order of the path
    *components*. Files inside another (more specific) layer's path are left to that layer.
    """
    base = clean_path(entry_path)
    if base.startswith("/") or base == ".." or base.startswith("../"):
        raise PackError(f"entry path {entry_path!r} for {inp.uri} must be a relative path inside the ModelKit")
    base_parts = () if base == "." else tuple(base.split("/"))
    others = [tuple(p.split("/")) for p in map(clean_path, other_layer_paths) if p != "."]
    others = [o for o in others if base_parts[: len(o)] != o]  # an ancestor layer does not claim our files

    files: dict[tuple[str, ...], S3Object] = {}
    top = len(base_parts) if inp.kind == "prefix" else len(base_parts) - 1  # a single object is the file itself
    dirs: set[tuple[str, ...]] = {base_parts[:i] for i in range(1, top + 1)}
    for obj in inp.objects:
        if inp.kind == "object":
            if not base_parts:
                raise PackError(f"{inp.uri} is a single object; map it to an entry whose path is a file name, not '.'")
            rel_parts: tuple[str, ...] = ()
        else:
            rel = obj.key[len(inp.key):]
            if rel == "":
                continue  # the prefix's own "folder" marker
            is_dir = rel.endswith("/")
            rel_parts = tuple(rel.rstrip("/").split("/")) if is_dir else tuple(rel.split("/"))
            if any(p in ("", ".", "..") or "\0" in p for p in rel_parts):
                raise S3SourceError(
                    f"s3://{inp.bucket}/{obj.key}: key has an empty, "
                    "'.' or '..' path component and cannot become a file name in a layer; rename the object"
                )
            if is_dir:
                parts = base_parts + rel_parts
                if not _claimed(parts, others):
                    dirs.update(parts[:i] for i in range(len(base_parts) + 1, len(parts) + 1))
                continue
        parts = base_parts + rel_parts
        if _claimed(parts, others):
            continue
        files[parts] = obj
        dirs.update(parts[:i] for i in range(len(base_parts) + 1, len(parts)))
    for parts in files.keys() & dirs:
        raise S3SourceError(f"{inp.uri}: {'/'.join(parts)} is both an object and a prefix of other objects; "
                            "a layer cannot hold a file and a directory with the same name")
    members = [TarMember("/".join(d)) for d in dirs if d]
    members += [TarMember("/".join(p), o) for p, o in files.items()]
    return sorted(members, key=lambda m: m.name.split("/"))


def _claimed(parts: tuple[str, ...], others: list[tuple[str, ...]]) -> bool:
    return any(parts[: len(o)] == o for o in others)


def s3_layer_sources(
    kf: Kitfile,
    sources: Mapping[str, str | S3Source],
    *,
    session: Any = None,
    layer_format: str = "tar",
    s3: Any = None,
) -> tuple[dict[int, LayerSource], list[S3Input]]:
    """Resolve ``sources`` against ``kf``: LayerSources by index in ``kf.layer_entries()``, and the S3Inputs.

    Everything is listed (and ``reference`` datasets HEAD-checked) here, before any layer is written,
    so a missing bucket, denied access or empty prefix fails the pack before it starts. Datasets in
    ``reference`` mode get ``remotePath``/``remoteHash`` set in ``kf`` (they leave
    ``layer_entries()``), which is why indices are computed afterwards.

    >>> srcs, inputs = s3_layer_sources(kf, {"train": "s3://ml-data/churn/"})   # doctest: +SKIP
    """
    s3 = s3 if s3 is not None else s3_client(session)
    entries = kf.layer_entries()
    chosen: list[tuple[LayerEntry, S3Input]] = []
    for label, value in sources.items():
        spec = value if isinstance(value, S3Source) else S3Source(str(value))
        entry = _find_entry(entries, label, spec.uri)
        if spec.mode == "reference" and entry.kind != "dataset":
            raise PackError(f"source {label!r} -> {spec.uri}: mode 'reference' is only for datasets "
                            f"(kit's remotePath), not {entry.kind} entries")
        if entry.kind == "mcpb":
            raise PackError(f"source {label!r} -> {spec.uri}: MCP bundles cannot come from S3; copy the .mcpb locally")
        inp = spec.listing if spec.listing is not None else list_input(s3, spec.uri, entry=label, mode=spec.mode)
        if spec.mode == "reference":
            if inp.kind != "object":
                raise PackError(f"{spec.uri}: a referenced dataset (remotePath) must be a single object, not a prefix; "
                                "use mode 'embed' for prefixes")
            entry.entry.remote_path = inp.uri
            entry.entry.remote_hash = inp.objects[0].etag
        chosen.append((entry, inp))
    check_remote_datasets(kf, s3=s3, skip={inp.uri for _, inp in chosen if inp.mode == "reference"})

    after = kf.layer_entries()
    index = {id(e.entry): i for i, e in enumerate(after)}
    all_paths = [clean_path(e.path) for e in after]
    layer_sources: dict[int, LayerSource] = {}
    for entry, inp in chosen:
        if inp.mode == "reference":
            continue
        i = index[id(entry.entry)]
        others = all_paths[:i] + all_paths[i + 1:]
        layer_sources[i] = _layer_source(s3, inp, others, layer_format)
    return layer_sources, [inp for _, inp in chosen]


def _find_entry(entries: list[LayerEntry], label: str, uri: str) -> LayerEntry:
    matches = [e for e in entries if label in (e.name, e.path) and (e.name or e.path)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted({e.name or e.path for e in entries})) or "(none)"
    if not matches:
        raise PackError(f"source {label!r} -> {uri}: no Kitfile entry has that name or path (entries: {known})")
    raise PackError(f"source {label!r} -> {uri}: several Kitfile entries match; use a unique name or path")


def _layer_source(s3: Any, inp: S3Input, other_paths: list[str], layer_format: str) -> LayerSource:
    def write(entry: LayerEntry, out: Sink) -> Mapping[str, str]:
        if layer_format == "raw":
            return _write_raw(s3, inp, entry, out)
        write_s3_tar(s3, inp, entry.path, out, other_paths)
        return inp.annotations()

    return write


def write_s3_tar(s3: Any, inp: S3Input, entry_path: str, out: Sink, other_layer_paths: Sequence[str] = ()) -> int:
    """Stream ``inp``'s objects as the tar of an entry at ``entry_path`` into ``out``; returns the member count."""
    members = plan_members(inp, entry_path, other_layer_paths)
    files = [m.obj for m in members if m.obj is not None]
    writer = GoTarWriter(out)
    streamer = ObjectStreamer(s3, inp.bucket, files)
    readers = streamer.readers()
    try:
        for m in members:
            if m.obj is None:
                writer.add_dir(m.name, 0o755)
                continue
            obj, reader = next(readers)
            writer.add_file(m.name, 0o644, obj.size, reader)
        writer.close()
    finally:
        readers.close()  # stops read-ahead and joins the worker threads, also on error
    return len(members)


def _write_raw(s3: Any, inp: S3Input, entry: LayerEntry, out: Sink) -> dict[str, str]:
    if inp.kind != "object":
        raise PackError(f"{inp.uri}: raw layers hold exactly one file; a prefix needs layer_format='tar'")
    obj = inp.objects[0]
    readers = ObjectStreamer(s3, inp.bucket, [obj]).readers()
    try:
        _, reader = next(readers)
        while chunk := reader.read(CHUNK):
            out.write(chunk)
    finally:
        readers.close()
    meta = {"name": posixpath.basename(entry.path.rstrip("/")), "mode": 0o644, "uid": 0, "gid": 0,
            "size": obj.size, "mtime": obj.last_modified, "typeflag": 48}
    return {**inp.annotations(), ANNOTATION_FILE_METADATA: json.dumps(meta, separators=(",", ":"))}


__all__ = ["TarMember", "plan_members", "s3_layer_sources", "write_s3_tar"]
