"""Typed, checked settings for ``ModelKitIOManager`` outputs and inputs, instead of hand-written dicts.

A typo or a bad value fails when the Definitions are built, not when a run reaches the IO manager::

    @dg.asset(metadata=ModelKitOutput(layer="dataset", path="train.csv", serializer="text").metadata())
    def train_csv() -> str: ...

    @dg.asset(ins={"train_csv": dg.AssetIn(metadata=ModelKitInput(layers=["datasets"], load="path").metadata())})
    def model(train_csv: Path) -> ...: ...

``metadata()`` gives the ``{"kitops": {...}}`` entry the IO manager reads (hand-written dicts keep working).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kitops_flows.errors import KitopsError

from .contents import KINDS
from .io_manager import LOAD_MODES


@dataclass(frozen=True)
class ModelKitOutput:
    """How an asset's value becomes its ModelKit: layer kind, entry name, path inside, serializer, description."""

    layer: str = "model"
    name: str = ""
    path: str = ""
    serializer: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.layer not in KINDS:
            raise KitopsError(f"ModelKitOutput(layer={self.layer!r}): use one of {', '.join(KINDS)}")
        if self.path.startswith("/") or ".." in self.path.split("/"):
            raise KitopsError(f"ModelKitOutput(path={self.path!r}): a relative path inside the ModelKit, without '..'")

    def metadata(self) -> dict[str, Any]:
        fields = {"layer": self.layer, "name": self.name, "path": self.path, "serializer": self.serializer,
                  "description": self.description}
        return {"kitops": {k: v for k, v in fields.items() if v}}


@dataclass(frozen=True)
class ModelKitInput:
    """Which ModelKit an input loads (``digest`` or ``tag``, else the upstream's recorded one), which layers
    (kit filters: ``model``, ``datasets:train``…; none: all) and as what (``load``: value, path, layers,
    descriptor)."""

    layers: Sequence[str] = field(default_factory=tuple)
    digest: str | None = None
    tag: str | None = None
    load: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.layers, str):
            object.__setattr__(self, "layers", (self.layers,))
        if self.digest and self.tag:
            raise KitopsError("ModelKitInput: pin by digest or by tag, not both")
        if self.digest and not self.digest.startswith("sha256:"):
            raise KitopsError(f"ModelKitInput(digest={self.digest!r}): write it as sha256:<64 hex digits>")
        if self.load is not None and self.load not in LOAD_MODES:
            raise KitopsError(f"ModelKitInput(load={self.load!r}): use one of {', '.join(LOAD_MODES)}")

    def metadata(self) -> dict[str, Any]:
        fields = {"layers": list(self.layers), "digest": self.digest, "tag": self.tag, "load": self.load}
        return {"kitops": {k: v for k, v in fields.items() if v}}


__all__ = ["ModelKitInput", "ModelKitOutput"]
