"""kitops-flows for Prefect 3: KitOps ModelKits as the output of Prefect flows.

* ``KitOpsRegistry``: a block with the registry address and credentials (``SecretStr`` password);
  register the type with ``prefect block register -m kitops_flows_prefect``.
* Tasks: ``pack_modelkit`` (content-cached), ``push_modelkit``, ``pull_modelkit_layer`` (only the
  selected layers), ``promote_modelkit``. Each push creates a markdown artifact keyed per
  repository and emits ``kitops.modelkit.pushed``; promotions emit ``kitops.modelkit.promoted``.
* ``@modelkit_flow``: a flow whose returned directory is packed and pushed.
* ``modelkit_asset(repo)``: the repository as a Prefect asset (``oci://<registry>/<repo>``, the
  events' resource id too) for ``@materialize`` and ``asset_deps``.

::

    from prefect import flow
    from kitops_flows_prefect import KitOpsRegistry, pack_modelkit, promote_modelkit

    @flow
    def retrain():
        mk = pack_modelkit("job/", ":nightly", registry="prod-registry", push=True)
        promote_modelkit(mk.pinned, "staging", registry="prod-registry")
"""

from __future__ import annotations

from .artifacts import TransferProgress, artifact_key, push_summary
from .blocks import KitOpsRegistry, resolve_registry
from .caching import MODELKIT_INPUTS, ModelKitInputs, modelkit_inputs_key
from .events import PROMOTED, PUSHED, modelkit_asset, resource_id
from .flows import ModelKitSpec, modelkit_flow
from .runinfo import prefect_run_context
from .tasks import pack_modelkit, promote_modelkit, pull_modelkit_layer, push_modelkit, retry_transient

__all__ = [
    "MODELKIT_INPUTS", "PROMOTED", "PUSHED", "KitOpsRegistry", "ModelKitInputs", "ModelKitSpec", "TransferProgress",
    "artifact_key", "modelkit_asset", "modelkit_flow", "modelkit_inputs_key", "pack_modelkit", "prefect_run_context",
    "promote_modelkit", "pull_modelkit_layer", "push_modelkit", "push_summary", "resolve_registry", "resource_id",
    "retry_transient",
]
