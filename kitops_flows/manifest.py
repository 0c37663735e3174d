"""ModelKit manifests: build them as kit does, and read kit's, old kit's and ModelPack ones (spec §1-§3, §7).

>>> m = Manifest(config=Descriptor(KIT_CONFIG, "sha256:" + "0" * 64, 2), layers=[], annotations={})
>>> m.to_bytes()[:60]
b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.ma'
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .descriptor import Descriptor
from .errors import KitopsError
from .kitfile import (
    CodeEntry,
    DatasetEntry,
    DocsEntry,
    Kitfile,
    LayerEntry,
    LayerInfo,
    Model,
    ModelPart,
    clean_path,
)
from .mediatypes import (
    KIT_ARTIFACT_TYPE,
    KIT_CONFIG,
    MODELPACK_ARTIFACT_TYPE,
    MODELPACK_CONFIG,
    OCI_MANIFEST,
    LayerMediaType,
    MediaTypeError,
)

ANNOTATION_CLI_VERSION = "ml.kitops.modelkit.cli-version"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_KITFILE = "ml.kitops.modelkit.kitfile"
ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_FILE_METADATA = "org.cncf.model.file.metadata+json"
ANNOTATION_LAYER_SUBTYPE = "ml.kitops.modelkit.layer-subtype"


class ManifestError(KitopsError):
    """A manifest is malformed or is not a ModelKit."""


def created_timestamp(now: float | None = None) -> str:
    """RFC 3339 UTC seconds, from ``SOURCE_DATE_EPOCH`` when set (reproducible builds, kit PR #1225)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None and epoch.strip() != "":
        try:
            now = int(epoch.strip())
        except ValueError:
            raise KitopsError(f'invalid SOURCE_DATE_EPOCH "{epoch}": must be an integer Unix time') from None
    ts = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Manifest:
    """An OCI image manifest as kit writes it (``ocispec.Manifest`` key order)."""

    config: Descriptor
    layers: list[Descriptor]
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = KIT_ARTIFACT_TYPE
    media_type: str | None = OCI_MANIFEST
    subject: Descriptor | None = None
    layers_null: bool = False  # kit <= 1.9 wrote "layers":null for empty Kitfiles; keep bytes stable on re-read

    def to_bytes(self) -> bytes:
        d: dict[str, object] = {"schemaVersion": 2}
        if self.media_type:
            d["mediaType"] = self.media_type
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        d["config"] = self.config.to_dict()
        d["layers"] = None if (self.layers_null and not self.layers) else [l.to_dict() for l in self.layers]
        if self.subject is not None:
            d["subject"] = self.subject.to_dict()
        if self.annotations:
            d["annotations"] = dict(sorted(self.annotations.items()))
        return json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()

    def blobs(self) -> Iterator[Descriptor]:
        """Config then layers: everything a copy of this manifest must carry."""
        yield self.config
        yield from self.layers

    @property
    def format(self) -> str:
        """``kit`` or ``modelpack`` (spec §1.3); raises ManifestError for anything else."""
        if self.artifact_type == KIT_ARTIFACT_TYPE or self.config.media_type == KIT_CONFIG:
            return "kit"
        if self.artifact_type == MODELPACK_ARTIFACT_TYPE or self.config.media_type == MODELPACK_CONFIG:
            return "modelpack"
        raise ManifestError(
            f"reference exists but is not a modelkit: artifactType is {self.artifact_type or '(none)'}, "
            f"config mediaType is {self.config.media_type}"
        )

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "manifest") -> Manifest:
        """Parse and sanity-check manifest bytes. ``what`` names the manifest in errors."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as e:  # RecursionError: hostile deep nesting
            raise ManifestError(f"{what} is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ManifestError(f"{what} is not a JSON object")
        media_type = doc.get("mediaType")
        if media_type not in (None, OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"):
            raise ManifestError(f"{what} is not an image manifest (mediaType {media_type})")
        if doc.get("schemaVersion") != 2:
            raise ManifestError(f"{what} has schemaVersion {doc.get('schemaVersion')!r}, expected 2")
        if not isinstance(doc.get("config"), dict):
            raise ManifestError(f"{what} has no config descriptor")
        raw_layers = doc.get("layers")
        if raw_layers is not None and not isinstance(raw_layers, list):
            raise ManifestError(f"{what}: layers must be a list")
        try:
            config = Descriptor.from_dict(doc["config"], f"{what} config")
            layers = [Descriptor.from_dict(l, f"{what} layer {i}") for i, l in enumerate(raw_layers or [])]
            subject = Descriptor.from_dict(doc["subject"], f"{what} subject") if doc.get("subject") else None
        except KitopsError as e:
            raise ManifestError(str(e)) from None
        ann = doc.get("annotations") or {}
        if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
            raise ManifestError(f"{what}: annotations must map strings to strings")
        return cls(
            config=config,
            layers=layers,
            annotations=dict(ann),
            artifact_type=doc.get("artifactType"),
            media_type=media_type,
            subject=subject,
            layers_null=raw_layers is None,
        )


# -- reading the Kitfile of a ModelKit -------------------------------------------------------------------

def kitfile_from_manifest(manifest: Manifest, config_bytes: bytes, what: str) -> tuple[Kitfile, bool]:
    """The Kitfile describing a ModelKit, and whether it came from the artifact (False = synthesised).

    Kit format: the config blob is the Kitfile JSON. ModelPack: the ``ml.kitops.modelkit.kitfile``
    annotation, else one synthesised from layer annotations (kit's GenerateKitfileForModelPack).
    """
    if manifest.format == "kit":
        return Kitfile.from_json(config_bytes, source=f"config of {what}"), True
    if text := manifest.annotations.get(ANNOTATION_KITFILE):
        return Kitfile.from_json(text.encode(), source=f"Kitfile annotation of {what}"), True
    return _synthesise_modelpack_kitfile(manifest, config_bytes, what), False


def _synthesise_modelpack_kitfile(manifest: Manifest, config_bytes: bytes, what: str) -> Kitfile:
    try:
        diff_ids = json.loads(config_bytes)["modelfs"]["diffIds"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ManifestError(f"invalid ModelPack config in {what}: no modelfs.diffIds") from None
    if len(diff_ids) != len(manifest.layers):
        raise ManifestError(f"invalid ModelPack config in {what}: number of layers does not match DiffIDs")
    kf = Kitfile()
    for layer, diff_id in zip(manifest.layers, diff_ids, strict=True):
        path = (layer.annotations or {}).get(ANNOTATION_FILEPATH)
        if not path:
            raise ManifestError(f"layer {layer.digest} of {what} has no {ANNOTATION_FILEPATH} annotation")
        info = LayerInfo(layer.digest, diff_id)
        base = LayerMediaType.parse(layer.media_type).base
        if base == "model" and kf.model is None:
            kf.model = Model(path=path, layer_info=info)
        elif base in ("model", "modelpart"):
            if kf.model is None:
                kf.model = Model()
            kf.model.parts.append(ModelPart(path=path, layer_info=info))
        elif base == "dataset":
            kf.datasets.append(DatasetEntry(path=path, layer_info=info))
        elif base == "code":
            kf.code.append(CodeEntry(path=path, layer_info=info))
        elif base == "docs":
            kf.docs.append(DocsEntry(path=path, layer_info=info))
    return kf


# -- matching Kitfile entries to manifest layers ------------------------------------------------------------

@dataclass(frozen=True)
class PlannedLayer:
    """One Kitfile entry and the manifest layer holding its files."""

    entry: LayerEntry
    layer: Descriptor
    media: LayerMediaType


def plan_layers(kitfile: Kitfile, manifest: Manifest, what: str) -> list[PlannedLayer]:
    """Pair every layer-producing Kitfile entry with its manifest layer (spec §7).

    By digest when the Kitfile carries LayerInfo (kit >= 0.5), else positionally by type (legacy).
    """
    entries = kitfile.layer_entries()
    try:
        if entries and all(e.entry.layer_info is not None for e in entries):
            by_digest = {l.digest: l for l in manifest.layers}
            plan = []
            for e in entries:
                digest = e.entry.layer_info.digest  # type: ignore[union-attr]
                if digest not in by_digest:
                    raise ManifestError(f"digest {digest} not found in manifest ({e.kind} {e.path!r} of {what})")
                layer = by_digest[digest]
                plan.append(PlannedLayer(e, layer, LayerMediaType.parse(layer.media_type)))
            return plan
        return _legacy_plan(entries, manifest, what)
    except MediaTypeError as e:
        raise ManifestError(f"{what}: {e}") from None


def _legacy_plan(entries: list[LayerEntry], manifest: Manifest, what: str) -> list[PlannedLayer]:
    """Old ModelKits: the n-th layer of each type belongs to the n-th Kitfile entry of that type."""
    queues: dict[str, list[Descriptor]] = {}
    for layer in manifest.layers:
        media = LayerMediaType.parse(layer.media_type)
        is_prompt = (layer.annotations or {}).get(ANNOTATION_LAYER_SUBTYPE) == "prompt"
        queues.setdefault("prompt" if is_prompt else media.base, []).append(layer)
    plan = []
    for e in entries:
        kind = "dataset" if e.kind == "dataset" else e.kind
        queue = queues.get(kind) or []
        if not queue:
            raise ManifestError(f"{what}: no {e.kind} layer in the manifest for Kitfile path {e.path!r}")
        layer = queue.pop(0)
        plan.append(PlannedLayer(e, layer, LayerMediaType.parse(layer.media_type)))
    return plan


def layer_annotations(entry: LayerEntry) -> dict[str, str]:
    """Per-layer annotations kit writes for a tar layer (spec §4)."""
    ann = {ANNOTATION_FILEPATH: clean_path(entry.path)}
    if entry.kind == "prompt":
        ann[ANNOTATION_LAYER_SUBTYPE] = "prompt"
    return ann


__all__ = [
    "ANNOTATION_CLI_VERSION",
    "ANNOTATION_CREATED",
    "ANNOTATION_FILEPATH",
    "Manifest",
    "ManifestError",
    "PlannedLayer",
    "clean_path",
    "created_timestamp",
    "kitfile_from_manifest",
    "layer_annotations",
    "plan_layers",
]
