"""``@task.modelkit``: a TaskFlow task whose function returns what to pack; the same task packs (and pushes) it.

The function returns either a directory (holding a Kitfile, or the files that ``model=``/``datasets=``/
``code=``/``docs=`` of the decorator name, relative to it) or a dict of layer paths with the keys
``model``, ``datasets`` (name -> path or ``s3://`` URI), ``code``, ``docs`` and ``package``. Every other
argument is ``KitPackOperator``'s; the task returns the descriptor, each key also its own XCom::

    @task.modelkit(reference="reg.example.com/team/churn:{{ ds_nodash }}", push=True, kitops_home="ephemeral")
    def train(ds=None) -> dict:
        out = Path(f"/scratch/churn/{ds}")
        fit(out / "model.joblib")
        return {"model": str(out / "model.joblib"), "datasets": {"train": f"s3://ml-data/churn/{ds}/"}}

    KitUnpackOperator(task_id="serve", reference=train()["pinned"], filters=["model"], dest="/srv/churn")

Registered through the provider's ``task-decorators`` entry (``get_provider_info``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk.bases.decorator import DecoratedOperator, task_decorator_factory

from kitops_flows.errors import KitfileError

from .operators import KitPackOperator

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.bases.decorator import TaskDecorator

#: Keys a returned dict may have (the KitPackOperator arguments describing layers).
LAYER_KEYS = ("model", "datasets", "code", "docs", "package")


class _ModelKitDecoratedOperator(DecoratedOperator, KitPackOperator):
    """Runs the callable, then packs (and pushes) what it returned, as ``KitPackOperator`` would."""

    template_fields: Sequence[str] = (*DecoratedOperator.template_fields, *KitPackOperator.template_fields)
    template_fields_renderers: ClassVar[dict[str, str]] = {**DecoratedOperator.template_fields_renderers,
                                                           **KitPackOperator.template_fields_renderers}
    custom_operator_name = "@task.modelkit"

    def __init__(self, *, python_callable: Callable, op_args: Collection[Any] | None = None,
                 op_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        kwargs["multiple_outputs"] = True  # the descriptor's keys are XComs, whatever the return annotation says
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs)

    def execute(self, context: Context) -> Any:
        from airflow.providers.common.compat.sdk import context_merge, determine_kwargs

        context_merge(context, self.op_kwargs)
        returned = self.python_callable(*self.op_args, **determine_kwargs(self.python_callable, self.op_args, context))
        _apply(self, returned, self.task_id)
        return KitPackOperator.execute(self, context)  # the pack itself, not DecoratedOperator's callable run


def _apply(op: KitPackOperator, returned: Any, name: str) -> None:
    """Point the operator at what the callable returned."""
    if isinstance(returned, (str, Path)):
        op.context_dir = str(returned)
        return
    if isinstance(returned, Mapping):
        unknown = sorted(set(returned) - set(LAYER_KEYS))
        if unknown:
            raise KitfileError(f"@task.modelkit {name} returned unknown key(s) {unknown}; use {', '.join(LAYER_KEYS)}")
        if "model" in returned:
            op.model = str(returned["model"]) if returned["model"] else None
        if "datasets" in returned:
            op.datasets = {str(k): str(v) for k, v in dict(returned["datasets"] or {}).items()}
        for key in ("code", "docs"):
            if key in returned:
                value = returned[key]
                setattr(op, key, [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value or []])
        if "package" in returned:
            op.package = dict(returned["package"] or {})
        return
    raise KitfileError(f"@task.modelkit {name} must return a directory (str or Path) or a dict with keys "
                       f"{', '.join(LAYER_KEYS)}, not {type(returned).__name__}")


def modelkit_task(python_callable: Callable | None = None, **kwargs: Any) -> TaskDecorator:
    """``@task.modelkit(**KitPackOperator arguments)``; see the module docstring."""
    return task_decorator_factory(python_callable=python_callable, decorated_operator_class=_ModelKitDecoratedOperator,
                                  **kwargs)


__all__ = ["LAYER_KEYS", "modelkit_task"]
