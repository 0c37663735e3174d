"""The Prefect plugin against a real Prefect server (conftest's ``prefect_server``: one per session),
the real docker-registry and moto S3.

Unit tests first (no server), then the integration tests sharing the harness: ModelKits in the
registry, artifacts, events and logs read back through the Prefect client, cache hits, lineage,
selective pulls, promotions, the example flows, and that no secret leaks anywhere.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prefect")

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter, LogFilterFlowRunId
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.results import ResultRecord
from prefect.settings import get_current_settings
from prefect.states import Failed
from pydantic import SecretStr

from kitops_flows.api import KitOpsClient, LayerSummary, LocalStore, ModelKitDescriptor
from kitops_flows.errors import KitopsError, NotFoundError, RegistryError, TagExistsError
from kitops_flows.lineage import read_provenance
from kitops_flows_prefect import (
    PROMOTED,
    PUSHED,
    KitOpsRegistry,
    ModelKitSpec,
    artifact_key,
    modelkit_flow,
    pack_modelkit,
    prefect_run_context,
    promote_modelkit,
    pull_modelkit_layer,
    push_modelkit,
    push_summary,
    retry_transient,
)
from kitops_flows_prefect.caching import context_digest, modelkit_inputs_key

pytestmark = pytest.mark.prefect

KITFILE = """\
manifestVersion: 1.0.0
package:
  name: tiny
  version: 1.0.0
model:
  name: tiny-model
  path: model
datasets:
  - name: train
    path: data/train.csv
docs:
  - path: README.md
