"""``@task.modelkit`` (the provider's ``task-decorators`` entry) under ``dag.test()``: the function returns what
to pack, the same task packs and pushes it, and a downstream operator consumes ``train()["pinned"]``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.store import LocalStore
from kitops_flows_airflow.get_provider_info import get_provider_info

pytestmark = pytest.mark.airflow


def test_the_decorator_is_registered_with_the_provider() -> None:
    from airflow.sdk import task

    from kitops_flows_airflow.decorators import modelkit_task

    assert {"name": "modelkit", "class-name": "kitops_flows_airflow.decorators.modelkit_task"} in \
        get_provider_info()["task-decorators"]
    assert task.modelkit is modelkit_task


def _register(dag: Any) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def test_task_modelkit_packs_and_pushes_what_the_function_returns(
        airflow_db, registry, kitops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
        restore_logging) -> None:  # noqa: ANN001
    import pendulum
    from airflow.sdk import DAG, task

    from kitops_flows_airflow.operators import KitUnpackOperator

    monkeypatch.setenv("AIRFLOW_CONN_KITOPS_DECO", json.dumps({"conn_type": "kitops", "host": f"http://{registry.host}",
                                                                "extra": {"repository": "exec17/decorated"}}))
    job, dest = tmp_path / "job", tmp_path / "serve"

    with DAG("kitops_decorated", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        @task.modelkit(reference=":v1", push=True, kitops_conn_id="kitops_deco", kitops_home="ephemeral",
                       package={"name": "churn"})
        def train() -> dict:
            (job / "src").mkdir(parents=True)
            (job / "model.bin").write_bytes(b"trained weights")
            (job / "src" / "train.py").write_text("print('fit')\n")
            return {"model": str(job / "model.bin"), "code": [str(job / "src")]}

        packed = train()
        KitUnpackOperator(task_id="serve", reference=packed["pinned"], filters=["model"], dest=str(dest),
                          kitops_conn_id="kitops_deco", kitops_home="ephemeral")
    _register(dag)
    run = dag.test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"train": "success", "serve": "success"}, states
    assert (dest / "model.bin").read_bytes() == b"trained weights"

    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    remote = kit.inspect(f"{registry.host}/exec17/decorated:v1", remote=True)
    kitfile = remote["kitfile"]
    assert kitfile["package"]["name"] == "churn" and kitfile["model"]["path"] == "model.bin"
    assert [c["path"] for c in kitfile["code"]] == ["src"]
