"""Airflow re-runs follow content: a nightly retrain with unchanged inputs packs nothing new, uploads no layer
and emits no second asset event; a re-run of a logical date on an empty worker with immutable tags succeeds;
a changed input gives a new digest and exactly one event. Real registry (through a counting proxy), real
``dag.test()`` runs, asset events read from Airflow's database.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

pytest.importorskip("airflow.sdk")

from test_airflow import _asset_events, _register, _states, _xcom  # noqa: E402

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

KITFILE = "manifestVersion: 1.0.0\npackage: {name: churn}\nmodel: {name: churn, path: model.bin}\ncode:\n  - path: src\n"
DAY1 = pendulum.datetime(2026, 11, 20, tz="UTC")


def _context(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "Kitfile").write_text(KITFILE)
    (root / "model.bin").write_bytes(b"weights " * 4096)
    (root / "src" / "train.py").write_text("print('fit')\n")
    return root


def _uploads(proxy: Any) -> list[str]:
    return [r.path for r in proxy.matching("/blobs/uploads/", "POST")]


def _dags(conn_id: str, repo: str, ctx: Path, *, reference: str, skip: bool, dag_id: str) -> tuple[Any, Any]:
    from airflow.sdk import DAG, Param, task

    from kitops_flows_airflow import KitPackOperator, modelkit_alias, modelkit_asset

    with DAG(dag_id, schedule=None, start_date=DAY1, params={"home": Param("", type="string")}) as retrain:
        KitPackOperator(task_id="pack", kitops_conn_id=conn_id, kitops_home="{{ params.home }}",
                        context_dir=str(ctx), reference=reference, push=True, skip_if_unchanged=skip,
                        outlets=[modelkit_alias(repo)])
    with DAG(f"{dag_id}_deploy", schedule=[modelkit_asset(repo)], start_date=DAY1) as deploy:
        @task
        def noop() -> None:
            return None

        noop()
    _register(retrain, deploy)
    return retrain, deploy


def test_nightly_retrain_with_unchanged_inputs_is_a_no_op_and_a_changed_input_triggers_once(
        airflow_db, registry, proxy_factory, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    proxy = proxy_factory(registry.host)
    repo = f"{proxy.host}/rerun/churn"
    monkeypatch.setenv("AIRFLOW_CONN_KITOPS_RERUN", json.dumps({"conn_type": "kitops", "host": f"http://{proxy.host}"}))
    ctx = _context(tmp_path / "job")
    retrain, _ = _dags("kitops_rerun", repo, ctx, reference=f"{repo}:nightly", skip=True, dag_id="rerun_nightly")
    home = str(tmp_path / "worker")

    dr1 = retrain.test(logical_date=DAY1, run_conf={"home": home})
    assert dr1.state == "success", _states(dr1)
    first = _xcom(dr1, "pack")
    assert first["packed"] and first["new_to_repository"]
    assert [e.extra["digest"] for e in _asset_events(f"oci://{repo}")] == [first["digest"]]

    proxy.reset()  # the next night, nothing changed
    dr2 = retrain.test(logical_date=DAY1 + timedelta(days=1), run_conf={"home": home})
    assert dr2.state == "success", _states(dr2)
    second = _xcom(dr2, "pack")
    assert second["digest"] == first["digest"] and not second["packed"] and not second["new_to_repository"]
    assert _uploads(proxy) == [] and proxy.count("/manifests/", "PUT") == 0  # nothing written at all
    assert len(_asset_events(f"oci://{repo}")) == 1  # no second trigger

    (ctx / "model.bin").write_bytes(b"weights " * 4095 + b"retrain!")  # a changed input
    dr3 = retrain.test(logical_date=DAY1 + timedelta(days=2), run_conf={"home": home})
    assert dr3.state == "success", _states(dr3)
    third = _xcom(dr3, "pack")
    assert third["packed"] and third["new_to_repository"] and third["digest"] != first["digest"]
    assert [e.extra["digest"] for e in _asset_events(f"oci://{repo}")] == [first["digest"], third["digest"]]


def test_rerun_of_a_logical_date_on_an_empty_worker_with_immutable_tags_succeeds_silently(
        airflow_db, registry, proxy_factory, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    proxy = proxy_factory(registry.host)
    repo = f"{proxy.host}/rerun/immutable"
    monkeypatch.setenv("AIRFLOW_CONN_KITOPS_IMMUTABLE", json.dumps(
        {"conn_type": "kitops", "host": f"http://{proxy.host}", "extra": {"immutable_tags": True}}))
    retrain, _ = _dags("kitops_immutable", repo, _context(tmp_path / "job"), reference=f"{repo}:{{{{ ds_nodash }}}}",
                       skip=False, dag_id="rerun_immutable")

    dr1 = retrain.test(logical_date=DAY1, run_conf={"home": str(tmp_path / "worker-1")})
    assert dr1.state == "success", _states(dr1)
    first = _xcom(dr1, "pack")
    assert first["tags"] == ["20261120"] and len(_asset_events(f"oci://{repo}")) == 1

    proxy.reset()  # the same logical date again, on another worker: empty store, same inputs, same tag
    dr2 = retrain.test(logical_date=DAY1, run_conf={"home": str(tmp_path / "worker-2")})
    assert dr2.state == "success", _states(dr2)
    again = _xcom(dr2, "pack")
    assert again["digest"] == first["digest"] and again["packed"] and not again["new_to_repository"]
    layer_digests = {layer["digest"] for layer in first["layers"]} | {first["config_digest"]}
    # an upload completes with PUT …/blobs/uploads/…?digest=<digest>: none for the ModelKit's config or layers
    assert not [r.path for r in proxy.matching("/blobs/uploads/", "PUT") if any(d in r.path for d in layer_digests)]
    assert len(_uploads(proxy)) == 1  # the re-run's provenance record, nothing else
    assert proxy.count("/manifests/20261120", "PUT") == 0  # the tag stays where it is
    assert len(_asset_events(f"oci://{repo}")) == 1
