"""Pack straight to a registry: no local copy of any layer, memory bounded, nothing tagged until complete.

``KitOpsClient.pack(..., push=True, local_copy=False)`` (the default when S3 ``sources`` are pushed)
calls ``stream_pack``::

    desc = kit.pack("job/", reference="reg.example.com/team/churn:v7", push=True,
                    sources={"train": "s3://ml-data/churn/2026-11-26/"})     # 2 TB prefix, 20 GB disk

Per layer, in Kitfile order:

* **S3 layers** are produced once (objects streamed from S3, the tar written on the fly) into a
  ``StreamingBlobUpload``: hashed while uploaded, the digest given at the final PUT. Before that,
  the layer's *fingerprint* (object keys/ETags/VersionIds, entry and sibling paths, media type) is
  looked up: in the manifest the tag points at now, then in ``$KITOPS_HOME/cache/stream-layers.json``
  (written after every uploaded layer). If it names a blob the registry has, the layer is not read
  at all -- so an unchanged dataset costs a listing and a HEAD, and a re-run after a failure or a
  SIGKILL picks up after the last finished layer.
* **Local layers** (files in the context directory) are read twice, which is cheap: once to hash,
  then, only if the registry lacks that digest, again while uploading (the second pass must hash the
  same, or nothing is committed).

Then the config blob, then the manifest by digest, then the tags -- so a failure or a kill at any
point leaves no tag and no manifest. The manifest and config (a few KB) are kept in the local store,
untagged, for the lineage records; no layer byte touches the disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomicfile import write_atomic
from .compression import compressing_writer
from .digests import HashingWriter, Sink
from .errors import KitopsError, NotFoundError, RegistryError
from .ignore import IgnoreRules
from .kitfile import Kitfile, LayerEntry, LayerInfo
from .layerwalk import write_tar_layer
from .manifest import (
    ANNOTATION_CLI_VERSION,
    ANNOTATION_CREATED,
    ANNOTATION_FILE_METADATA,
    ANNOTATION_FILEPATH,
    Manifest,
    clean_path,
    created_timestamp,
    layer_annotations,
)
from .mediatypes import KIT_ARTIFACT_TYPE, KIT_CONFIG, OCI_MANIFEST, LayerMediaType
from .modelkit import PushResult, describe
from .pack import (
    CLI_VERSION,
    LayerSource,
    PackOptions,
    _copy_raw_file,
    _parent_layer_paths,
    load_kitfile,
    target_reference,
)
from .registry.manifest_put import put_manifest_recovering
from .registry.stream_upload import StreamingBlobUpload
from .store import Descriptor, LocalStore

if TYPE_CHECKING:
    from .api import KitOpsClient
    from .lineage.provenance import Provenance
    from .registry import RegistryClient
    from .s3 import S3Input

LOG = logging.getLogger("kitops_flows")

CACHE_FILE = "cache/stream-layers.json"  # in kit's cache dir: `kitops-flows cache clear` drops these hints
CACHE_ENTRIES = 10_000
FINGERPRINT_VERSION = 1  # bump if the bytes of an S3 layer for the same objects could change


@dataclass(frozen=True)
class StreamedLayer:
    """A layer as it went to the registry: its descriptor, LayerInfo, and whether it was read at all."""

    descriptor: Descriptor
    info: LayerInfo
    reused: bool


def stream_pack(
    kit: KitOpsClient,
    context_dir: Path | str,
    *,
    kitfile: Path | str | Kitfile | None,
    reference: str,
    options: PackOptions,
    annotations: Mapping[str, str] | None = None,
    layer_sources: Mapping[int, LayerSource] | None = None,
    s3_inputs: Sequence[S3Input] = (),
    provenance: Provenance | None = None,
    immutable: bool = False,
    reuse: Callable[[Manifest], Any] | None = None,
) -> PushResult:
    """Pack ``context_dir`` and push it to ``reference``'s registry without a local copy (see module doc).

    ``provenance`` (from ``lineage.collect_provenance``) is recorded locally once the manifest is
    built, and pushed with the ModelKit. ``reuse`` (``idempotent.reuse_identical``) may return a known
    ModelKit with the same content, whose manifest is then pushed instead (same digest, same ``created``).
    Returns what the push changed (``PushResult``: descriptor, new to the repository, tags moved, blobs sent).
    """
    from .sources import require_registry

    context = Path(context_dir).expanduser().absolute()
    if not context.is_dir():
        raise KitopsError(f"context directory {context} does not exist or is not a directory")
    ref = target_reference(reference)
    require_registry(ref, "push")
    kf, kitfile_name = load_kitfile(context, kitfile)
    for warning in kf.validate(source=kitfile_name):
        LOG.warning("%s", warning)
    rc = kit.registry_client(ref.registry)
    repo = ref.repository
    entries = kf.layer_entries()
    if not entries:
        LOG.warning("ModelKit contains no layers")
    ignore = IgnoreRules.from_context(context)
    all_paths = [clean_path(e.path) for e in entries] + _parent_layer_paths(kit.store, kf)
    sources = dict(layer_sources or {})
    inputs = _inputs_by_index(entries, s3_inputs)
    cache = LayerCache(kit.store)
    previous = _previous_layers(kit, ref, [clean_path(e.path) for e in entries])

    layer_descs: list[Descriptor] = []
    uploaded = 0
    for i, entry in enumerate(entries):
        others = all_paths[:i] + all_paths[i + 1:]
        media = _media(entry, options)
        fingerprint = _fingerprint(inputs.get(i), entry, others, media)
        layer = None
        if fingerprint and i in sources and media.format == "tar":
            layer = _reuse(rc, repo, entry, inputs[i], media, fingerprint, cache, previous)
        if layer is None:
            layer = _upload_layer(rc, repo, context, entry, others, ignore, media, sources.get(i))
            if fingerprint:
                cache.put(fingerprint, layer.descriptor, layer.info)
        entry.entry.layer_info = layer.info
        layer_descs.append(layer.descriptor)
        uploaded += not layer.reused
        LOG.info("%s %s layer: %s", "Already in the registry:" if layer.reused else "Streamed",
                 entry.kind, layer.descriptor.digest)

    config_bytes = kf.to_json()
    config = Descriptor(KIT_CONFIG, "sha256:" + hashlib.sha256(config_bytes).hexdigest(), len(config_bytes))
    uploaded += rc.push_blob(repo, config.digest, config.size, lambda: io.BytesIO(config_bytes))
    manifest_annotations = {ANNOTATION_CLI_VERSION: CLI_VERSION, ANNOTATION_CREATED: created_timestamp()}
    manifest_annotations.update(annotations or {})
    manifest = Manifest(config=config, layers=layer_descs, annotations=manifest_annotations,
                        artifact_type=KIT_ARTIFACT_TYPE)
    data = manifest.to_bytes()
    known = reuse(manifest) if reuse is not None else None
    if known is not None:
        data, manifest = known.data, known.manifest
        LOG.info("Same content as %s: keeping its manifest", known.source)
    # The manifest and config (small) stay in the local store, untagged, for lineage; no layer does.
    kit.store.put_bytes(config_bytes)
    digest, size = kit.store.put_bytes(data)
    manifest_desc = Descriptor(OCI_MANIFEST, digest, size)
    tags = list(ref.tags)
    desc = describe(ref.registry, ref.repository, manifest_desc, manifest, kf, tags)
    if provenance is not None:
        from .lineage import record_local

        record_local(kit, describe(ref.registry, ref.repository, manifest_desc, manifest, kf, []), provenance)
    held = {tag: kit._refuse_to_move(rc, ref, tag, digest) if immutable  # noqa: SLF001
            else rc.manifest_digest(repo, tag) == digest for tag in tags}
    present = any(held.values()) or rc.manifest_digest(repo, digest) is not None
    if not present:
        _put_manifest(rc, repo, digest, data, [config, *layer_descs])
    to_tag = [t for t in tags if not held[t]]
    for tag in to_tag:
        ours_already = immutable and kit._refuse_to_move(rc, ref, tag, digest)  # noqa: SLF001 - again, just before
        _put_manifest(rc, repo, tag, data, [config, *layer_descs])
        if immutable and not ours_already:
            kit._confirm_tag(rc, ref, tag, digest)  # noqa: SLF001
    LOG.info("Pushed %s@%s%s (streamed, no local copy)", ref.repo_path, digest, f" as {', '.join(tags)}" if tags else "")
    if provenance is not None:
        from .lineage import push_records

        push_records(kit, manifest_desc, ref)
    return PushResult(desc, new_to_repository=not present, moved_tags=tuple(to_tag), blobs_uploaded=uploaded)


def _media(entry: LayerEntry, options: PackOptions) -> LayerMediaType:
    raw = entry.kind == "mcpb" or options.layer_format == "raw"
    return LayerMediaType(base="code" if entry.kind == "prompt" else entry.kind, format="raw" if raw else "tar",
                          compression="none" if entry.kind == "mcpb" else options.compression)


def _inputs_by_index(entries: list[LayerEntry], s3_inputs: Sequence[S3Input]) -> dict[int, S3Input]:
    out = {}
    for inp in s3_inputs:
        if inp.mode != "embed":
            continue
        for i, e in enumerate(entries):
            if inp.entry in (e.name, e.path) and (e.name or e.path):
                out[i] = inp
                break
    return out


def _fingerprint(inp: S3Input | None, entry: LayerEntry, others: Sequence[str], media: LayerMediaType) -> str:
    """What determines an S3 layer's bytes: the object versions, where they go, what siblings claim, encoding."""
    if inp is None:
        return ""
    doc = {"v": FINGERPRINT_VERSION, "uri": inp.uri, "objects": inp.fingerprint(), "path": clean_path(entry.path),
           "others": sorted(others), "media": str(media), "kind": entry.kind}
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