"""


def make_context(root: Path, weights: str = "[0.1, 0.2]", rows: str = "a,b\n1,2\n") -> Path:
    """A small pack context: Kitfile, model/, data/train.csv, README.md."""
    (root / "model").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "Kitfile").write_text(KITFILE)
    (root / "model" / "model.json").write_text(json.dumps({"weights": json.loads(weights)}))
    (root / "data" / "train.csv").write_text(rows)
    (root / "README.md").write_text("# tiny\n")
    return root


# -- unit tests (no Prefect server) --------------------------------------------------------------------------------


def test_block_normalises_registry_and_hides_password() -> None:
    block = KitOpsRegistry(registry="http://127.0.0.1:5000/v2/", username="ci", password=SecretStr("hunter2-pw"),
                           repository="/team/churn/")
    assert (block.registry, block.plain_http, block.repository) == ("127.0.0.1:5000", True, "team/churn")
    assert "hunter2-pw" not in repr(block) and "hunter2-pw" not in str(block.model_dump())
    assert block.qualify(":v3") == "127.0.0.1:5000/team/churn:v3"
    assert block.qualify("@sha256:" + "a" * 64) == "127.0.0.1:5000/team/churn@sha256:" + "a" * 64
    assert block.qualify(None) == "127.0.0.1:5000/team/churn"
    assert block.qualify("other.example.com/x/y:1") == "other.example.com/x/y:1"
    client = block.get_client()
    assert client.plain_http and "hunter2-pw" not in repr(client)
    assert client.credentials["127.0.0.1:5000"].password == "hunter2-pw"  # type: ignore[index]
    # https keeps TLS; no repository -> a clear error naming what to set
    assert KitOpsRegistry(registry="https://reg.example.com").plain_http is False
    with pytest.raises(KitopsError, match="no default repository"):
        KitOpsRegistry(registry="reg.example.com").qualify(":v1")
    with pytest.raises(ValueError, match="use a host"):
        KitOpsRegistry(registry="ftp://reg.example.com")


def test_artifact_keys_are_valid_stable_and_bounded() -> None:
    import re

    key = artifact_key("127.0.0.1:5000/Team/churn_model")
    assert key == "kitops-127-0-0-1-5000-team-churn-model"
    assert artifact_key("127.0.0.1:5000/Team/churn_model") == key
    long_a = artifact_key("reg.example.com/" + "a/" * 80 + "model")
    long_b = artifact_key("reg.example.com/" + "b/" * 80 + "model")
    for k in (key, long_a, long_b, artifact_key("r/x", "transfer")):
        assert re.fullmatch(r"[a-z0-9-]+", k) and len(k) <= 100
    assert long_a != long_b


def test_context_digest_follows_what_the_pack_reads_not_paths_or_times(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "home")
    a = make_context(tmp_path / "a")
    b = make_context(tmp_path / "elsewhere" / "b")
    os.utime(b / "model" / "model.json", (0, 0))
    assert context_digest(a, None, store) == context_digest(b, None, store)
    (b / "model" / "model.json").write_text('{"weights": [0.1, 0.3]}')
    assert context_digest(a, None, store) != context_digest(b, None, store)
    c = make_context(tmp_path / "c")
    os.chmod(c / "README.md", 0o755)
    assert context_digest(a, None, store) != context_digest(c, None, store)  # the mode is in the tar header
    d = make_context(tmp_path / "d")
    (d / "model" / "empty").mkdir()
    assert context_digest(a, None, store) != context_digest(d, None, store)  # an entry of the model layer
    e = make_context(tmp_path / "e")
    (e / "notes.txt").write_text("in no layer")  # the Kitfile packs no such file: same ModelKit, same key
    assert context_digest(a, None, store) == context_digest(e, None, store)


def test_cache_key_covers_reference_options_and_registry_not_password(tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx")
    block = KitOpsRegistry(registry="r.example.com", repository="t/m", username="u", password=SecretStr("p1"))
    base = {"context_dir": ctx, "reference": ":v1", "registry": block, "push": True, "compression": "none"}
    key = modelkit_inputs_key(base)
    assert key is not None and len(key) == 64
    moved = make_context(tmp_path / "moved")
    assert modelkit_inputs_key({**base, "context_dir": str(moved)}) == key
    other_pw = block.model_copy(update={"password": SecretStr("p2")})
    assert modelkit_inputs_key({**base, "registry": other_pw}) == key
    assert modelkit_inputs_key({**base, "reference": ":v2"}) != key
    assert modelkit_inputs_key({**base, "compression": "gzip"}) != key
    assert modelkit_inputs_key({**base, "context_dir": tmp_path / "missing"}) is None


def test_cache_key_of_a_block_name_follows_the_saved_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name is keyed on what it loads (stand-in loader here; the integration test below re-saves for real)."""
    import kitops_flows_prefect.caching as caching

    ctx = make_context(tmp_path / "ctx")
    block = KitOpsRegistry(registry="r.example.com", repository="t/m", username="u", password=SecretStr("p1"))
    saved: dict[str, KitOpsRegistry] = {"prod": block}
    loads: list[str] = []

    def load(name: str) -> KitOpsRegistry:
        loads.append(name)
        if name not in saved:
            raise ValueError(f"Unable to find block document named {name} for block type kitops-registry")
        return saved[name]

    monkeypatch.setattr(caching, "resolve_registry", load)
    base = {"context_dir": ctx, "reference": ":v1", "registry": block, "push": True}
    key = modelkit_inputs_key(base)
    assert modelkit_inputs_key({**base, "registry": "prod"}) == key and loads == ["prod"]
    saved["prod"] = block.model_copy(update={"repository": "t/other"})  # re-saved: another repository
    moved = modelkit_inputs_key({**base, "registry": "prod"})
    assert moved != key
    saved["prod"] = block.model_copy(update={"registry": "r2.example.com", "password": SecretStr("p2")})
    assert modelkit_inputs_key({**base, "registry": "prod"}) not in (key, moved)
    # a block that cannot be loaded: keyed on its name (the task then fails with the loader's message)
    assert modelkit_inputs_key({**base, "registry": "missing"}) not in (key, moved)
    assert modelkit_inputs_key({**base, "registry": "missing"}) == modelkit_inputs_key({**base, "registry": "missing"})


def test_retry_condition_retries_transient_failures_only() -> None:
    assert retry_transient(None, None, Failed(data=RegistryError("503 from registry")))
    assert retry_transient(None, None, Failed(data=ConnectionResetError()))
    assert not retry_transient(None, None, Failed(data=TagExistsError("tag v1 is immutable")))
    assert not retry_transient(None, None, Failed(data=NotFoundError("no such tag")))
    assert not retry_transient(None, None, Failed(data=TypeError("a bug")))


