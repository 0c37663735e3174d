"""Pack a context directory into a ModelKit in the local store, byte-compatible with ``kit pack``.

Every file is read once: tar bytes stream through the diffId hash, the compressor (if any) and the
blob hash straight into an ingest file, which becomes a blob only when complete. Nothing is
tagged until every blob, the config and the manifest are stored, so a crash leaves no visible
half-ModelKit.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from . import __version__
from .compression import compressing_writer
from .digests import HashingWriter, Sink, copy_file
from .errors import KitopsError, NotFoundError, PackError
from .ignore import IgnoreRules
from .kitfile import Kitfile, LayerEntry, LayerInfo, is_modelkit_reference
from .layerwalk import write_tar_layer
from .manifest import (
    ANNOTATION_CLI_VERSION,
    ANNOTATION_CREATED,
    ANNOTATION_FILE_METADATA,
    ANNOTATION_KITFILE,
    Manifest,
    clean_path,
    created_timestamp,
    kitfile_from_manifest,
    layer_annotations,
)
from .mediatypes import (
    KIT_ARTIFACT_TYPE,
    KIT_CONFIG,
    MODELPACK_ARTIFACT_TYPE,
    MODELPACK_CONFIG,
    LayerMediaType,
    check_compression,
    check_layer_format,
)
from .modelkit import ModelKitDescriptor, describe
from .modelpack import check_modelpack, modelpack_config
from .reference import DEFAULT_REGISTRY, DEFAULT_REPOSITORY, Reference, parse_reference
from .store import Descriptor, LocalStore
from .writebehind import WriteBehind

LOG = logging.getLogger("kitops_flows")
CLI_VERSION = f"kitops-flows/{__version__}"

class KnownManifest(Protocol):
    """A stored manifest with the same content as a fresh pack (see ``idempotent.KnownModelKit``)."""

    @property
    def data(self) -> bytes: ...

    @property
    def manifest(self) -> Manifest: ...

    @property
    def source(self) -> str: ...


#: Where a layer's bytes come from. The default reads ``context_dir/entry.path``; the S3 support
#: supplies another one for entries mapped to ``s3://`` sources. It writes the *uncompressed* tar
#: (or raw bytes) of the entry to ``out`` and returns extra layer annotations.
LayerSource = Callable[[LayerEntry, Sink], Mapping[str, str]]


@dataclass(frozen=True)
class PackOptions:
    """How layers are encoded. Defaults are kit's: plain tar, no compression."""

    compression: str = "none"
    layer_format: str = "tar"
    use_model_pack: bool = False  # ModelPack output (kit pack --use-model-pack): cncf media types and config

    def __post_init__(self) -> None:
        check_compression(self.compression)
        check_layer_format(self.layer_format)


def load_kitfile(context_dir: Path, kitfile: Path | str | Kitfile | None) -> tuple[Kitfile, str]:
    """The Kitfile to pack and a name for it in messages: an object, a path, or the default names."""
    if isinstance(kitfile, Kitfile):
        return kitfile, "Kitfile (in memory)"
    path = Path(kitfile) if kitfile is not None else Kitfile.find(context_dir)
    return Kitfile.load(path), str(path)


def pack(
    store: LocalStore,
    context_dir: Path | str,
    *,
    kitfile: Path | str | Kitfile | None = None,
    reference: str | Reference | None = None,
    options: PackOptions = PackOptions(),
    annotations: Mapping[str, str] | None = None,
    layer_sources: Mapping[int, LayerSource] | None = None,
    reuse: Callable[[Manifest], KnownManifest | None] | None = None,
) -> ModelKitDescriptor:
    """Pack ``context_dir`` (its Kitfile, or ``kitfile``) into ``store`` and tag it ``reference``.

    >>> desc = pack(LocalStore.default(), "ml/churn", reference="team/churn:v3")   # doctest: +SKIP
    >>> desc.pinned                                                                # doctest: +SKIP
    'localhost/team/churn@sha256:…'

    ``annotations`` are added to the manifest (lineage uses this). ``layer_sources`` maps the
    index of a layer entry (in ``Kitfile.layer_entries()`` order) to a function producing its
    bytes, for layers that do not come from the context directory. ``reuse`` is given the manifest
    just built and may return a known manifest with the same content (``idempotent.find_identical``):
    that one is stored and tagged instead, so the same content keeps its digest and ``created``.
    """
    context = Path(context_dir).expanduser().absolute()
    if not context.is_dir():
        raise PackError(f"context directory {context} does not exist or is not a directory")
    ref = target_reference(reference)
    kf, kitfile_name = load_kitfile(context, kitfile)
    for warning in kf.validate(source=kitfile_name):
        LOG.warning("%s", warning)

    if options.use_model_pack:
        check_modelpack(kf, options.layer_format, options.compression)
    entries = kf.layer_entries()
    if not entries:
        LOG.warning("ModelKit contains no layers")
    ignore = IgnoreRules.from_context(context)
    all_paths = [clean_path(e.path) for e in entries] + _parent_layer_paths(store, kf)
    sources = dict(layer_sources or {})

    layer_descs: list[Descriptor] = []
    for i, entry in enumerate(entries):
        others = all_paths[:i] + all_paths[i + 1 :]
        desc, info = _build_layer(store, context, entry, others, ignore, options, sources.get(i))
        entry.entry.layer_info = info
        layer_descs.append(desc)

    manifest_annotations = {ANNOTATION_CLI_VERSION: CLI_VERSION, ANNOTATION_CREATED: created_timestamp()}
    if options.use_model_pack:  # the Kitfile travels as an annotation; the config is model-spec's
        manifest_annotations[ANNOTATION_KITFILE] = kf.to_json().decode()
        diff_ids = [e.entry.layer_info.diff_id for e in entries]  # type: ignore[union-attr]
        config_bytes, config_type, artifact_type = modelpack_config(kf, diff_ids), MODELPACK_CONFIG, MODELPACK_ARTIFACT_TYPE
    else:
        config_bytes, config_type, artifact_type = kf.to_json(), KIT_CONFIG, KIT_ARTIFACT_TYPE
    config_digest, config_size = store.put_bytes(config_bytes)
    LOG.info("Saved configuration: %s", config_digest)

    manifest_annotations.update(annotations or {})
    manifest = Manifest(
        config=Descriptor(config_type, config_digest, config_size),
        layers=layer_descs,
        annotations=manifest_annotations,
        artifact_type=artifact_type,
    )
    data = manifest.to_bytes()
    known = reuse(manifest) if reuse is not None else None
    if known is not None:
        data, manifest = known.data, known.manifest
        LOG.info("Same content as %s: keeping its manifest", known.source)
    manifest_desc = store.put_manifest(ref.repo_path, data, ref.tags)
    LOG.info("Saved manifest to storage: %s", manifest_desc.digest)
    LOG.info("Model saved: %s", manifest_desc.digest)
    return describe(ref.registry, ref.repository, manifest_desc, manifest, kf, ref.tags)


