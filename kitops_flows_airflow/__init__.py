"""Airflow provider for kitops-flows: KitOps ModelKits as first-class Airflow outputs.

>>> from kitops_flows_airflow import KitPackOperator, KitUnpackOperator, modelkit_asset   # doctest: +SKIP

- ``KitOpsHook`` (connection type ``kitops``; ``docker`` connections work too)
- ``KitPackOperator``, ``KitPushOperator``, ``KitPullOperator``, ``KitUnpackOperator``, ``KitPromoteOperator``
- ``ModelKitSensor`` / ``ModelKitTrigger`` (deferrable): wait for a tag to appear or move
- ``modelkit_asset(reference)``: the ``oci://registry/repository`` asset a push emits events for
- ``modelkit_alias(reference)``: the alias operators emit through, only when a digest is new to the repository

Names are imported lazily, so Airflow's provider discovery (``get_provider_info``) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "KitOpsHook": "hooks",
    "RegistrySettings": "hooks",
    "KitOpsBaseOperator": "operators",
    "KitPackOperator": "operators",
    "KitPushOperator": "operators",
    "KitPullOperator": "operators",
    "KitUnpackOperator": "operators",
    "KitPromoteOperator": "operators",
    "ModelKitSensor": "sensors",
    "ModelKitTrigger": "triggers",
    "modelkit_alias": "assets",
    "modelkit_asset": "assets",
    "pinned_from_events": "assets",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = sorted(_EXPORTS)