def test_push_summary_lists_identity_layers_and_lineage() -> None:
    digest = "sha256:" + "1" * 64
    layers = (
        LayerSummary("model", "model", "tiny-model", "application/vnd.kitops.modelkit.model.v1.tar",
                     "sha256:" + "2" * 64, "sha256:" + "2" * 64, 2048),
        LayerSummary("dataset", "data/a|b.csv", "train", "application/vnd.kitops.modelkit.dataset.v1.tar",
                     "sha256:" + "3" * 64, "sha256:" + "3" * 64, 1234567),
    )
    desc = ModelKitDescriptor("127.0.0.1:5000", "team/tiny", digest, ("v1",), 1237000, "sha256:" + "4" * 64,
                              layers, name="tiny", version="1.0.0")
    md = push_summary(desc, "graph LR\n  n0[\"x\"]\n")
    assert f"`127.0.0.1:5000/team/tiny@{digest}`" in md and "`127.0.0.1:5000/team/tiny:v1`" in md
    assert "| dataset | data/a\\|b.csv | train |" in md and "1,234,567 |" in md and "2,048 |" in md
    assert "```mermaid\ngraph LR\n  n0[\"x\"]\n```" in md
    assert "Lineage unavailable: boom" in push_summary(desc, None, "Lineage unavailable: boom")


@pytest.mark.parametrize("module", ["artifacts", "blocks", "events", "tasks"])
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"kitops_flows_prefect.{module}"))
    assert result.attempted and not result.failed


def test_modelkit_asset_is_the_repository() -> None:
    from kitops_flows_prefect import modelkit_asset, resource_id

    asset = modelkit_asset("127.0.0.1:5000/team/churn@sha256:" + "a" * 64, description="churn")
    assert asset.key == resource_id("127.0.0.1:5000/team/churn") == "oci://127.0.0.1:5000/team/churn"
    assert asset.properties is not None and asset.properties.name == "team/churn"


def test_short_references_need_a_block(tmp_path: Path) -> None:
    with pytest.raises(KitopsError, match="needs a default registry and repository"):
        pull_modelkit_layer.fn(":production", tmp_path)
    with pytest.raises(KitopsError, match="needs a default registry and repository"):
        promote_modelkit.fn("@sha256:" + "a" * 64, "staging")


def test_run_context_outside_a_run_is_empty() -> None:
    run = prefect_run_context()
    assert run.orchestrator == "prefect" and not run.run_id and not run.extra


# -- integration: the session's Prefect server (conftest.py) ------------------------------------------------------------


def artifacts(key: str) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def wait_for_events(name: str, resource_id: str, count: int = 1, timeout: float = 30.0) -> list[Any]:
    """Events of ``name`` on ``resource_id``, polled until ``count`` arrived (the server persists them in batches)."""
    filt = EventFilter(event=EventNameFilter(name=[name]), resource=EventResourceFilter(id=[resource_id]))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(filter=filt, limit=50).events  # 3.7.7's default limit (100) is refused
            if len(events) >= count or time.monotonic() > deadline:
                return events
            time.sleep(0.5)


def run_logs(flow_run_id: Any) -> list[str]:
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # blocks until queued logs are sent
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def manifests(home: Path) -> set[str]:
    return {e.digest for e in KitOpsClient(store=LocalStore(home)).list()}


@flow
def pack_flow(context: str, block: KitOpsRegistry | str, reference: str, push: bool = True,
              progress_artifact: bool | None = None) -> tuple[str, ModelKitDescriptor]:
    state = pack_modelkit(context, reference, registry=block, push=push, progress_artifact=progress_artifact,
                          return_state=True)
    return state.name, state.result()


