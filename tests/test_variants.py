"""Variants of one model in one ModelKit index, selected by labels in each orchestrator: an Airflow DAG run
(``dag.test()``), a Prefect flow on the test server and a Dagster materialisation, against the real registry.
The producer publishes the index with the core API; each consumer names only the index and the labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kitspec import index_entry, kit_index, kit_modelkit, upload

from kitops_flows.api import KitOpsClient
from kitops_flows.indexes import ModelKitIndexes
from kitops_flows.store import LocalStore

try:  # module level: Dagster resolves the asset's resource annotation by name
    from kitops_flows_dagster import KitRegistryResource
except ImportError:  # pragma: no cover - the dagster extra is not installed
    KitRegistryResource = None  # type: ignore[assignment,misc]


def _publish(host: str, repo: str, tmp_path: Path) -> dict[str, Any]:
    """Pack a cpu and a cuda variant (distinct weights, same docs), publish them as ``<repo>:all``."""
    kit = KitOpsClient(store=LocalStore(tmp_path / "producer"), plain_http=True)
    base = f"{host}/{repo}"
    digests = {}
    for device in ("cpu", "cuda"):
        ctx = tmp_path / f"ctx-{device}"
        (ctx / "weights").mkdir(parents=True)
        (ctx / "weights" / "model.bin").write_bytes(device.encode() * 64)
        (ctx / "README.md").write_text("shared docs\n")
        (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: llm}\nmodel: {path: weights}\n"
                                     "docs:\n  - {path: README.md}\n")
        digests[device] = kit.pack(ctx, reference=f"{base}:{device}", record_lineage=False).digest
    ModelKitIndexes(kit).publish(f"{base}:all", {f"{base}:cpu": {"device": "cpu"},
                                                f"{base}:cuda": {"device": "cuda", "gpuArchs": ["sm_80"]}}, push=True)
    return {"index": f"{base}:all", "digests": digests}


def _publish_spec(host: str, repo: str) -> dict[str, Any]:
    """A kit-1.17 index built by hand from the spec: a Kit tar, a ModelPack and a zstd raw variant."""
    arts = {"cpu": kit_modelkit({"model": ("weights/model.bin", b"cpu" * 64)}),
            "cuda": kit_modelkit({"model": ("weights/model.bin", b"cuda" * 64)}, modelpack=True),
            "int4": kit_modelkit({"model": ("weights/model.bin", b"int4" * 64)}, layer_format="raw",
                                 compression="zstd")}
    for tag, art in arts.items():
        upload(host, repo, tag, art)
    upload(host, repo, "all", kit_index([index_entry(art, tag=tag, labels={"device": tag}, modelpack=tag == "cuda")
                                         for tag, art in arts.items()]))
    return {"index": f"{host}/{repo}:all", "digests": {tag: art.digest for tag, art in arts.items()}}


@pytest.mark.airflow
def test_airflow_operators_take_a_variant_by_labels(airflow_db, registry, kitops_home: Path, tmp_path: Path,  # noqa: ANN001
                                                    monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.sdk import DAG

    from kitops_flows_airflow import KitPullOperator, KitUnpackOperator

    published = _publish(registry.host, "variants/airflow", tmp_path)
    monkeypatch.setenv("AIRFLOW_CONN_KITOPS_DEFAULT", json.dumps(
        {"conn_type": "kitops", "host": f"http://{registry.host}", "extra": {"kitops_home": str(kitops_home)}}))
    with DAG("kitops_variants", schedule=None) as dag:
        KitUnpackOperator(task_id="unpack_cuda", reference=published["index"], labels={"device": "cuda"},
                          dest=str(tmp_path / "serve"), filters=["model"])
        KitPullOperator(task_id="pull_cpu", reference=published["index"], labels={"device": "{{ 'cpu' }}"})
    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    run = dag.test()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {"unpack_cuda": "success", "pull_cpu": "success"}, states
    xcom = {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in run.get_task_instances()}
    assert xcom["unpack_cuda"]["digest"] == published["digests"]["cuda"]
    assert (tmp_path / "serve" / "weights" / "model.bin").read_bytes() == b"cuda" * 64
    assert not (tmp_path / "serve" / "README.md").exists()
    assert xcom["pull_cpu"]["digest"] == published["digests"]["cpu"]  # the label was templated
    local = KitOpsClient(store=LocalStore(kitops_home))
    assert local.describe(published["index"]).digest == published["digests"]["cpu"], "tagged with the index's tag"


@pytest.mark.prefect
def test_prefect_task_takes_a_variant_by_labels(prefect_server: None, registry, kitops_home: Path,  # noqa: ANN001
                                                tmp_path: Path) -> None:
    from prefect import flow

    from kitops_flows_prefect import KitOpsRegistry, pull_modelkit_layer

    published = _publish(registry.host, "variants/prefect", tmp_path)
    spec = _publish_spec(registry.host, "variants/prefect-spec")
    block = KitOpsRegistry(registry=registry.host, plain_http=True, kitops_home=str(kitops_home))

    @flow
    def serve(index: str, dest: str, device: str) -> list[str]:
        result = pull_modelkit_layer(index, dest, layers=["model"], registry=block, labels={"device": device})
        return [str(p) for p in result.paths]

    paths = serve(published["index"], str(tmp_path / "serve"), "cpu")
    assert paths == [str(tmp_path / "serve" / "weights")]
    assert (tmp_path / "serve" / "weights" / "model.bin").read_bytes() == b"cpu" * 64
    serve(spec["index"], str(tmp_path / "mp"), "cuda")  # a ModelPack entry of a hand-built kit index
    assert (tmp_path / "mp" / "weights" / "model.bin").read_bytes() == b"cuda" * 64


@pytest.mark.dagster
def test_dagster_resource_takes_a_variant_by_labels(registry, kitops_home: Path, tmp_path: Path) -> None:  # noqa: ANN001
    import dagster as dg

    published = _publish(registry.host, "variants/dagster", tmp_path)
    spec = _publish_spec(registry.host, "variants/dagster-spec")

    @dg.asset
    def served_weights(kitops: KitRegistryResource) -> str:
        result = kitops.pull_layer(published["index"], ["model"], tmp_path / "serve", labels={"device": "cuda"})
        return str(result.dest)

    @dg.asset
    def quantised_weights(kitops: KitRegistryResource) -> str:  # zstd raw entry of a hand-built kit index
        return kitops.pull(spec["index"], labels={"device": "int4"}).digest

    result = dg.materialize([served_weights, quantised_weights], resources={"kitops": KitRegistryResource(
        registry=registry.host, plain_http=True, kitops_home=str(kitops_home))})
    assert result.success
    assert (tmp_path / "serve" / "weights" / "model.bin").read_bytes() == b"cuda" * 64
    assert result.output_for_node("quantised_weights") == spec["digests"]["int4"]
