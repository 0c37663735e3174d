"""``modelkit_asset``: one asset that packs several upstream assets into one ModelKit, one layer each.

>>> churn_modelkit = modelkit_asset(
...     "churn_modelkit",
...     layers={"churn_dataset": "dataset", "churn_model": "model"},
...     extra_layers=[Layer("code", Path("examples/churn"), path="src")],
...     description="churn classifier with its training data and code",
... )                                                                    # doctest: +SKIP

Each upstream must be stored by a ``ModelKitIOManager``: its layer (the one ``layer_filters``
selects, when it has several) is loaded as the file it was stored as, from the digest the upstream
recorded, and re-packed byte for byte (so the registry already has the blob); serialised objects
stay loadable as objects. Each loaded ModelKit becomes a lineage parent of the new one. The returned ``ModelKitContents`` is packed and pushed by the
asset's IO manager (a ``ModelKitIOManager``) like any other output.
"""


import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from dagster import AssetExecutionContext, AssetIn, AssetKey, AssetsDefinition, PartitionsDefinition, asset

from kitops_flows.errors import PackError

from .contents import KINDS, Layer, ModelKitContents


def _input_name(key: AssetKey, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", key.path[-1]) or "upstream"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def modelkit_asset(
    name: str,
    layers: Mapping[str | AssetKey, str],
    *,
    extra_layers: Sequence[Layer] = (),
    layer_filters: Mapping[str | AssetKey, Sequence[str]] | None = None,
    package_name: str = "",
    version: str = "",
    description: str = "",
    authors: Sequence[str] = (),
    license: str = "",
    key_prefix: str | Sequence[str] | None = None,
    group_name: str | None = None,
    partitions_def: PartitionsDefinition | None = None,
    io_manager_key: str = "io_manager",
    code_version: str | None = None,
) -> AssetsDefinition:
    """An asset whose ModelKit has one layer per upstream asset (``layers``: upstream key -> kind)."""
    if not layers and not extra_layers:
        raise PackError(f"modelkit_asset {name!r}: give at least one upstream layer or extra layer")
    filters = {AssetKey.from_coercible(k): list(v) for k, v in (layer_filters or {}).items()}
    ins: dict[str, AssetIn] = {}
    kinds: dict[str, tuple[str, AssetKey]] = {}
    taken: set[str] = set()
    for upstream, kind in layers.items():
        if kind not in KINDS:
            raise PackError(f"modelkit_asset {name!r}: layer kind {kind!r} for {upstream} is not one of {KINDS}")
        key = AssetKey.from_coercible(upstream)
        input_name = _input_name(key, taken)
        meta: dict[str, Any] = {"load": "layers"}  # files as stored upstream: nothing unpickled, bytes unchanged
        if key in filters:
            meta["layers"] = filters[key]
        ins[input_name] = AssetIn(key=key, metadata={"kitops": meta})
        kinds[input_name] = (kind, key)
    extra = tuple(extra_layers)

    @asset(name=name, ins=ins, key_prefix=key_prefix, group_name=group_name, partitions_def=partitions_def,
           io_manager_key=io_manager_key, code_version=code_version, description=description or None)
    def _modelkit(context: AssetExecutionContext, **inputs: Any) -> ModelKitContents:
        built: list[Layer] = []
        for input_name, value in inputs.items():
            kind, key = kinds[input_name]
            if not isinstance(value, tuple) or len(value) != 1 or not isinstance(value[0], Layer):
                raise PackError(
                    f"modelkit_asset {name!r}: upstream {key.to_user_string()} must load as exactly one layer "
                    f"through a ModelKitIOManager, got {_describe(value)}; choose one with "
                    f"layer_filters={{{key.path[-1]!r}: ['<kit filter>']}}"
                )
            loaded = value[0]
            built.append(replace(loaded, kind=kind, name=key.path[-1] if kind in ("model", "dataset") else ""))
        built.extend(extra)
        context.log.info(f"packing {len(built)} layers: " + ", ".join(f"{l.kind}" for l in built))
        return ModelKitContents(layers=tuple(built), name=package_name or name, version=version,
                                description=description, authors=tuple(authors), license=license)

    return _modelkit


def _describe(value: Any) -> str:
    if isinstance(value, tuple) and all(isinstance(v, Layer) for v in value):
        return f"{len(value)} layers ({', '.join(f'{v.kind}:{v.path}' for v in value)})"
    return f"a {type(value).__name__} (is its IO manager a ModelKitIOManager?)"


__all__ = ["modelkit_asset"]