def test_pack_push_artifact_event_lineage_and_cache(prefect_server: None, registry: Any, kitops_home: Path,
                                                    tmp_path: Path) -> None:
    block = KitOpsRegistry(registry=registry.host, plain_http=True, repository="prefect/cache",
                           kitops_home=str(kitops_home))
    ctx = make_context(tmp_path / "run1")

    state = pack_flow(str(ctx), block, ":v1", progress_artifact=True, return_state=True)
    name, mk = state.result()
    flow_run_id = state.state_details.flow_run_id
    assert name == "Completed"
    assert mk.pinned == f"{registry.host}/prefect/cache@{mk.digest}" and mk.tags == ("v1",)
    # in the registry, as pushed
    remote = KitOpsClient(plain_http=True, store=LocalStore(tmp_path / "fresh-home")).resolve(
        f"{registry.host}/prefect/cache:v1")
    assert remote.digest == mk.digest and {l.kind for l in remote.layers} == {"model", "dataset", "docs"}
    # results are plain, picklable data
    assert pickle.loads(pickle.dumps(mk)) == mk and json.dumps(mk.to_dict())
    # lineage: this flow run and task run are in the provenance, pushed with the ModelKit
    assert "ml.kitops-flows.run-id" not in mk.annotations  # run identity lives in the provenance record only
    statement = read_provenance(block.get_client(), mk.pinned)
    run = statement["predicate"]["buildDefinition"]["externalParameters"]["run"]
    assert run["orchestrator"] == "prefect" and run["pipeline"] == "pack-flow" and run["runId"] == str(flow_run_id)
    assert run["task"].startswith("pack-modelkit") and run["extra"]["task_run_id"] and run["attempt"] == 1

    # the markdown artifact, keyed per repository
    key = artifact_key(f"{registry.host}/prefect/cache")
    [art] = artifacts(key)
    assert art.type == "markdown" and art.flow_run_id == flow_run_id
    assert mk.digest in art.data and f"`{mk.reference}`" in art.data
    for layer in mk.layers:
        assert f"`{layer.digest}` | {layer.size:,} |" in art.data
    assert "```mermaid\ngraph LR" in art.data and mk.digest.split(":")[1][:12] in art.data
    # the progress artifact finished at 100 %
    [progress] = artifacts(artifact_key(f"{registry.host}/prefect/cache", "transfer"))
    assert progress.type == "progress" and progress.data == pytest.approx(100.0)

    # the event, read back from the server
    [event] = wait_for_events(PUSHED, f"oci://{registry.host}/prefect/cache")
    assert event.resource["kitops.digest"] == mk.digest and event.resource["kitops.tag"] == "v1"
    assert event.resource["kitops.pinned"] == mk.pinned
    assert event.payload["layers"][0]["digest"] == mk.layers[0].digest
    assert {r.role for r in event.related} >= {"flow-run", "task-run"}

    # the core's log lines reached the task run's logs
    assert f"Pushed {registry.host}/prefect/cache@{mk.digest} as v1" in run_logs(flow_run_id)

    # same files in another directory: a cache hit, nothing packed, no new push artifact or event
    before = manifests(kitops_home)
    name2, mk2 = pack_flow(str(make_context(tmp_path / "run2")), block, ":v1")
    assert name2 == "Cached" and mk2 == mk
    assert manifests(kitops_home) == before
    # the cached result lives in this session's PREFECT_HOME (set in conftest), not in ~/.prefect/storage
    storage = get_current_settings().results.local_storage_path
    assert storage.is_relative_to(os.environ["PREFECT_HOME"])
    stored = [ResultRecord.deserialize(path.read_bytes()).result for path in storage.iterdir() if path.is_file()]
    assert mk in stored
    assert len(artifacts(key)) == 1

    # a changed file: a new pack, a new digest, a second artifact version and event
    name3, mk3 = pack_flow(str(make_context(tmp_path / "run3", weights="[0.5, 0.6]")), block, ":v1")
    assert name3 == "Completed" and mk3.digest != mk.digest
    assert manifests(kitops_home) - before
    assert len(artifacts(key)) == 2
    assert len(wait_for_events(PUSHED, f"oci://{registry.host}/prefect/cache", count=2)) == 2