# -- reuse ---------------------------------------------------------------------------------------------

@dataclass
class LayerCache:
    """``fingerprint -> (digest, size, diffId)`` of layers this home streamed; a hint, always re-checked."""

    store: LocalStore

    @property
    def path(self) -> Path:
        return self.store.home / CACHE_FILE

    def _load(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_bytes())
        except (FileNotFoundError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def get(self, fingerprint: str) -> tuple[str, int, str] | None:
        hit = self._load().get(fingerprint)
        try:
            return str(hit["digest"]), int(hit["size"]), str(hit["diff_id"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            return None

    def put(self, fingerprint: str, desc: Descriptor, info: LayerInfo) -> None:
        with self.store.lock():
            doc = self._load()
            doc.pop(fingerprint, None)  # re-insert: the newest entries are last, the oldest trimmed first
            doc[fingerprint] = {"digest": desc.digest, "size": desc.size, "diff_id": info.diff_id}
            doc = dict(list(doc.items())[-CACHE_ENTRIES:])
            write_atomic(self.path, json.dumps(doc).encode())


@dataclass(frozen=True)
class _Previous:
    """The layers of the ModelKit the tag points at now, when it was packed with the same layer paths."""

    layers: tuple[tuple[Descriptor, str], ...]  # (descriptor, diffId)


def _previous_layers(kit: KitOpsClient, ref: Any, paths: list[str]) -> _Previous:
    try:
        loaded = kit.source.load_remote(ref)
    except (NotFoundError, KitopsError) as e:
        LOG.debug("no previous ModelKit at %s to reuse layers from (%s)", ref, e)
        return _Previous(())
    if loaded.manifest.annotations.get(ANNOTATION_CLI_VERSION) != CLI_VERSION:
        return _Previous(())
    prev_entries = loaded.kitfile.layer_entries()
    if sorted(clean_path(e.path) for e in prev_entries) != sorted(paths):
        return _Previous(())
    diff_ids = {e.entry.layer_info.digest: e.entry.layer_info.diff_id for e in prev_entries if e.entry.layer_info}
    return _Previous(tuple((d, diff_ids.get(d.digest, "")) for d in loaded.manifest.layers))


def _reuse(rc: RegistryClient, repo: str, entry: LayerEntry, inp: S3Input, media: LayerMediaType, fingerprint: str,
           cache: LayerCache, previous: _Previous) -> StreamedLayer | None:
    """The descriptor of an unchanged S3 layer, if the registry has its blob; None means: read it."""
    from .s3 import ANNOTATION_FINGERPRINT, ANNOTATION_SOURCE

    annotations = {**layer_annotations(entry), **inp.annotations()}
    candidates: list[tuple[str, int, str]] = []
    for d, diff_id in previous.layers:
        ann = d.annotations or {}
        if (d.media_type == str(media) and diff_id and ann.get(ANNOTATION_FINGERPRINT) == inp.fingerprint()
                and ann.get(ANNOTATION_SOURCE) == inp.uri and ann.get(ANNOTATION_FILEPATH) == clean_path(entry.path)):
            candidates.append((d.digest, d.size, diff_id))
    hit = cache.get(fingerprint)
    if hit is not None:
        candidates.append(hit)
    for digest, size, diff_id in candidates:
        if rc.blob_exists(repo, digest):
            return StreamedLayer(Descriptor(str(media), digest, size, annotations=annotations),
                                 LayerInfo(digest=digest, diff_id=diff_id), True)
    return None


# -- upload --------------------------------------------------------------------------------------------

def _upload_layer(rc: RegistryClient, repo: str, context: Path, entry: LayerEntry, others: list[str],
                  ignore: IgnoreRules, media: LayerMediaType, source: LayerSource | None) -> StreamedLayer:
    annotations = layer_annotations(entry)

    def produce(out: Sink) -> Mapping[str, str]:
        if source is not None:
            return source(entry, out)
        if media.format == "raw":
            return {ANNOTATION_FILE_METADATA: _copy_raw_file(context, entry, out)}
        write_tar_layer(context, entry.path, others, ignore, out, LOG.warning, kind=entry.kind)  # type: ignore[arg-type]
        return {}

    expected = ""
    if source is None:  # a local layer: hash first, upload only what the registry lacks
        probe = HashingWriter()
        diff = _encode(probe, media, produce)
        if rc.blob_exists(repo, probe.digest):
            annotations.update(diff[1])
            return StreamedLayer(Descriptor(str(media), probe.digest, probe.size, annotations=annotations),
                                 LayerInfo(digest=probe.digest, diff_id=diff[0]), True)
        expected = probe.digest
    with StreamingBlobUpload(rc, repo, media_type=str(media)) as up:
        diff_id, extra = _encode(up, media, produce)
        blob = up.finish(expected or None)
    annotations.update(extra)
    return StreamedLayer(Descriptor(str(media), blob.digest, blob.size, annotations=annotations),
                         LayerInfo(digest=blob.digest, diff_id=diff_id), False)


def _encode(out: Any, media: LayerMediaType, produce: Callable[[Sink], Mapping[str, str]]) -> tuple[str, dict[str, str]]:
    """Run ``produce`` through the compressor into ``out``; returns (diffId, annotations)."""
    compressor = compressing_writer(out, media.compression)
    diff = HashingWriter(compressor) if compressor is not None else None  # type: ignore[arg-type]
    extra = dict(produce(diff if diff is not None else out))
    if compressor is not None:
        compressor.close()
    blob_digest = out.digest
    return (diff.digest if diff is not None else blob_digest), extra


def _put_manifest(rc: RegistryClient, repo: str, reference: str, data: bytes, blobs: Sequence[Descriptor]) -> None:
    """PUT the manifest; on a momentary "blob unknown" check the blobs are there (a streamed layer cannot be re-sent)."""

    def check() -> None:
        missing = [b.digest for b in blobs if not rc.blob_exists(repo, b.digest)]
        if missing:
            raise RegistryError(f"registry {rc.registry} lost blob(s) {', '.join(missing)} of {repo}:{reference} "
                                "during a streamed push; run the pack again")

    put_manifest_recovering(rc, repo, reference, data, OCI_MANIFEST, recover=check)


__all__ = ["LayerCache", "StreamedLayer", "stream_pack"]
