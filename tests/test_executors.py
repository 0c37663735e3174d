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
        assert [c.passed for c in result.get_asset_check_evaluations()] == [True]  # checked from its own store
    pids = {name: mats[name].metadata["pid"].value for name in ("dataset", "model")}
    assert len({*pids.values(), os.getpid()}) == 3, pids  # two step processes, neither is pytest

    # one store per step, each holding only what that step packed or loaded
    dirs = _store_dirs(stores)
    assert set(dirs) >= {"exec17__dataset", "exec17__model"}, sorted(dirs)
    dataset_pinned = mats["dataset"].metadata["pinned"].value
    model_pinned = mats["model"].metadata["pinned"].value
    entries = {n: {e.repo_path for e in LocalStore(p).list_entries()} for n, p in dirs.items()}
    # the model step's store holds its own ModelKit (the dataset came in as cached layers, untagged);
    # the dataset step's store never sees the model (its S3 layer may even stream straight to the registry)
    assert entries["exec17__model"] == {model_pinned.split("@")[0]}, entries
    assert model_pinned.split("@")[0] not in entries["exec17__dataset"], entries
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
    assert sorted(n.rsplit("-", 1)[0] for n in dirs if not n.startswith("promote-modelkit")) == [
        "pack-modelkit", "pack-modelkit", "pull-modelkit-layer"], sorted(dirs)  # one store per task run
    assert out["promoted"] == out["pinned"].split("@")[1]  # promoted from a store that never saw the ModelKit
    # the S3 object (read with the block's credentials) went through the registry to the puller's own store
    assert json.loads(Path(out["pulled"][0]).read_text()) == [1, 2, 3, 6]
    puller = next(p for n, p in dirs.items() if n.startswith("pull-modelkit-layer"))
    assert LocalStore(puller).has_blob(out["pinned"].split("@")[1])  # manifest cached only where it was needed
    # the unpushed ModelKit lives only in its packer's store: push_modelkit says so and how to fix it
    assert "not in this task's local store" in out["push_error"] and "push=True" in out["push_error"]
    assert "NotInLocalStoreError" in out["push_error"] or "cannot push" in out["push_error"]


class _Airflow:
    """scheduler + dag-processor + api-server on one sqlite DB with the LocalExecutor, stopped with their children."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        from services import ManagedProcess, free_port

        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._token: str | None = None
        self.env = {**env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    "AIRFLOW__CORE__PARALLELISM": "2", "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                    "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
                    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                    "AIRFLOW__API__BASE_URL": self.url, "AIRFLOW__API_AUTH__JWT_SECRET": "exec17-jwt-" + "x" * 24,
                    "AIRFLOW__API__SECRET_KEY": "exec17-secret", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}
        airflow = str(Path(os.sys.executable).with_name("airflow"))
        self.procs = [ManagedProcess(name, [airflow, *argv], home / f"{name}.log", self.env) for name, argv in (
            ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]),
            ("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"]))]

    def __enter__(self) -> "_Airflow":
        import subprocess

        (self.home / "dags").mkdir(parents=True, exist_ok=True)
        subprocess.run([self.procs[0].argv[0], "db", "migrate"], env=self.env, check=True, capture_output=True,
                       timeout=300)
        for proc in self.procs:
            proc.start()
        from services import http_status

        self.procs[0].wait_ready(lambda: http_status(f"{self.url}/api/v2/monitor/health") == 200, "health", 120)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for proc in self.procs:
            pgid = proc.pid
            proc.stop(timeout=20)
            if pgid:  # executor workers and task supervisors live in the process group
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        import requests

        if self._token is None:
            self._token = requests.get(f"{self.url}/auth/token", timeout=60).json()["access_token"]
        resp = requests.request(method, f"{self.url}/api/v2{path}", json=body, timeout=60,
                                headers={"Authorization": f"Bearer {self._token}"})
        resp.raise_for_status()
        return resp.json()

    def wait(self, what: str, probe, timeout: float):  # noqa: ANN001, ANN202
        import time

        deadline = time.monotonic() + timeout
        import requests

        while time.monotonic() < deadline:
            try:
                if value := probe():
                    return value
            except requests.RequestException:  # 404 before the DAG is parsed, a slow answer on a busy machine
                pass
            time.sleep(1)
        logs = "\n".join(f"--- {p.log_path.name}\n" + p.log_path.read_text()[-3000:] for p in self.procs)
        raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _errors(logs: dict[str, str]) -> dict[str, list[str]]:
    """The error lines of each task's log (JSON lines), for assertion messages."""
    return {task: [line[:1500] for line in text.splitlines() if '"level":"error"' in line] for task, text in logs.items()}


