"""Per-task local stores for Prefect workers: the fields a block's ``kitops_home`` template may use.

With a ``DaskTaskRunner`` (or process workers, or one machine per worker) each task may run somewhere
else, so give each task run its own store through the block::

    KitOpsRegistry(registry="reg.example.com", kitops_home="/scratch/kitops/{task_name}").save("prod")
    KitOpsRegistry(registry="reg.example.com", kitops_home="ephemeral")   # throwaway, removed after the task

Fields: ``{task_id}`` (task run id), ``{task_name}`` (task run name), ``{flow_run_id}`` (also ``{run_id}``),
plus the core's ``{pid}``, ``{host}`` and ``{tmp}`` (``kitops_flows.worker_store``).
"""

from __future__ import annotations


def task_fields() -> dict[str, object]:
    """Template fields of the running task run (empty outside one)."""
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    if ctx is None or ctx.task_run is None:
        return {}
    run = ctx.task_run
    flow_run_id = str(run.flow_run_id) if run.flow_run_id else None
    return {"task_id": str(run.id), "task_name": run.name, "flow_run_id": flow_run_id, "run_id": flow_run_id}


__all__ = ["task_fields"]
