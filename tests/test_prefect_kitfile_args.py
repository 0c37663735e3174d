"""Prefect's side of the one Kitfile-from-arguments path: a ``@modelkit_flow`` returning
``ModelKitSpec.from_arguments`` packs and pushes, with the real registry and moto S3, the Kitfile the
core's ``KitfileArguments`` builds (the one Airflow's operator and Dagster's ``Layer``s get), streams
its ``s3://`` datasets, and is content-cached like any other pack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prefect")

from kitops_flows.kitfile_args import KitfileArguments  # noqa: E402
from kitops_flows_prefect import KitOpsRegistry, ModelKitSpec, modelkit_flow  # noqa: E402

pytestmark = [pytest.mark.prefect, pytest.mark.integration]


def test_modelkit_flow_packs_a_kitfile_from_arguments(prefect_server: None, registry: Any, s3: Any,
                                                      kitops_home: Path, tmp_path: Path) -> None:
    s3c = s3.client()
    s3c.create_bucket(Bucket="prefect-args")
    s3c.put_object(Bucket="prefect-args", Key="churn/train.csv", Body=b"a,b\n1,2\n")
    s3c.put_object(Bucket="prefect-args", Key="churn/extra/more.csv", Body=b"a,b\n3,4\n")
    job = tmp_path / "job"
    (job / "model").mkdir(parents=True)
    (job / "model" / "w.json").write_text("[0.1]")
    block = KitOpsRegistry(registry=registry.host, plain_http=True, repository="prefect/args",
                           kitops_home=str(kitops_home))
    arguments = KitfileArguments(model=str(job / "model"), package={"name": "churn"},
                                 datasets={"train": "s3://prefect-args/churn/train.csv", "raw": "s3://prefect-args/churn/"})

    @modelkit_flow(reference=":v1", registry=block)
    def churn() -> ModelKitSpec:
        return ModelKitSpec.from_arguments(arguments)

    first = churn()
    _, expected, _ = arguments.build(None)
    pulled = block.get_client().info(first.pinned, remote=True)  # streamed: the registry holds it
    assert [(d.name, d.path) for d in pulled.datasets] == [("train", "data/train.csv"), ("raw", "data/raw")]
    assert (pulled.model.name, pulled.model.path) == ("churn", "model")
    assert pulled.to_yaml() == expected.to_yaml()
    assert {layer.path for layer in first.layers} == {"model", "data/train.csv", "data/raw"}
    assert churn() == first  # same files and S3 object versions: the cached ModelKit