@pytest.mark.airflow
def test_airflow_local_executor_tasks_use_their_own_stores_xcom_keys_and_the_aws_connection(
        registry, orchestrator_only_s3: dict, tmp_path: Path) -> None:  # noqa: ANN001
    from urllib.parse import quote

    stores, dest = tmp_path / "stores", tmp_path / "dest"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    lineage_log = tmp_path / "openlineage.jsonl"
    env.update({
        "HOME": str(tmp_path / "user"),
        # the OpenLineage provider's listener writes every event it sends to this file
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(lineage_log),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "exec17",
        "AIRFLOW_CONN_KITOPS_LIVE": json.dumps({"conn_type": "kitops", "host": f"http://{registry.host}",
                                                 "extra": {"repository": "exec17/airflow"}}),
        "AIRFLOW_CONN_AWS_LIVE": json.dumps({"conn_type": "aws", "login": orchestrator_only_s3["key"],
                                              "password": orchestrator_only_s3["secret"],
                                              "extra": {"endpoint_url": orchestrator_only_s3["endpoint"],
                                                        "region_name": "us-east-1"}}),
    })
    dag = (TESTS / "executors" / "airflow_dag.py").read_text().replace(
        'SETTINGS = {"stores": "", "s3_uri": "", "dest": "", "ctx": ""}',
        f"SETTINGS = {{'stores': {str(stores)!r}, 's3_uri': {orchestrator_only_s3['uri']!r}, 'dest': {str(dest)!r}, "
        f"'ctx': {str(tmp_path / 'ctx')!r}}}")
    for name in ("push", "local"):  # empty pack contexts: the only layer comes from S3
        (tmp_path / "ctx" / name).mkdir(parents=True)
    with _Airflow(tmp_path / "airflow", env) as af:
        (af.home / "dags" / "kitops_live.py").write_text(dag)

        af.wait("the DAG to be parsed", lambda: af.api("GET", "/dags/kitops_live")["dag_id"] == "kitops_live", 180)
        run_id = quote(af.api("POST", "/dags/kitops_live/dagRuns", {"logical_date": None})["dag_run_id"], safe="")
        af.wait("the run to finish",
                lambda: af.api("GET", f"/dags/kitops_live/dagRuns/{run_id}")["state"] in ("success", "failed"), 240)
        tis = af.api("GET", f"/dags/kitops_live/dagRuns/{run_id}/taskInstances")["task_instances"]
        states = {ti["task_id"]: ti["state"] for ti in tis}
        logs = {p.parent.name.removeprefix("task_id="): p.read_text() for p in (af.home / "logs").rglob("attempt=1.log")}
        assert states == {"pack_push": "success", "unpack": "success", "pack_local": "success",
                          "pack_no_connection": "success", "promote": "success", "push_elsewhere": "failed"}, (
            states, _errors(logs))
        promoted = af.api("GET", f"/dags/kitops_live/dagRuns/{run_id}/taskInstances/promote/xcomEntries/digest")
        pinned = af.api("GET", f"/dags/kitops_live/dagRuns/{run_id}/taskInstances/pack_push/xcomEntries/pinned")

    # pack.output["pinned"] is an XCom of its own; unpack pulled it into its own store from the registry
    assert pinned["value"].startswith(f"{registry.host}/exec17/airflow@sha256:")
    assert promoted["value"] == pinned["value"].split("@")[1]  # staging moved from a store that never had it
    [train] = dest.rglob("train.json")  # the S3 object, read with the connection's credentials
    assert json.loads(train.read_text()) == [1, 2, 3, 6]
    assert set(_store_dirs(stores)) - {"promote"} == {"pack_push", "unpack", "pack_local", "pack_no_connection"}
    # the unpushed ModelKit is only in pack_local's store: push_elsewhere's (empty) store is named, with the fix
    error = "\n".join(_errors(logs)["push_elsewhere"])
    assert "not in this task's local store" in error and str(stores / "push_elsewhere") in error
    assert "push=True" in error

    # OpenLineage (get_openlineage_facets_on_complete): S3 input and pushed oci:// output of the pack,
    # the ModelKit (with its digest as version) as input of the unpack
    complete = {e["job"]["name"]: e for e in map(json.loads, lineage_log.read_text().splitlines())
                if e.get("eventType") == "COMPLETE"}
    digest = pinned["value"].split("@")[1]
    pack_event, unpack_event = complete["kitops_live.pack_push"], complete["kitops_live.unpack"]
    assert [(d["namespace"], d["name"]) for d in pack_event["inputs"]] == [("s3://exec-data", "churn/train.json")]
    [out] = pack_event["outputs"]
    assert (out["namespace"], out["name"]) == (f"oci://{registry.host}", "exec17/airflow")
    assert out["facets"]["version"]["datasetVersion"] == digest
    [inp] = unpack_event["inputs"]
    assert (inp["namespace"], inp["name"], inp["facets"]["version"]["datasetVersion"]) == (
        f"oci://{registry.host}", "exec17/airflow", digest)
