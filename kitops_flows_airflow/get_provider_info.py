"""Provider metadata: what Airflow's ProvidersManager discovers through the entry point

``[apache_airflow_provider] provider_info = kitops_flows_airflow.get_provider_info:get_provider_info``.

Kept free of Airflow and kitops_flows imports: Airflow calls this while it scans providers.
"""

from __future__ import annotations

from typing import Any

INTEGRATION = "KitOps"
_PKG = "kitops_flows_airflow"


def get_provider_info() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        versions = [version("kitops-flows")]
    except PackageNotFoundError:  # running from a source tree
        versions = []
    from .hooks_ui import conn_fields, ui_field_behaviour

    return {
        "package-name": "kitops-flows",
        "name": "KitOps ModelKits",
        "description": "Pack, push, pull, unpack and promote KitOps ModelKits (OCI artifacts) from Airflow, "
                       "with lineage and data-aware scheduling on ModelKit repositories.",
        "versions": versions,
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://kitops.org/docs/",
                "tags": ["software"],
            }
        ],
        "operators": [{"integration-name": INTEGRATION, "python-modules": [f"{_PKG}.operators"]}],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": [f"{_PKG}.sensors"]}],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": [f"{_PKG}.hooks"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": [f"{_PKG}.triggers"]}],
        "task-decorators": [{"name": "modelkit", "class-name": f"{_PKG}.decorators.modelkit_task"}],
        "connection-types": [
            {
                "hook-class-name": f"{_PKG}.hooks.KitOpsHook",
                "hook-name": "KitOps (OCI registry)",
                "connection-type": "kitops",
                "ui-field-behaviour": ui_field_behaviour(),
                "conn-fields": conn_fields(),
            }
        ],
        "asset-uris": [
            {
                "schemes": ["oci"],
                "handler": f"{_PKG}.assets.sanitize_uri",
                "factory": f"{_PKG}.assets.create_asset",
                "to_openlineage_converter": f"{_PKG}.assets.convert_asset_to_openlineage",
            }
        ],
    }
