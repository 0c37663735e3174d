"""Airflow provider: provider discovery, connection parsing, assets, Kitfile-from-arguments (unit),
then the example DAGs end to end under ``dag.test()`` against the real registry and moto S3.

The end-to-end part is one test (``dag.test`` is expensive the first time in a process): the
retraining DAG packs dataset (streamed from S3) + model + code, pushes to the *authenticating*
registry, promotes to staging and emits the repository's asset event; the deploy DAG, started with
that event the way the scheduler would, pulls only the model layer of that digest. Then: an
unchanged model is not pushed again, a deferrable sensor waits for a new tag through the trigger,
a bad reference fails its task with a clear message, and the password never shows in the output
or in XCom.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import KitfileError, KitopsError
from kitops_flows.registry import RegistryCredentials
from kitops_flows.store import LocalStore

pytest.importorskip("airflow.sdk")

from airflow.sdk import Asset, Connection  # noqa: E402

from kitops_flows.kitfile_args import KitfileArguments  # noqa: E402
from kitops_flows_airflow.assets import modelkit_asset, repository_uri  # noqa: E402
from kitops_flows_airflow.get_provider_info import get_provider_info  # noqa: E402
from kitops_flows_airflow.hooks import KitOpsHook, RegistrySettings, settings_from_connection  # noqa: E402
from kitops_flows_airflow.operators import parent_references  # noqa: E402
from kitops_flows_airflow.triggers import ModelKitTrigger, probe_tag  # noqa: E402

pytestmark = pytest.mark.airflow
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "airflow"


# -- provider metadata ---------------------------------------------------------------------------------

def test_provider_info_matches_airflow_schema_and_is_discovered() -> None:
    import jsonschema
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    schema = json.loads((Path(sys.modules["airflow"].__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)

    pm = ProvidersManager()
    assert pm.providers["kitops-flows"].data["name"] == info["name"]
    assert pm.field_behaviours["kitops"]["relabeling"]["host"] == "Registry"
    runtime = ProvidersManagerTaskRuntime()
    assert runtime.hooks["kitops"].hook_class_name == "kitops_flows_airflow.hooks.KitOpsHook"
    assert "oci" in runtime.asset_uri_handlers and "oci" in runtime.asset_factories
    # every module the provider lists imports, and names real operator/sensor/trigger classes
    for section in ("operators", "sensors", "hooks", "triggers"):
        for module in info[section][0]["python-modules"]:
            assert importlib.util.find_spec(module) is not None, module


def test_oci_assets_are_one_per_repository() -> None:
    a = modelkit_asset("127.0.0.1:5000/team/churn:v3")
    b = modelkit_asset("127.0.0.1:5000/team/churn@sha256:" + "a" * 64)
    assert a == b and a.uri == "oci://127.0.0.1:5000/team/churn" and a.group == "model"
    # the provider's URI handler normalises hand-written URIs to the same asset
    assert Asset("oci://127.0.0.1:5000/team/churn:v3").uri == a.uri
    assert Asset("oci://REG.Example.com/team/churn/").uri == "oci://reg.example.com/team/churn"
    assert repository_uri("reg.example.com/a/b/c:latest") == "oci://reg.example.com/a/b/c"
    with pytest.raises(ValueError, match="layer selection belongs in the operator"):
        Asset("oci://reg.example.com/team/churn?layer=model")
    with pytest.raises(ValueError, match="no repository"):
        Asset("oci://reg.example.com/")


# -- connection ----------------------------------------------------------------------------------------

def test_registry_settings_from_kitops_and_docker_connections(tmp_path: Path) -> None:
    conn = Connection(conn_id="k", conn_type="kitops", host="http://127.0.0.1:5000/", login="ci",
                      password="s3cr3t-pw", extra=json.dumps({"repository": "/team/churn/", "kitops_home": str(tmp_path),
                                                               "immutable_tags": "true", "tls_verify": "false"}))
    s = settings_from_connection(conn)
    assert (s.registry, s.plain_http, s.tls_verify, s.immutable_tags, s.repository, s.kitops_home) == (
        "127.0.0.1:5000", True, False, True, "team/churn", str(tmp_path))
    assert s.credentials == RegistryCredentials("ci", "s3cr3t-pw")
    assert "s3cr3t-pw" not in repr(s)
    assert s.qualify(":v1") == "127.0.0.1:5000/team/churn:v1"
    assert s.qualify(None) == "127.0.0.1:5000/team/churn"
    assert s.qualify("other.example.com/x/y:z") == "other.example.com/x/y:z"
    client = s.client()
    assert client.plain_http and client.immutable_tags and client.store.home == tmp_path
    assert client.credentials == {"127.0.0.1:5000": RegistryCredentials("ci", "s3cr3t-pw")}

    docker = Connection(conn_id="d", conn_type="docker", host="https://Registry.example.com/v1/", port=None,
                        login="bot", password="tok", extra=json.dumps({"email": "a@b.c", "reauth": True}))
    d = settings_from_connection(docker)
    assert (d.registry, d.plain_http, d.repository) == ("Registry.example.com", False, None)
    with pytest.raises(KitopsError, match="defines no default repository"):
        d.qualify(":v1")

    port = settings_from_connection(Connection(conn_id="p", conn_type="kitops", host="reg.local", port=5443))
    assert port.registry == "reg.local:5443" and port.credentials is None
    with pytest.raises(KitopsError, match="plain_http='maybe' is not a boolean"):
        settings_from_connection(Connection(conn_id="b", conn_type="kitops", host="r",
                                                    extra=json.dumps({"plain_http": "maybe"})))


# -- Kitfile from arguments, parents -----------------------------------------------------------------

def test_kitfile_from_arguments(tmp_path: Path) -> None:
    (tmp_path / "job" / "model").mkdir(parents=True)
    (tmp_path / "job" / "model" / "m.json").write_text("{}")
    (tmp_path / "job" / "src").mkdir()
    (tmp_path / "job" / "README.md").write_text("hi")
    args = KitfileArguments(model=str(tmp_path / "job" / "model"), code=[str(tmp_path / "job" / "src")],
                            docs=[str(tmp_path / "job" / "README.md")],
                            datasets={"train": "s3://ml/churn/train.csv", "all": "s3://ml/churn/"},
                            package={"name": "churn", "authors": ["me"]})
    ctx, kf, sources = args.build(None)
    assert ctx == tmp_path / "job"
    assert (kf.model.name, kf.model.path) == ("churn", "model")
    assert [(d.name, d.path) for d in kf.datasets] == [("train", "data/train.csv"), ("all", "data/all")]
    assert [c.path for c in kf.code] == ["src"] and [d.path for d in kf.docs] == ["README.md"]
    assert sources == {"train": "s3://ml/churn/train.csv", "all": "s3://ml/churn/"}
    assert kf.package.authors == ["me"]
    kf.validate()

    with pytest.raises(KitfileError, match="outside the context directory"):
        KitfileArguments(model=str(tmp_path / "job" / "model")).build(tmp_path / "job" / "src")
    with pytest.raises(KitfileError, match="does not exist"):
        KitfileArguments(model="nope").build(tmp_path)
    with pytest.raises(KitfileError, match="unknown fields"):
        KitfileArguments(model="job", package={"nmae": "x"}).build(tmp_path)


def test_parent_references_from_xcom_descriptors() -> None:
    d = {"pinned": "reg.example.com/team/data@sha256:" + "b" * 64, "reference": "reg.example.com/team/data:v1"}
    assert parent_references(d) == [d["pinned"]]
    assert parent_references([d, "reg.example.com/x:y"]) == [d["pinned"], "reg.example.com/x:y"]
    assert parent_references(None) == [] and parent_references("") == []
    with pytest.raises(ValueError, match="not a ModelKit descriptor"):
        parent_references([{"digest": "sha256:x"}])


def test_push_operators_declare_the_repository_asset_when_known_at_parse_time() -> None:
    from airflow.sdk import AssetAlias

    from kitops_flows_airflow import KitPackOperator, KitPushOperator

    static = KitPushOperator(task_id="a", source="reg.example.com/team/churn:v1")
    # an alias: an event goes through it only when the pushed digest is new to the repository
    assert static.outlets == [AssetAlias("kitops-new-versions:oci://reg.example.com/team/churn", group="model")]
    # templated or connection-relative references cannot name an asset at parse time: nothing invented
    assert KitPushOperator(task_id="b", source="reg.example.com/team/churn:{{ ds }}").outlets == []
    assert KitPushOperator(task_id="c", source=":v1").outlets == []
    assert KitPushOperator(task_id="d", source="team/local:v1").outlets == []  # local-only: no registry
    alias = AssetAlias("churn-versions")
    assert KitPushOperator(task_id="e", source="r.example.com/x:{{ ds }}", outlets=[alias]).outlets == [alias]
    assert KitPushOperator(task_id="f", source="r.example.com/x:v1", emit_asset=False).outlets == []
    assert KitPackOperator(task_id="g", context_dir="/x", reference="r.example.com/x:v1").outlets == []  # no push
    assert "reference" in KitPackOperator.template_fields and "datasets" in KitPackOperator.template_fields


# -- real registry: hook test_connection, trigger --------------------------------------------------------

def _tiny_context(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "weights.bin").write_text(text)
    (root / "Kitfile").write_text("manifestVersion: 1.0.0\npackage:\n  name: tiny\nmodel:\n  name: tiny\n"
                                  "  path: weights.bin\n")
    return root


@pytest.mark.integration
def test_test_connection_really_authenticates(auth_registry, kitops_home, monkeypatch) -> None:  # noqa: ANN001
    def conn(password: str) -> str:
        return json.dumps({"conn_type": "kitops", "host": f"http://{auth_registry.host}", "login": auth_registry.username,
                           "password": password, "extra": {"repository": "team/never-pushed",
                                                           "kitops_home": str(kitops_home)}})

    monkeypatch.setenv("AIRFLOW_CONN_KITOPS_GOOD", conn(auth_registry.password))
    monkeypatch.setenv("AIRFLOW_CONN_KITOPS_BAD", conn(auth_registry.password + "-wrong"))
    ok, message = KitOpsHook("kitops_good").test_connection()
    assert ok, message
    assert f"as {auth_registry.username}" in message and "team/never-pushed has 0 tag(s)" in message
    ok, message = KitOpsHook("kitops_bad").test_connection()
    assert not ok
    assert auth_registry.host in message and auth_registry.password not in message


@pytest.mark.integration
def test_trigger_fires_when_the_tag_moves(registry, kitops_home, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("AIRFLOW_CONN_KITOPS_ANON", json.dumps({"conn_type": "kitops", "host": f"http://{registry.host}"}))
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    ref = f"{registry.host}/team/watched:candidate"
    assert probe_tag(kit, ref) is None  # not there yet
    first = kit.pack(_tiny_context(tmp_path / "a", "one"), reference=ref, push=True)
    seen = probe_tag(kit, ref)
    assert seen is not None and seen["digest"] == first.digest and seen["pinned"] == first.pinned
    assert probe_tag(kit, ref, previous_digest=first.digest) is None  # unchanged

    trigger = ModelKitTrigger(ref, previous_digest=first.digest, kitops_conn_id="kitops_anon",
                              kitops_home=str(kitops_home), poke_interval=0.05)
    classpath, kwargs = trigger.serialize()
    assert classpath == "kitops_flows_airflow.triggers.ModelKitTrigger"
    trigger = ModelKitTrigger(**kwargs)
    second: list[str] = []

    def move_tag() -> None:
        time.sleep(0.3)
        second.append(kit.pack(_tiny_context(tmp_path / "b", "two"), reference=ref, push=True).digest)

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload

    mover = threading.Thread(target=move_tag)
    mover.start()
    payload = asyncio.run(asyncio.wait_for(first_event(), timeout=30))
    mover.join()
    assert payload["status"] == "success", payload
    assert payload["modelkit"]["digest"] == second[0] != first.digest
    assert payload["modelkit"]["previous_digest"] == first.digest


# -- the example DAGs, end to end ----------------------------------------------------------------------

def _load_dag(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.dag


def _register(*dags: Any) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(collect_dags=False)
    for dag in dags:
        bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:  # switched on, as a user would: paused DAGs are not queued by assets
        session.execute(update(DagModel).where(DagModel.dag_id.in_([d.dag_id for d in dags])).values(is_paused=False))


def _xcom(dr: Any, task_id: str) -> Any:
    return next(ti for ti in dr.get_task_instances() if ti.task_id == task_id).xcom_pull(task_ids=task_id)


def _states(dr: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _asset_events(uri: str) -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        ).all()
        session.expunge_all()
        return list(events)


def _run_with_asset_event(dag: Any, event_id: int) -> Any:
    """``dag.test()`` of a run that consumed an asset event, as the scheduler's asset-triggered runs do."""
    import airflow.models.dagrun as dagrun_module
    from airflow.models.asset import AssetEvent

    original = dagrun_module.get_or_create_dagrun

    def with_event(**kwargs: Any) -> Any:
        session = kwargs["session"]
        dr = original(**kwargs)
        dr.consumed_asset_events.append(session.get(AssetEvent, event_id))
        session.commit()
        return dr

    dagrun_module.get_or_create_dagrun = with_event
    try:
        return dag.test()
    finally:
        dagrun_module.get_or_create_dagrun = original