def target_reference(reference: str | Reference | None) -> Reference:
    """Where a pack lands: ``reference``, or kit's untagged ``localhost/_`` without one (PackError for a digest)."""
    if reference is None:
        # kit: without -t the ModelKit is stored untagged under localhost/_
        return Reference(DEFAULT_REGISTRY, DEFAULT_REPOSITORY, "sha256:" + "0" * 64)
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    if ref.is_digest:
        raise PackError(f"cannot pack into a digest reference ({ref}); give a tag such as repo:v1")
    return ref


def _parent_layer_paths(store: LocalStore, kf: Kitfile) -> list[str]:
    """Layer paths of a parent ModelKit referenced by ``model.path``: kit excludes them from this pack."""
    if kf.model is None or not is_modelkit_reference(kf.model.path):
        return []
    ref = parse_reference(kf.model.path)
    try:
        desc = store.resolve(ref)
    except NotFoundError:
        raise PackError(
            f"model.path refers to the ModelKit {kf.model.path}, which is not in the local store; "
            f"pull it first (kitops-flows pull {kf.model.path})"
        ) from None
    manifest = Manifest.from_bytes(store.read_blob(desc.digest, desc.size), f"manifest of {ref}")
    parent, _ = kitfile_from_manifest(manifest, store.read_blob(manifest.config.digest), str(ref))
    return [clean_path(e.path) for e in parent.layer_entries()]


def _build_layer(
    store: LocalStore,
    context: Path,
    entry: LayerEntry,
    other_paths: list[str],
    ignore: IgnoreRules,
    options: PackOptions,
    source: LayerSource | None,
) -> tuple[Descriptor, LayerInfo]:
    raw = entry.kind == "mcpb" or options.layer_format == "raw"
    compression = "none" if entry.kind == "mcpb" else options.compression
    media = LayerMediaType(
        base="code" if entry.kind == "prompt" else entry.kind,
        format="raw" if raw else "tar",
        compression=compression,
        modelpack=options.use_model_pack,
    )
    annotations = layer_annotations(entry)
    with store.ingest() as blob:
        # The blob's hashing, writing and early writeback run on a thread beside the tree walk.
        with WriteBehind(blob, sync_fd=blob.file.fileno()) as behind:
            compressor = compressing_writer(behind, compression)
            # Uncompressed: the tar bytes are the blob, so digest == diffId and we hash only once.
            diff = HashingWriter(compressor) if compressor is not None else None
            sink: Sink = diff if diff is not None else behind
            if source is not None:
                annotations.update(source(entry, sink))
            elif raw:
                annotations[ANNOTATION_FILE_METADATA] = _copy_raw_file(context, entry, sink)
            else:
                write_tar_layer(context, entry.path, other_paths, ignore, sink, LOG.warning, kind=entry.kind)
            if compressor is not None:
                compressor.close()
        existed = store.has_blob(blob.digest)
    diff_id = diff.digest if diff is not None else blob.digest
    LOG.info("%s %s layer: %s", "Already saved" if existed else "Saved", entry.kind, blob.digest)
    desc = Descriptor(str(media), blob.digest, blob.size, annotations=annotations)
    return desc, LayerInfo(digest=blob.digest, diff_id=diff_id)


def _copy_raw_file(context: Path, entry: LayerEntry, out: Sink) -> str:
    """Stream a single regular file as a raw layer; return kit's file-metadata annotation JSON."""
    path = context / clean_path(entry.path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise PackError(f"path {entry.path} does not exist (in {context})") from None
    if not stat.S_ISREG(st.st_mode):
        raise PackError(f"file {entry.path} is not a regular file: raw layers hold exactly one file")
    if copy_file(path, out) != st.st_size:
        raise PackError(f"file {entry.path} changed size while it was being packed")
    mtime = datetime.fromtimestamp(st.st_mtime).astimezone().isoformat()
    meta = {
        "name": path.name,
        "mode": stat.S_IMODE(st.st_mode),
        "uid": 0,
        "gid": 0,
        "size": st.st_size,
        "mtime": mtime,
        "typeflag": 48,
    }
    return json.dumps(meta, separators=(",", ":"))


__all__ = ["PackOptions", "LayerSource", "pack", "load_kitfile", "KitopsError"]
