"""Pipelines on the orchestrators' real distributed executors, each task with its own empty store.

Only the registry and S3 are shared, as on Celery/Kubernetes/Dask workers; S3 credentials and the
endpoint exist only in the orchestrator's own connection/block/resource (no AWS_* in the environment).

- Dagster: the multiprocess executor on a persistent DAGSTER_HOME (every step in its own process).
"""

# No `from __future__ import annotations`: Dagster inspects real annotations in the job module.
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.store import LocalStore

TESTS = Path(__file__).parent
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION",
           "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@pytest.fixture
def orchestrator_only_s3(s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:  # noqa: ANN001
    """moto with one object; no AWS credentials or endpoint anywhere but the dict this returns."""
    s3_server.reset()
    client = s3_server.client()
    client.create_bucket(Bucket="exec-data")
    client.put_object(Bucket="exec-data", Key="churn/train.json", Body=b"[1, 2, 3, 6]")
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "aws").mkdir()
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws" / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata probe either
    yield {"endpoint": s3_server.endpoint_url, "key": s3_server.access_key, "secret": s3_server.secret_key,
           "uri": "s3://exec-data/churn/train.json"}


def _store_dirs(base: Path) -> dict[str, Path]:
    return {p.name: p for p in base.iterdir() if (p / "storage").is_dir()}


@pytest.mark.dagster
def test_dagster_multiprocess_steps_use_their_own_stores_and_the_s3_resource(
        registry, orchestrator_only_s3: dict, kitops_home: Path, tmp_path: Path,  # noqa: ANN001
        monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg
    from executors.dagster_job import kitops_job

    stores = tmp_path / "stores"
    for name, value in {"KITOPS_TEST_REGISTRY": registry.host, "KITOPS_TEST_PREFIX": "exec17/dagster",
                        "KITOPS_TEST_STORES": str(stores), "KITOPS_TEST_S3_URI": orchestrator_only_s3["uri"],
                        "KITOPS_TEST_S3_ENDPOINT": orchestrator_only_s3["endpoint"],
                        "KITOPS_TEST_S3_KEY": orchestrator_only_s3["key"],
                        "KITOPS_TEST_S3_SECRET": orchestrator_only_s3["secret"],
                        "DAGSTER_HOME": str(tmp_path / "dagster-home")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(TESTS)  # the step processes import executors.dagster_job relative to the working directory
    (tmp_path / "dagster-home").mkdir()
    (tmp_path / "dagster-home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(kitops_job), instance=instance)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        mats = {e.asset_key.path[-1]: e.materialization for e in result.get_asset_materialization_events()}
    pids = {name: mats[name].metadata["pid"].value for name in ("dataset", "model")}
    assert len({*pids.values(), os.getpid()}) == 3, pids  # two step processes, neither is pytest

    # one store per step, each holding only what that step packed or loaded
    dirs = _store_dirs(stores)
    assert set(dirs) == {"exec17__dataset", "exec17__model"}, sorted(dirs)
    dataset_pinned = mats["dataset"].metadata["pinned"].value
    model_pinned = mats["model"].metadata["pinned"].value
    assert [e.repo_path for e in LocalStore(dirs["exec17__dataset"]).list_entries()] == [dataset_pinned.split("@")[0]]
    model_store = KitOpsClient(store=LocalStore(dirs["exec17__model"]))
    assert model_store.describe(model_pinned).digest == model_pinned.split("@")[1]

    # what the registry holds: the S3 object in the dataset layer, the model trained from it
    fresh = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    out = fresh.unpack(dataset_pinned, tmp_path / "check" / "data")
    assert json.loads((out.dest / "train.json").read_text()) == [1, 2, 3, 6]
    import pickle

    fresh.unpack(model_pinned, tmp_path / "check" / "model", filters=["model"])
    model_files = list((tmp_path / "check" / "model").rglob("*.pkl"))
    trained = pickle.loads(model_files[0].read_bytes())
    assert trained == {"mean": 3.0, "trained_in": str(pids["model"])}


@pytest.mark.prefect
def test_prefect_dask_workers_use_their_own_stores_and_the_aws_credentials_block(
        registry, orchestrator_only_s3: dict, prefect_server, kitops_home: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from executors.prefect_flow import dask_flow, write_context
    from prefect_aws import AwsClientParameters, AwsCredentials

    from kitops_flows_prefect import KitOpsRegistry

    stores = tmp_path / "stores"
    creds = AwsCredentials(aws_access_key_id=orchestrator_only_s3["key"],
                           aws_secret_access_key=orchestrator_only_s3["secret"], region_name="us-east-1",
                           aws_client_parameters=AwsClientParameters(endpoint_url=orchestrator_only_s3["endpoint"]))
    block = KitOpsRegistry(registry=f"http://{registry.host}", repository="exec17/prefect",
                           kitops_home=str(stores) + "/{task_name}", aws_credentials=creds)
    out = dask_flow(block, str(write_context(tmp_path / "ctx")), orchestrator_only_s3["uri"], str(tmp_path / "dest"))

    assert len(set(out["pids"]) - {os.getpid()}) == 2, out["pids"]  # tasks ran in two worker processes
    dirs = _store_dirs(stores)
    assert len(dirs) == 3 and all(n.startswith(("pack-modelkit", "pull-modelkit-layer")) for n in dirs), sorted(dirs)
    # the S3 object (read with the block's credentials) went through the registry to the puller's own store
    assert json.loads(Path(out["pulled"][0]).read_text()) == [1, 2, 3, 6]
    puller = next(p for n, p in dirs.items() if n.startswith("pull-modelkit-layer"))
    assert LocalStore(puller).has_blob(out["pinned"].split("@")[1])  # manifest cached only where it was needed
    # the unpushed ModelKit lives only in its packer's store: push_modelkit says so and how to fix it
    assert "not in this task's local store" in out["push_error"] and "push=True" in out["push_error"]
    assert "NotInLocalStoreError" in out["push_error"] or "cannot push" in out["push_error"]
