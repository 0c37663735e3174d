"""ModelPack output (``kit pack --use-model-pack``): the CNCF model-spec config and the checks kit makes.

>>> from kitops_flows.kitfile import Kitfile
>>> kf = Kitfile.from_yaml("manifestVersion: 1.0.0\\npackage: {name: m, license: MIT}\\nmodel: {path: w.bin, format: gguf}\\n")
>>> modelpack_config(kf, ["sha256:" + "a" * 64], created="2026-05-01T14:00:00Z")[:60]
b'{"descriptor":{"createdAt":"2026-05-01T14:00:00Z","name":"m"'
>>> a = modelpack_config(kf, ["sha256:" + "a" * 64], created="2026-05-01T14:00:00Z")
>>> config_content(a) == config_content(modelpack_config(kf, ["sha256:" + "a" * 64]))
True

The manifest carries the Kitfile (with per-layer digests) as the ``ml.kitops.modelkit.kitfile`` annotation;
layers get ``application/vnd.cncf.model.<weight|weight.config|dataset|code|doc>.v1.<tar|raw>[+gzip|+zstd]``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from .errors import PackError
from .gojson import Struct, marshal
from .kitfile import Kitfile


def check_modelpack(kf: Kitfile, layer_format: str, compression: str) -> None:
    """kit's refusals for ModelPack output, before any layer is written."""
    if kf.mcp_servers:
        raise PackError("mcpServers are not supported when packing in modelpack format")
    if layer_format == "raw" and compression != "none":
        raise PackError("compression for raw layers is not supported for ModelPack")


def go_time(dt: datetime) -> str:
    """A Go ``time.Time`` as JSON writes it (RFC 3339, fractional seconds trimmed, ``Z`` for UTC)."""
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}".rstrip("0")
    offset = dt.utcoffset()
    if offset is None or not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def licenses(kf: Kitfile) -> list[str]:
    """Sorted, de-duplicated licenses of package, model, model parts, datasets and code."""
    found = {kf.package.license}
    if kf.model is not None:
        found.add(kf.model.license)
        found.update(p.license for p in kf.model.parts)
    found.update(d.license for d in kf.datasets)
    found.update(c.license for c in kf.code)
    return sorted(x for x in found if x)


def modelpack_config(kf: Kitfile, diff_ids: Sequence[str], *, created: str | None = None) -> bytes:
    """The model-spec ``Model`` JSON kit writes: descriptor, modelfs, config (Go field order, omitempty)."""
    descriptor = Struct()
    descriptor["createdAt"] = created or go_time(datetime.now().astimezone())  # kit: pack time, local zone
    for key, value in (("authors", list(kf.package.authors)), ("name", kf.package.name),
                       ("version", kf.package.version), ("licenses", licenses(kf)), ("title", kf.package.name),
                       ("description", kf.package.description)):
        if value:
            descriptor[key] = value
    config = Struct()
    if kf.model is not None and kf.model.format:
        config["format"] = kf.model.format
    return marshal(Struct([("descriptor", descriptor), ("modelfs", Struct([("type", "layers"), ("diffIds", list(diff_ids))])),
                           ("config", config)]))


def config_content(data: bytes) -> bytes:
    """A ModelPack config without its pack time (``descriptor.createdAt``): what makes two configs the same
    content (idempotent packs). Bytes that are not a JSON object are compared as they are."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return data
    if not isinstance(doc, dict):
        return data
    descriptor = doc.get("descriptor")
    if isinstance(descriptor, dict):
        descriptor.pop("createdAt", None)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