@pytest.mark.integration
def test_example_dags_end_to_end(airflow_db, auth_registry, s3, kitops_home, tmp_path: Path,  # noqa: ANN001
                                 monkeypatch, capfd, caplog) -> None:
    import boto3
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.xcom import XComModel
    from airflow.sdk import DAG
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from kitops_flows.lineage import read_provenance
    from kitops_flows_airflow import KitPackOperator, KitPullOperator, KitUnpackOperator, ModelKitSensor

    # appended: examples/dagster (and prefect, airflow) must not shadow the installed packages for later tests
    monkeypatch.syspath_prepend(str(EXAMPLES))
    if str(EXAMPLES.parent) not in sys.path:
        sys.path.append(str(EXAMPLES.parent))
    from churn.model import make_dataset

    caplog.set_level(logging.INFO)
    host, password = auth_registry.host, auth_registry.password
    repo = f"{host}/team/churn"
    dataset = make_dataset(tmp_path / "train.csv", rows=400)
    boto3.client("s3").create_bucket(Bucket="ml-data")
    boto3.client("s3").upload_file(str(dataset), "ml-data", "churn/train.csv")
    serve_dir = tmp_path / "serve"
    serve_dir.mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_KITOPS_DEFAULT", json.dumps({
        "conn_type": "kitops", "host": f"http://{host}", "login": auth_registry.username, "password": password,
        "extra": {"kitops_home": str(kitops_home), "repository": "team/churn"}}))
    monkeypatch.setenv("CHURN_MODELKIT_REPO", repo)
    monkeypatch.setenv("CHURN_DATASET_URI", "s3://ml-data/churn/train.csv")
    monkeypatch.setenv("CHURN_WORK_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("CHURN_SERVE_DIR", str(serve_dir))
    monkeypatch.delitem(sys.modules, "churn_settings", raising=False)

    retrain = _load_dag(EXAMPLES / "churn_retrain.py")
    deploy = _load_dag(EXAMPLES / "churn_deploy.py")
    _register(retrain, deploy)

    # 1. retrain: fetch from S3, train, pack, evaluate, push (asset event), promote to staging
    dr = retrain.test()
    assert dr.state == "success", _states(dr)
    packed = _xcom(dr, "pack")
    pushed = _xcom(dr, "push")
    assert pushed["digest"] == packed["digest"] and pushed["pinned"] == f"{repo}@{packed['digest']}"
    assert {layer["kind"] for layer in packed["layers"]} == {"model", "dataset", "code", "docs"}
    by_kind = {layer["kind"]: layer for layer in packed["layers"]}
    assert (by_kind["dataset"]["name"], by_kind["dataset"]["path"]) == ("train", "data/train.csv")
    assert (by_kind["model"]["path"], by_kind["code"]["path"], by_kind["docs"]["path"]) == ("model", "src", "README.md")
    assert _xcom(dr, "evaluate")["improved"] is True
    promoted = _xcom(dr, "promote")
    assert (promoted["stage"], promoted["digest"]) == ("staging", packed["digest"])

    # the registry has it: the manifest under its digest, the run tag and the staging tag
    kit = KitOpsClient(store=LocalStore(tmp_path / "check-home"), plain_http=True,
                       credentials=RegistryCredentials(auth_registry.username, password))
    rc = kit.registry_client(host)
    assert rc.manifest_digest("team/churn", "staging") == packed["digest"]
    assert rc.manifest_digest("team/churn", packed["tags"][0]) == packed["digest"]
    remote = kit.inspect(pushed["pinned"], remote=True)
    assert remote["digest"] == packed["digest"]
    assert [l["digest"] for l in remote["manifest"]["layers"]] == [l["digest"] for l in packed["layers"]]
    # the dataset layer holds the S3 object's bytes, streamed (no local copy was packed)
    data_dir = tmp_path / "data-check"
    kit.unpack(pushed["pinned"], data_dir, filters=["datasets:train"])
    assert (data_dir / "data" / "train.csv").read_bytes() == dataset.read_bytes()
    # provenance names the Airflow run
    statement = json.dumps(read_provenance(kit, pushed["pinned"]))
    assert all(s in statement for s in ('"airflow"', '"churn_retrain"', '"pack"', dr.run_id, "s3://ml-data/churn/train.csv"))

    # the asset event carries digest and tag, and queued the deploy DAG
    events = _asset_events(f"oci://{host}/team/churn")
    assert len(events) == 1
    assert events[0].extra["digest"] == packed["digest"] and events[0].extra["tag"] == packed["tags"][0]
    assert events[0].extra["pinned"] == pushed["pinned"]
    with create_session() as session:
        queued = session.scalars(select(AssetDagRunQueue.target_dag_id)).all()
    assert "churn_deploy" in queued

    # 2. deploy, as the asset-triggered run: only the model layer of the event's digest is fetched
    dr_deploy = _run_with_asset_event(deploy, events[0].id)
    assert dr_deploy.state == "success", _states(dr_deploy)
    unpacked = _xcom(dr_deploy, "pull_model")
    assert unpacked["digest"] == packed["digest"] and [l["kind"] for l in unpacked["layers"]] == ["model"]
    assert _xcom(dr_deploy, "deploy")["digest"] == packed["digest"]
    served = serve_dir / "current"
    assert json.loads((served / "model.json").read_text())["features"]
    assert (served / "DEPLOYED_DIGEST").read_text().strip() == packed["digest"]
    serving_store = LocalStore(serve_dir / ".kitops")
    assert serving_store.has_blob(by_kind["model"]["digest"], by_kind["model"]["size"])
    for kind in ("dataset", "code", "docs"):
        assert not serving_store.has_blob(by_kind[kind]["digest"], by_kind[kind]["size"]), kind

    # 3. same data next day: the model is no better, so nothing is pushed and no event is emitted
    dr2 = retrain.test(logical_date=dr.logical_date + timedelta(days=1))
    states = _states(dr2)
    assert dr2.state == "success" and states["push"] == "skipped" and states["promote"] == "skipped", states
    assert _xcom(dr2, "evaluate")["improved"] is False
    assert len(_asset_events(f"oci://{host}/team/churn")) == 1

    # 4. a deferrable sensor waiting for a new tag (pushed meanwhile), a bad reference, and a ModelKit
    #    packed with push=True whose parent comes from XCom, pulled into another store
    child_ctx = _tiny_context(tmp_path / "child", "fine-tuned")
    with DAG("kitops_checks", schedule=None) as checks:
        ModelKitSensor(task_id="wait_canary", reference=":canary", deferrable=True, poke_interval=0.2, timeout=60)
        KitUnpackOperator(task_id="bad_ref", reference=f"{host}/team/no-such-model:v1", dest=str(tmp_path / "x"))
        child = KitPackOperator(task_id="pack_child", context_dir=str(child_ctx), reference=f"{host}/team/tuned:v1",
                                parents=[pushed], push=True)
        child >> KitPullOperator(task_id="pull_child", reference="{{ ti.xcom_pull(task_ids='pack_child')['pinned'] }}",
                                 kitops_home=str(tmp_path / "other-home"))
    assert [o.name for o in child.outlets] == [f"kitops-new-versions:oci://{host}/team/tuned"]  # static reference
    _register(checks)

    def push_canary() -> None:
        time.sleep(1.5)
        kit.pull(pushed["pinned"])
        kit.push(pushed["pinned"], f"{repo}:canary")

    mover = threading.Thread(target=push_canary)
    mover.start()
    dr3 = checks.test()
    mover.join()
    states = _states(dr3)
    assert states["wait_canary"] == "success" and states["bad_ref"] == "failed", states
    assert _xcom(dr3, "wait_canary")["digest"] == packed["digest"]
    tuned = _xcom(dr3, "pack_child")
    assert _xcom(dr3, "pull_child")["digest"] == tuned["digest"] and states["pull_child"] == "success"
    assert LocalStore(tmp_path / "other-home").has_blob(tuned["layers"][0]["digest"], tuned["layers"][0]["size"])
    assert tuned["annotations"]["ml.kitops-flows.parents"] == pushed["pinned"]  # the XCom descriptor's pin
    child_events = _asset_events(f"oci://{host}/team/tuned")
    assert [e.extra["digest"] for e in child_events] == [tuned["digest"]]

    # what reached the logging system (Airflow routes stdlib records into the task log) and the terminal
    out = capfd.readouterr()
    logged = caplog.text
    text = logged + out.out + out.err
    assert f"manifest team/no-such-model:v1 not found in registry {host}" in text  # the failed task says why
    assert f"Pushed {repo}@{packed['digest']}" in logged  # the core's log lines reach the task log
    assert password not in text

    # no credential anywhere in XCom
    with create_session() as session:
        values = session.scalars(select(XComModel.value)).all()
    assert values and all(password not in json.dumps(v, default=str) for v in values)


def test_connection_password_and_its_basic_auth_form_are_masked() -> None:
    import secrets

    from airflow.sdk.log import redact

    from kitops_flows_airflow.hooks import mask_credentials

    password = "mask-" + secrets.token_hex(6)
    creds = RegistryCredentials("ciuser", password)
    mask_credentials(RegistrySettings(registry="reg.example.com", credentials=creds))
    line = f"auth {creds.basic_auth_value()} with {password}"
    masked = str(redact(line))
    assert password not in masked and creds.basic_auth_value() not in masked
    assert masked.count("***") == 2