def test_saved_block_on_auth_registry_leaks_no_secret(prefect_server: None, auth_registry: Any, kitops_home: Path,
                                                      tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = auth_registry.password
    KitOpsRegistry(registry=auth_registry.host, plain_http=True, username=auth_registry.username,
                   password=SecretStr(secret), repository="prefect/secure",
                   kitops_home=str(kitops_home)).save("secure-registry", overwrite=True)
    caplog.set_level("DEBUG")

    @flow
    def pack_then_push(context: str) -> ModelKitDescriptor:
        local = pack_modelkit(context, "prefect/secure:v1", registry="secure-registry")
        return push_modelkit(local, registry="secure-registry")

    state = pack_then_push(str(make_context(tmp_path / "ctx")), return_state=True)
    mk = state.result()
    assert mk.registry == auth_registry.host and mk.reference == f"{auth_registry.host}/prefect/secure:v1"
    # it really is in the registry (and the registry really wants the password)
    with pytest.raises(KitopsError):
        KitOpsClient(plain_http=True, store=LocalStore(tmp_path / "anon")).resolve(mk.pinned)
    creds_client = KitOpsRegistry.load("secure-registry").get_client()
    assert creds_client.resolve(mk.pinned).digest == mk.digest

    logs = run_logs(state.state_details.flow_run_id)
    assert logs and not [line for line in logs if secret in line]
    assert secret not in caplog.text
    [art] = artifacts(artifact_key(f"{auth_registry.host}/prefect/secure"))
    assert secret not in art.data
    assert secret not in json.dumps(mk.to_dict()) and secret.encode() not in pickle.dumps(mk)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        doc = client.read_block_document_by_name("secure-registry", "kitops-registry", include_secrets=False)
    assert secret not in run.model_dump_json()
    assert secret not in json.dumps(doc.data, default=str)


def test_resaving_a_block_elsewhere_is_a_cache_miss(prefect_server: None, registry: Any, kitops_home: Path,
                                                  tmp_path: Path) -> None:
    """The same pack with the same block name, after the block was re-saved for another repository: a new push."""
    def save(repository: str) -> None:
        KitOpsRegistry(registry=registry.host, plain_http=True, repository=repository,
                       kitops_home=str(kitops_home)).save("moving-registry", overwrite=True)

    remote = KitOpsClient(plain_http=True, store=LocalStore(tmp_path / "fresh-home"))
    save("prefect/move-a")
    name1, mk1 = pack_flow(str(make_context(tmp_path / "ctx")), "moving-registry", ":v1")
    assert name1 == "Completed" and mk1.reference == f"{registry.host}/prefect/move-a:v1"
    with pytest.raises(NotFoundError):
        remote.resolve(f"{registry.host}/prefect/move-b:v1")

    save("prefect/move-b")
    name2, mk2 = pack_flow(str(make_context(tmp_path / "ctx")), "moving-registry", ":v1")
    assert name2 == "Completed" and mk2.reference == f"{registry.host}/prefect/move-b:v1"
    assert remote.resolve(f"{registry.host}/prefect/move-b:v1").digest == mk2.digest
    assert remote.resolve(f"{registry.host}/prefect/move-a:v1").digest == mk1.digest
    # and unchanged again: the cache hits for the block as it is saved now
    assert pack_flow(str(make_context(tmp_path / "ctx")), "moving-registry", ":v1") == ("Cached", mk2)


def test_pull_only_the_model_layer_and_promote(prefect_server: None, registry: Any, kitops_home: Path,
                                              tmp_path: Path) -> None:
    producer = KitOpsRegistry(registry=registry.host, plain_http=True, repository="prefect/pull",
                              kitops_home=str(kitops_home))
    _, mk = pack_flow(str(make_context(tmp_path / "ctx", rows="x\n" * 1000)), producer, ":v1")
    consumer = producer.model_copy(update={"kitops_home": str(tmp_path / "consumer-home")})

    @flow
    def consume(pinned: str, dest: str) -> list[str]:
        pulled = pull_modelkit_layer(pinned, dest, layers=["model"], registry=consumer)
        promote_modelkit(pinned, "production", registry=consumer)
        return [str(p) for p in pulled.paths]

    dest = tmp_path / "serve"
    paths = consume(mk.pinned, str(dest))
    assert paths == [str(dest / "model")]
    assert json.loads((dest / "model" / "model.json").read_text()) == {"weights": [0.1, 0.2]}
    assert not (dest / "data").exists() and not (dest / "README.md").exists()
    store = LocalStore(tmp_path / "consumer-home")
    assert store.has_blob(mk.layer("model").digest)
    assert not store.has_blob(mk.layer("dataset").digest)  # the dataset layer was never downloaded
    # a re-run into the same directory works (existing="overwrite")
    consume(mk.pinned, str(dest))

    client = consumer.get_client()
    assert client.resolve(f"{registry.host}/prefect/pull:production").digest == mk.digest
    [event, *_] = wait_for_events(PROMOTED, f"oci://{registry.host}/prefect/pull", count=2)
    assert event.resource["kitops.stage"] == "production" and event.resource["kitops.digest"] == mk.digest


def test_s3_sources_cache_on_etag_through_modelkit_flow(prefect_server: None, registry: Any, s3: Any,
                                                        kitops_home: Path, tmp_path: Path) -> None:
    s3c = s3.client()
    s3c.create_bucket(Bucket="prefect-data")
    s3c.put_object(Bucket="prefect-data", Key="tiny/train.csv", Body=b"a,b\n1,2\n3,4\n")
    block = KitOpsRegistry(registry=registry.host, plain_http=True, repository="prefect/s3",
                           kitops_home=str(kitops_home))
    ctx = make_context(tmp_path / "ctx")
    (ctx / "data" / "train.csv").unlink()  # the dataset comes from S3 only

    @modelkit_flow(reference=":nightly", registry=block)
    def tiny_model(weights: str = "[0.1, 0.2]") -> ModelKitSpec:
        (ctx / "model" / "model.json").write_text(json.dumps({"weights": json.loads(weights)}))
        return ModelKitSpec(ctx, sources={"train": "s3://prefect-data/tiny/train.csv"})

    first = tiny_model()
    assert first.tags == ("nightly",) and first.repository == "prefect/s3"
    statement = read_provenance(block.get_client(), first.pinned)
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert any(d.get("uri") == "s3://prefect-data/tiny/train.csv" or d.get("name") == "s3://prefect-data/tiny/train.csv"
               for d in deps)

    before = manifests(kitops_home)
    assert tiny_model() == first  # same model, same object version: cached
    assert manifests(kitops_home) == before

    s3c.put_object(Bucket="prefect-data", Key="tiny/train.csv", Body=b"a,b\n1,2\n3,5\n")  # new ETag
    changed = tiny_model()
    assert changed.digest != first.digest
    assert changed.layer("dataset").digest != first.layer("dataset").digest

    def not_a_path() -> int:
        return 3

    with pytest.raises(KitopsError, match="returned int"):
        modelkit_flow(not_a_path, registry=block)()


def test_example_retrain_then_serve(prefect_server: None, registry: Any, s3: Any, kitops_home: Path,
                                    tmp_path: Path) -> None:
    from examples.churn import model as churn
    from examples.prefect.churn_retrain import churn_retrain
    from examples.prefect.churn_serve import churn_serve

    data = churn.make_dataset(tmp_path / "train.csv", rows=400)
    s3.client().create_bucket(Bucket="ml-data")
    s3.client().upload_file(str(data), "ml-data", "churn/train.csv")
    block = KitOpsRegistry(registry=registry.host, plain_http=True, repository="examples/churn",
                           kitops_home=str(kitops_home))

    result = churn_retrain(dataset_uri="s3://ml-data/churn/train.csv", registry=block, min_accuracy=0.5,
                           work_dir=str(tmp_path / "work"))
    assert result["accuracy"] > 0.5 and result["stages"] == ["staging", "production"]
    client = block.get_client()
    digest = result["pinned"].split("@")[1]
    for tag in ("candidate", "staging", "production"):
        assert client.resolve(f"{registry.host}/examples/churn:{tag}").digest == digest

    serve_dir = tmp_path / "serve"
    consumer = block.model_copy(update={"kitops_home": str(tmp_path / "serve-home")})
    model_file = churn_serve(reference=":production", registry=consumer, serve_dir=str(serve_dir))
    assert Path(model_file) == serve_dir / "model" / "model.json"
    assert sorted(p.name for p in serve_dir.iterdir()) == ["model"]
    assert churn.evaluate(Path(model_file), data) == pytest.approx(result["accuracy"])


@pytest.mark.integration  # needs the Prefect server
def test_block_type_registers_from_the_cli(prefect_server: None) -> None:
    from prefect.settings import PREFECT_API_URL

    prefect_cli = Path(sys.executable).with_name("prefect")
    # the checkout first on the path, as for this test process (`python -m pytest` from the repository root)
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run([str(prefect_cli), "block", "register", "-m", "kitops_flows_prefect"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    with get_client(sync_client=True) as client:
        block_type = client.read_block_type_by_slug("kitops-registry")
        schemas = client.read_block_schemas()
    assert block_type.name == "KitOps Registry"
    schema = next(s for s in schemas if s.block_type_id == block_type.id)
    props = schema.fields["properties"]
    # the nested AwsCredentials block's secret is a secret of this block too
    assert schema.fields["secret_fields"] == ["password", "aws_credentials.aws_secret_access_key", "signing_key",
                                             "signing_key_password"]
    assert any(o.get("format") == "password" for o in props["password"].get("anyOf", [props["password"]]))
    assert {"registry", "username", "repository", "plain_http", "tls_verify", "immutable_tags",
            "kitops_home"} <= set(props)


@pytest.mark.integration  # needs the Prefect server
def test_pack_with_a_missing_kitfile_fails_without_retrying(prefect_server: None, kitops_home: Path,
                                                            tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    @flow
    def bad() -> tuple[bool, Any, str]:
        state = pack_modelkit(str(tmp_path / "empty"), "local/bad:v1", return_state=True)
        return state.is_failed(), state.state_details.task_run_id, repr(state.result(raise_on_failure=False))

    failed, task_run_id, error = bad()
    assert failed and "KitfileError" in error and "No Kitfile found" in error
    with get_client(sync_client=True) as client:
        task_run = client.read_task_run(task_run_id)
    assert task_run.run_count == 1  # a KitfileError is not retried (retries=2 is for transient failures)


@pytest.mark.integration  # needs the Prefect server
def test_core_logs_reach_the_right_task_run_redacted(prefect_server: None) -> None:
    import logging
    import threading

    from prefect import task

    from kitops_flows_prefect.artifacts import thread_key
    from kitops_flows_prefect.logs import task_run_logs

    core = logging.getLogger("kitops_flows")

    @task
    def transfer(name: str) -> None:
        owned: set[tuple[int, str]] = set()

        def worker(claimed: bool) -> None:
            if claimed:
                owned.add(thread_key())  # what TransferProgress does on the core's callback
            core.info("%s from a %s transfer thread (token tok-%s-secret)", name, "claimed" if claimed else "foreign",
                      name)

        with task_run_logs(owned, secrets=(f"tok-{name}-secret",)):
            core.info("%s on the task thread", name)
            for claimed in (True, False):
                t = threading.Thread(target=worker, args=(claimed,))
                t.start()
                t.join()

    @flow
    def two_tasks() -> None:
        for f in transfer.map(["alpha", "beta"]):
            f.result()

    state = two_tasks(return_state=True)
    expected = sorted([
        "alpha on the task thread", "alpha from a claimed transfer thread (token ***)",
        "beta on the task thread", "beta from a claimed transfer thread (token ***)",
    ])
    # Prefect ships run logs in the background: under load the last line can reach the API after the flow
    # returns, so read until the expected lines are there (or a deadline passes), then compare exactly.
    deadline = time.monotonic() + 30
    while True:
        lines = sorted(line for line in run_logs(state.state_details.flow_run_id)
                       if "transfer thread" in line or "task thread" in line)
        if lines == expected or len(lines) > len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert lines == expected
    assert not [h for h in core.handlers if type(h).__name__ == "_TaskRunHandler"]  # removed after each task


def test_tasks_map_over_contexts(prefect_server: None, registry: Any, kitops_home: Path, tmp_path: Path) -> None:
    from prefect import unmapped

    block = KitOpsRegistry(registry=registry.host, plain_http=True, repository="prefect/mapped",
                           kitops_home=str(kitops_home))
    contexts = [str(make_context(tmp_path / n, weights=w)) for n, w in (("a", "[1]"), ("b", "[2]"))]

    @flow
    def pack_many() -> list[ModelKitDescriptor]:
        futures = pack_modelkit.map(contexts, [":a", ":b"], registry=unmapped(block), push=unmapped(True))
        return [f.result() for f in futures]

    a, b = pack_many()
    assert (a.tags, b.tags) == (("a",), ("b",)) and a.digest != b.digest
    client = block.get_client()
    assert client.resolve(f"{registry.host}/prefect/mapped:b").digest == b.digest
