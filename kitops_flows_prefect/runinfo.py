"""Who is running: the Prefect flow run, task run and deployment, as the core's ``RunContext``.

``prefect_run_context()`` is what the kitops tasks pass as ``run=`` to ``KitOpsClient.pack``, so every
ModelKit's provenance names the flow, flow run, task run and deployment that built it::

    RunContext(orchestrator="prefect", pipeline="churn-retrain", run_id="<flow run id>",
               task="pack-modelkit-0", attempt=1, url="http://…/runs/flow-run/<id>",
               extra={"flow_run_name": "…", "task_run_id": "…", "deployment": "churn-retrain/nightly", …})
"""

from __future__ import annotations

import logging
from typing import Any

from kitops_flows.api import RunContext

LOG = logging.getLogger(__name__)


def _get(module: Any, name: str) -> Any:
    """One ``prefect.runtime`` attribute; None when Prefect cannot tell (e.g. no API to ask)."""
    try:
        return getattr(module, name)
    except Exception as e:  # noqa: BLE001 - runtime lookups may hit the API; lineage must not fail a task
        LOG.debug("prefect.runtime %s.%s unavailable: %s", module.__name__, name, e)
        return None


def prefect_run_context(partition: str = "") -> RunContext:
    """The current Prefect run as a ``RunContext`` (empty fields outside a run).

    ``pipeline`` is the flow name, ``run_id`` the flow run id, ``task`` the task run name and
    ``attempt`` its run count; ``extra`` holds the flow run name, task run id and the deployment.
    """
    from prefect.runtime import deployment, flow_run, task_run

    if not _get(flow_run, "id") and not _get(task_run, "id"):
        return RunContext(orchestrator="prefect", partition=partition)  # outside any run: nothing to record
    extra: dict[str, str] = {}
    for key, value in (
        ("flow_run_name", _get(flow_run, "name")),
        ("task_run_id", _get(task_run, "id")),
        ("deployment", _deployment_name(deployment, flow_run)),
        ("deployment_id", _get(deployment, "id")),
        ("scheduled_start_time", _get(flow_run, "scheduled_start_time") if _get(flow_run, "id") else None),
    ):
        if value:
            extra[key] = str(value)
    attempt = _get(task_run, "run_count")
    return RunContext(
        orchestrator="prefect",
        pipeline=str(_get(flow_run, "flow_name") or ""),
        run_id=str(_get(flow_run, "id") or ""),
        task=str(_get(task_run, "name") or ""),
        partition=partition,
        attempt=int(attempt) if attempt else None,
        url=str(_get(flow_run, "ui_url") or ""),
        extra=extra,
    )


def _deployment_name(deployment: Any, flow_run: Any) -> str:
    """``flow/deployment`` as Prefect's CLI writes it, or "" for a flow run outside a deployment."""
    name = _get(deployment, "name")
    if not name:
        return ""
    flow = _get(flow_run, "flow_name")
    return f"{flow}/{name}" if flow else str(name)


__all__ = ["prefect_run_context"]
