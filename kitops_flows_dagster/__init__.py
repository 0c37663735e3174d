"""Dagster integration for kitops-flows: assets as ModelKits.

>>> import dagster as dg
>>> from kitops_flows_dagster import KitRegistryResource, ModelKitIOManager
>>> kitops = KitRegistryResource(registry="registry.example.com", repository_prefix="ml",
...                              username="ci", password=dg.EnvVar("KITOPS_REGISTRY_PASSWORD"))
>>> resources = {"kitops": kitops, "io_manager": ModelKitIOManager(kitops=kitops)}

- ``KitRegistryResource``: registry settings, ``get_client()``, pack/push/pull/pull_layer/promote.
- ``ModelKitIOManager``: outputs become ModelKit versions; inputs pull only the layers they need.
- ``modelkit_asset``: pack several upstream assets into one ModelKit (one layer each).
- ``modelkit_sensor``: start a job when a new version appears in a repository.
- ``modelkit_digest_check``: the recorded digest still exists and its tags still point at it.
- ``ModelKitOutput`` / ``ModelKitInput``: typed per-asset and per-input settings (``.metadata()``).

Everything ModelKit-related is done by ``kitops_flows.api``; this package only maps Dagster's
asset keys, partitions, metadata and runs onto it.
"""

from .assets import modelkit_asset
from .checks import modelkit_digest_check
from .config import ModelKitInput, ModelKitOutput
from .contents import Layer, ModelKitContents
from .io_manager import ModelKitIOManager
from .resource import KitRegistryResource
from .sensors import ModelKitVersion, modelkit_sensor
from .serializers import JsonSerializer, PickleSerializer, Serializer, TextSerializer

__all__ = [
    "JsonSerializer", "KitRegistryResource", "Layer", "ModelKitContents", "ModelKitIOManager", "ModelKitInput",
    "ModelKitOutput", "ModelKitVersion",
    "PickleSerializer", "Serializer", "TextSerializer", "modelkit_asset", "modelkit_digest_check", "modelkit_sensor",
]
