"""Per-task local stores for Airflow workers: the fields a ``kitops_home`` template may use.

Under the Celery or Kubernetes executor each task runs on some worker with its own disk, so give
every task its own store (``kitops_home`` on the operator or in the connection's extra)::

    KitPackOperator(..., kitops_home="/scratch/kitops/{dag_id}/{task_id}", push=True)
    KitUnpackOperator(..., kitops_home="ephemeral")          # a throwaway store, removed at task exit

Fields: ``{dag_id}``, ``{task_id}``, ``{run_id}``, ``{map_index}``, ``{try_number}``, plus the core's
``{pid}``, ``{host}`` and ``{tmp}`` (``kitops_flows.worker_store``). ``{run_id}`` and the others that
need a running task are known only inside ``execute()``.
"""

from __future__ import annotations

from typing import Any


def task_fields(task: Any) -> dict[str, object]:
    """Template fields for ``task`` (an operator or sensor), from the running task instance when there is one."""
    fields: dict[str, object] = {"dag_id": getattr(task, "dag_id", None), "task_id": getattr(task, "task_id", None)}
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
    except Exception:  # noqa: BLE001 - not inside a running task (parse time, unit tests): static fields only
        return fields
    ti = context.get("ti")
    fields["run_id"] = context.get("run_id")
    if ti is not None:
        map_index = getattr(ti, "map_index", -1)
        fields["map_index"] = map_index if map_index is not None and map_index >= 0 else None
        fields["try_number"] = getattr(ti, "try_number", None)
    return fields


__all__ = ["task_fields"]
