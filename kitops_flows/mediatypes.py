"""Media types of ModelKits (kit format) and ModelPack artifacts (spec §1).

>>> str(LayerMediaType("model"))
'application/vnd.kitops.modelkit.model.v1.tar'
>>> LayerMediaType.parse("application/vnd.kitops.modelkit.dataset.v1.tar+gzip").compression
'gzip'
>>> LayerMediaType.parse("application/vnd.cncf.model.weight.v1.raw").base
'model'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import KitopsError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

KIT_ARTIFACT_TYPE = "application/vnd.kitops.modelkit.manifest.v1+json"
KIT_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
KIT_INDEX_ARTIFACT_TYPE = "application/vnd.kitops.modelkit.index.v1+json"
MODELPACK_ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"

KIT_BASES = ("model", "modelpart", "dataset", "code", "docs", "mcpb")
COMPRESSIONS = ("none", "gzip", "gzip-fastest", "zstd")
LAYER_FORMATS = ("tar", "raw")

# kit base type <-> ModelPack base type
_TO_MODELPACK = {"model": "weight", "modelpart": "weight.config", "dataset": "dataset", "code": "code", "docs": "doc"}
_FROM_MODELPACK = {v: k for k, v in _TO_MODELPACK.items()}

_KIT_RE = re.compile(r"^application/vnd\.kitops\.modelkit\.(\w+)\.v1\.(\w+)(?:\+(\w+))?$")
_MODELPACK_RE = re.compile(r"^application/vnd\.cncf\.model\.(\w+(?:\.\w+)?)\.v1\.(\w+)(?:\+(\w+))?$")


def modelpack_base(base: str) -> str:
    """ModelPack's name for a kit base type (``model`` -> ``weight``); unknown bases are returned as is."""
    return _TO_MODELPACK.get(base, base)


class MediaTypeError(KitopsError):
    """A layer media type is not one kit understands."""


@dataclass(frozen=True)
class LayerMediaType:
    """``base`` is kit's name (model, modelpart, dataset, code, docs, mcpb) even for ModelPack layers."""

    base: str
    format: str = "tar"
    compression: str = "none"  # none | gzip | zstd (gzip-fastest is written as gzip)
    modelpack: bool = False

    def __str__(self) -> str:
        suffix = "" if self.compression == "none" else "+" + ("gzip" if self.compression.startswith("gzip") else "zstd")
        if self.modelpack:
            return f"application/vnd.cncf.model.{_TO_MODELPACK[self.base]}.v1.{self.format}{suffix}"
        return f"application/vnd.kitops.modelkit.{self.base}.v1.{self.format}{suffix}"

    @classmethod
    def parse(cls, media_type: str) -> LayerMediaType:
        """Parse a kit or ModelPack layer media type; raise MediaTypeError with kit's wording otherwise."""
        if m := _KIT_RE.match(media_type):
            base, fmt, comp = m.groups()
            if base not in KIT_BASES:
                raise MediaTypeError(f"invalid base type {base} in layer media type {media_type}")
            modelpack = False
        elif m := _MODELPACK_RE.match(media_type):
            mp_base, fmt, comp = m.groups()
            if mp_base not in _FROM_MODELPACK:
                raise MediaTypeError(f"invalid base type {mp_base} in layer media type {media_type}")
            base, modelpack = _FROM_MODELPACK[mp_base], True
        else:
            raise MediaTypeError(f"unrecognized media type {media_type}")
        if fmt not in LAYER_FORMATS:
            raise MediaTypeError(f"invalid layer format {fmt} in layer media type {media_type}")
        comp = comp or "none"
        if comp not in ("none", "gzip", "zstd"):
            raise MediaTypeError(f"invalid compression {comp} in layer media type {media_type}")
        return cls(base, fmt, comp, modelpack)


def check_compression(compression: str) -> str:
    if compression not in COMPRESSIONS:
        raise KitopsError(
            f"invalid compression type {compression!r}: must be one of 'none', 'gzip', 'gzip-fastest', or 'zstd'"
        )
    return compression


def check_layer_format(layer_format: str) -> str:
    if layer_format not in LAYER_FORMATS:
        raise KitopsError(f"invalid layer format {layer_format!r}: must be either 'tar' or 'raw'")
    return layer_format
