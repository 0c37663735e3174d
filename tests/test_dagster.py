"""Dagster integration: resource, ModelKit IO manager, modelkit_asset, sensor and asset check.

Unit tests use the local store only (``registry=""``); the integration tests run ``dg.materialize``
against the real docker-registry and moto S3 from conftest, including the example Definitions.
"""

# No `from __future__ import annotations`: Dagster inspects the real annotation of `context`.
import json
import logging
import os
from pathlib import Path

import dagster as dg
import pytest

from kitops_flows.api import KitOpsClient, ModelKitDescriptor
from kitops_flows.errors import KitopsError, PackError, ReferenceFormatError
from kitops_flows.kitfile import Kitfile
from kitops_flows.lineage import read_provenance, where
from kitops_flows.lineage.model import ANNOTATION_PARENTS
from kitops_flows.store import LocalStore
from kitops_flows_dagster import (
    KitRegistryResource,
    Layer,
    ModelKitContents,
    ModelKitIOManager,
    modelkit_asset,
    modelkit_digest_check,
    modelkit_sensor,
)
from kitops_flows_dagster.contents import ANNOTATION_SERIALIZERS, stage
from kitops_flows_dagster.naming import join_reference, repository_for, tag_for
from kitops_flows_dagster.sensors import TAG_PINNED, new_versions
from kitops_flows_dagster.serializers import JsonSerializer, get_serializer

pytestmark = pytest.mark.dagster

# -- naming, serializers, staging (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize(("key", "prefix", "repo"), [
    (["churn_model"], "", "churn_model"),
    (["ML", "Churn Model"], "team/ds", "team/ds/ml/churn-model"),
    (["a..b", "--x--"], "", "a.b/x"),
])
def test_repository_from_asset_key(key: list[str], prefix: str, repo: str) -> None:
    assert repository_for(key, prefix) == repo


def test_repository_without_valid_characters_is_an_error() -> None:
    with pytest.raises(ReferenceFormatError, match="no valid repository"):
        repository_for(["***"], "")


def test_tags_from_partition_and_run() -> None:
    assert tag_for("{partition}", partition="2026-11-26") == "2026-11-26"
    assert tag_for("{partition}", partition="2026-11-26|eu") == "2026-11-26_eu"
    assert tag_for("run-{run_id_short}", run_id="0123456789abcdef") == "run-01234567"
    assert tag_for("{asset}-{code_version}", asset="m", code_version="v2") == "m-v2"
    with pytest.raises(ReferenceFormatError, match="unknown placeholder"):
        tag_for("{branch}")
    with pytest.raises(ReferenceFormatError, match="not a valid OCI tag"):
        tag_for("{partition}", partition="")
    assert join_reference("r:5000", "a/b", "v1") == "r:5000/a/b:v1"
    assert join_reference("", "a/b", "sha256:" + "0" * 64) == "a/b@sha256:" + "0" * 64


def test_serializers_round_trip_and_custom_import_path(tmp_path: Path) -> None:
    for name, value in (("pickle", {"w": [1.5, 2]}), ("json", {"b": 1, "a": [1]}), ("text", "héllo")):
        ser = get_serializer(name)
        ser.dump(value, tmp_path / f"x{ser.extension}")
        assert ser.load(tmp_path / f"x{ser.extension}") == value
    assert isinstance(get_serializer("kitops_flows_dagster.serializers:JsonSerializer"), JsonSerializer)
    with pytest.raises(KitopsError, match="unknown serializer"):
        get_serializer("yaml")
    with pytest.raises(KitopsError, match="could not be imported"):
        get_serializer("no_such_module:X")
    with pytest.raises(KitopsError, match="writes str values"):
        get_serializer("text").dump(3, tmp_path / "n.txt")


def test_stage_lays_out_layers_and_a_strict_kitfile(tmp_path: Path) -> None:
    model_dir = tmp_path / "out"
    (model_dir / "sub").mkdir(parents=True)
    (model_dir / "sub" / "w.bin").write_bytes(b"\0" * 100)
    csv = tmp_path / "train.csv"
    csv.write_text("a,b\n1,2\n")
    contents = ModelKitContents(layers=(
        Layer("model", model_dir, path="model"), Layer("dataset", csv, name="train"),
        Layer("code", {"lr": 0.1}, path="cfg/params.json", serializer="json"),
        Layer("docs", "s3://bucket/docs/README.md"),
    ), name="churn", version="7")
    staged = stage(contents, tmp_path / "w", default_name="churn_model", default_serializer="pickle", what="t")
    kf = Kitfile.load(staged.kitfile)
    assert kf.validate() == []
    assert [(e.kind, e.path) for e in kf.layer_entries()] == [
        ("model", "model"), ("code", "cfg/params.json"), ("dataset", "train.csv"), ("docs", "docs/README.md")]
    assert (kf.package.name, kf.package.version, kf.datasets[0].name) == ("churn", "7", "train")
    assert (staged.context_dir / "model/sub/w.bin").read_bytes() == b"\0" * 100
    assert (staged.context_dir / "model/sub/w.bin").stat().st_ino == (model_dir / "sub/w.bin").stat().st_ino  # linked
    assert json.loads((staged.context_dir / "cfg/params.json").read_text()) == {"lr": 0.1}
    assert staged.sources == {"docs/README.md": "s3://bucket/docs/README.md"}
    assert json.loads(staged.annotations[ANNOTATION_SERIALIZERS]) == {"cfg/params.json": "json"}


@pytest.mark.parametrize(("layers", "message"), [
    ((Layer("model", 1), Layer("model", 2, path="b.pkl")), "one model layer"),
    ((Layer("dataset", 1, path="x"), Layer("code", 2, path="x")), "two layers use the path 'x'"),
    ((Layer("code", 1, path="../up"),), "without '..'"),
    ((Layer("code", Path("/does/not/exist")),), "does not exist"),
])
def test_stage_rejects_bad_contents(tmp_path: Path, layers: tuple[Layer, ...], message: str) -> None:
    with pytest.raises(PackError, match=message):
        stage(ModelKitContents(layers=layers), tmp_path / "w", default_name="a", default_serializer="pickle",
              what="asset a")
    with pytest.raises(PackError, match="not one of"):
        Layer("weights", 1)


def test_new_versions_compares_digests_per_tag() -> None:
    seen = {"v1": "sha256:a", "v2": "sha256:b"}
    now = {"v1": "sha256:a", "v2": "sha256:c", "v3": "sha256:d", "production": "sha256:a"}
    assert new_versions(seen, now, None) == {"production": "sha256:a", "v2": "sha256:c", "v3": "sha256:d"}
    assert new_versions(seen, now, ["v*"]) == {"v2": "sha256:c", "v3": "sha256:d"}
    assert new_versions(now, now, None) == {}


# -- the IO manager on the local store -------------------------------------------------------------------------


def _local(kitops_home: Path) -> tuple[KitRegistryResource, dict[str, object]]:
    kitops = KitRegistryResource(kitops_home=str(kitops_home), repository_prefix="t")
    return kitops, {"kitops": kitops, "io_manager": ModelKitIOManager(kitops=kitops)}


def _materialization(result: dg.ExecuteInProcessResult, key: str) -> dg.AssetMaterialization:
    found = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(key)]
    assert found, f"no materialisation of {key}"
    return found[-1].materialization


def _descriptor(result: dg.ExecuteInProcessResult, key: str) -> ModelKitDescriptor:
    return ModelKitDescriptor.from_dict(_materialization(result, key).metadata["modelkit"].value)  # type: ignore[arg-type]


def test_local_objects_and_paths_round_trip_with_metadata(kitops_home: Path, tmp_path: Path) -> None:
    kitops, resources = _local(kitops_home)

    @dg.asset(metadata={"kitops": {"layer": "dataset", "serializer": "json"}})
    def features() -> dict[str, list[int]]:
        return {"x": [1, 2, 3]}

    @dg.asset(metadata={"kitops": {"layer": "model", "path": "weights"}}, code_version="v3")
    def trained(features: dict[str, list[int]]) -> Path:
        out = tmp_path / "weights-out"
        out.mkdir()
        (out / "w.txt").write_text(str(sum(features["x"])))
        return out

    @dg.asset
    def report(trained: Path, features: dict[str, list[int]]) -> str:
        return f"{(trained / 'w.txt').read_text()} from {len(features['x'])}"

    result = dg.materialize([features, trained, report], resources=resources)
    assert result.success
    assert result.output_for_node("report") == "6 from 3"
    client = kitops.get_client()
    for key, kind in (("features", "dataset"), ("trained", "model"), ("report", "model")):
        meta = _materialization(result, key).metadata
        desc = _descriptor(result, key)
        assert desc.tags == (result.run_id,)  # unpartitioned: tagged with the run id
        assert meta["reference"].value == f"t/{key}:{result.run_id}"
        assert meta["digest"].value == desc.digest == client.describe(desc.reference).digest
        assert meta["size"].value == desc.size > 0
        assert meta["dagster/uri"].value == f"oci://localhost/t/{key}@{desc.digest}"
        assert [r.data["kind"] for r in meta["layers"].value.records] == [kind]
        assert "```mermaid" in meta["lineage"].value
        assert meta.get("kitops/layers") is None
    trained_desc = _descriptor(result, "trained")
    assert trained_desc.layers[0].path == "weights"
    # parents: the ModelKits the step loaded; provenance: the Dagster run
    assert trained_desc.annotations[ANNOTATION_PARENTS] == _descriptor(result, "features").pinned
    parents = set(_descriptor(result, "report").annotations[ANNOTATION_PARENTS].split(","))
    assert parents == {trained_desc.pinned, _descriptor(result, "features").pinned}
    statement = read_provenance(client, trained_desc.pinned)
    run = statement["predicate"]["buildDefinition"]["externalParameters"]["run"]
    assert (run["orchestrator"], run["runId"], run["task"]) == ("dagster", result.run_id, "trained")
    assert run["pipeline"] == "__ephemeral_asset_job__"
    assert run["extra"]["code_version"] == "v3"
    # the data version is the manifest digest
    events = result.get_asset_materialization_events()
    versions = {e.asset_key.path[-1]: e.materialization.tags.get("dagster/data_version") for e in events}
    assert versions["trained"] == trained_desc.digest


def test_descriptor_input_pulls_no_layer_and_pins_by_tag_or_digest(kitops_home: Path) -> None:
    kitops, resources = _local(kitops_home)

    @dg.asset
    def numbers() -> list[int]:
        return [1, 2, 3]

    instance = dg.DagsterInstance.ephemeral()
    first = dg.materialize([numbers], resources=resources, instance=instance)
    first_desc = _descriptor(first, "numbers")

    @dg.asset(name="numbers")
    def numbers_v2() -> list[int]:
        return [4, 5]

    dg.materialize([numbers_v2], resources=resources, instance=instance)

    @dg.asset
    def latest(numbers: list[int]) -> int:
        return sum(numbers)

    @dg.asset(ins={"numbers": dg.AssetIn(metadata={"kitops": {"digest": first_desc.digest}})})
    def pinned(numbers: list[int]) -> int:
        return sum(numbers)

    @dg.asset(ins={"numbers": dg.AssetIn(metadata={"kitops": {"tag": first.run_id}})})
    def by_tag(numbers: list[int]) -> int:
        return sum(numbers)

    @dg.asset
    def described(numbers: ModelKitDescriptor) -> int:
        return len(numbers.layers)

    result = dg.materialize([numbers_v2, latest, pinned, by_tag, described], resources=resources, instance=instance,
                            selection=[latest, pinned, by_tag, described])
    assert result.success
    assert (result.output_for_node("latest"), result.output_for_node("pinned"), result.output_for_node("by_tag")) == (
        9, 6, 6)
    assert result.output_for_node("described") == 1

    @dg.asset(ins={"numbers": dg.AssetIn(metadata={"kitops": {"digest": "x", "tag": "y"}})})
    def both(numbers: list[int]) -> int:
        return 0

    @dg.asset(ins={"numbers": dg.AssetIn(metadata={"kitops": {"layer": "model"}})})
    def typo(numbers: list[int]) -> int:
        return 0

    for bad, message in ((both, "not both"), (typo, r"unknown key\(s\) \['layer'\]")):
        with pytest.raises(KitopsError, match=message):
            dg.materialize([numbers_v2, bad], resources=resources, instance=instance, selection=[bad])


def test_partitions_are_tags_and_a_multi_partition_input_is_a_dict(kitops_home: Path) -> None:
    kitops, resources = _local(kitops_home)
    days = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_date="2026-11-03")

    @dg.asset(partitions_def=days, metadata={"kitops": {"serializer": "json"}})
    def daily(context: dg.AssetExecutionContext) -> dict[str, str]:
        return {"day": context.partition_key}

    @dg.asset
    def summary(daily: dict[str, dict[str, str]]) -> list[str]:
        return sorted(v["day"] for v in daily.values())

    instance = dg.DagsterInstance.ephemeral()
    for day in ("2026-11-01", "2026-11-02"):
        assert dg.materialize([daily], partition_key=day, resources=resources, instance=instance).success
    tags = {t for e in kitops.get_client().list("t/daily") for t in e.tags}
    assert tags == {"2026-11-01", "2026-11-02"}
    result = dg.materialize([daily, summary], resources=resources, instance=instance, selection=[summary])
    assert result.output_for_node("summary") == ["2026-11-01", "2026-11-02"]


def test_missing_upstream_materialisation_is_a_clear_error(kitops_home: Path) -> None:
    _, resources = _local(kitops_home)

    @dg.asset
    def upstream() -> int:
        return 1

    @dg.asset
    def downstream(upstream: int) -> int:
        return upstream

    with pytest.raises(KitopsError, match="upstream has no ModelKit materialisation in this instance.*materialise it first"):
        dg.materialize([upstream, downstream], resources=resources, selection=[downstream])


def test_modelkit_asset_packs_upstreams_as_layers(kitops_home: Path, tmp_path: Path) -> None:
    kitops, resources = _local(kitops_home)
    src = tmp_path / "train.py"
    src.write_text("print('train')\n")

    @dg.asset(metadata={"kitops": {"layer": "dataset", "path": "rows.json", "serializer": "json"}})
    def rows() -> list[int]:
        return [1, 2]

    @dg.asset(metadata={"kitops": {"layer": "model"}})
    def weights(rows: list[int]) -> dict[str, float]:
        return {"w": sum(rows) / 2}

    bundle = modelkit_asset("bundle", {"rows": "dataset", "weights": "model"},
                            extra_layers=[Layer("code", src, path="src/train.py")], version="1.0")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([rows, weights, bundle], resources=resources, instance=instance)
    assert result.success
    desc = _descriptor(result, "bundle")
    assert sorted((l.kind, l.path) for l in desc.layers) == [
        ("code", "src/train.py"), ("dataset", "rows.json"), ("model", "weights.pkl")]
    assert desc.version == "1.0"
    assert set(desc.annotations[ANNOTATION_PARENTS].split(",")) == {
        _descriptor(result, "rows").pinned, _descriptor(result, "weights").pinned}
    # the dataset layer is byte-identical to the upstream's (same path, same content): stored once
    assert desc.layer("dataset").digest == _descriptor(result, "rows").layers[0].digest

    @dg.asset(ins={"bundle": dg.AssetIn(metadata={"kitops": {"layers": ["model", "code"]}})})
    def served(bundle: dict[str, object]) -> list[str]:
        return sorted(bundle)

    loaded = dg.materialize([rows, weights, bundle, served], resources=resources, selection=[served],
                            instance=instance)
    assert loaded.output_for_node("served") == ["src/train.py", "weights"]  # entry name, else path


# -- real registry and S3 --------------------------------------------------------------------------------------

DAYS = ("2026-11-02", "2026-11-03")


def _registry_resource(host: str, kitops_home: Path, prefix: str, **kw: object) -> KitRegistryResource:
    return KitRegistryResource(registry=host, plain_http=True, kitops_home=str(kitops_home),
                               repository_prefix=prefix, **kw)  # type: ignore[arg-type]


def test_example_daily_retraining_against_registry_and_s3(registry, s3, kitops_home: Path) -> None:  # noqa: ANN001
    from examples.dagster.definitions import ChurnData, make_definitions

    s3.client().create_bucket(Bucket="churn-drops")
    kitops = _registry_resource(registry.host, kitops_home, "ex-retrain")
    defs = make_definitions(kitops, ChurnData(bucket="churn-drops"))
    job = defs.resolve_job_def("churn_retrain")
    instance = dg.DagsterInstance.ephemeral()
    results = {day: job.execute_in_process(partition_key=day, instance=instance) for day in DAYS}
    assert all(r.success for r in results.values())

    client = KitOpsClient(store=LocalStore(kitops_home / "fresh"), plain_http=True)  # sees only the registry
    for asset in ("churn_dataset", "churn_model", "churn_modelkit"):
        repo = f"{registry.host}/ex-retrain/{asset}"
        tags = {t for e in client.list(repo) for t in e.tags}
        assert set(DAYS) <= tags, (asset, tags)  # one ModelKit tag per partition
        for day, result in results.items():
            desc = _descriptor(result, asset)
            assert desc.tags == (day,)
            assert client.inspect(f"{repo}:{day}", remote=True)["digest"] == desc.digest
            mat = _materialization(result, asset)
            assert mat.partition == day
            assert mat.tags["dagster/data_version"] == desc.digest

    day = DAYS[1]
    kit = _descriptor(results[day], "churn_modelkit")
    assert sorted((l.kind, l.path) for l in kit.layers) == [
        ("code", "src/model.py"), ("dataset", "train.csv"), ("docs", "README.md"), ("model", "model")]
    assert set(kit.annotations[ANNOTATION_PARENTS].split(",")) == {
        _descriptor(results[day], "churn_dataset").pinned, _descriptor(results[day], "churn_model").pinned}
    run = read_provenance(client, kit.pinned)["predicate"]["buildDefinition"]["externalParameters"]["run"]
    assert (run["orchestrator"], run["pipeline"], run["partition"]) == ("dagster", "churn_retrain", day)
    lineage = _materialization(results[day], "churn_modelkit").metadata["lineage"].value
    assert "ex-retrain/churn_dataset" in lineage and "s3://churn-drops/churn/" in lineage
    # the dataset layer is the S3 object, byte for byte
    data = client.pull_layer(_descriptor(results[day], "churn_dataset").pinned, ["datasets"], kitops_home / "d")
    body = s3.client().get_object(Bucket="churn-drops", Key=f"churn/{day}/train.csv")["Body"].read()
    assert data.paths[0].read_bytes() == body
    # promoted: staging points at the day's packed ModelKit
    promoted = _materialization(results[day], "churn_promoted").metadata
    assert promoted["stage"].value == "staging" and promoted["accuracy"].value >= 0.6
    assert where(client, f"{registry.host}/ex-retrain/churn_modelkit", "staging").digest == kit.digest

    # the job ran the digest checks after each ModelKit asset
    evaluations = results[day].get_asset_check_evaluations()
    assert sorted(e.asset_key.path[-1] for e in evaluations if e.passed) == [
        "churn_dataset", "churn_model", "churn_modelkit"]


def test_one_layer_load_fetches_only_that_blob(registry, proxy_factory, kitops_home: Path, tmp_path: Path) -> None:  # noqa: ANN001
    proxy = proxy_factory(registry.host)
    producer = _registry_resource(proxy.host, kitops_home / "producer", "one-layer")
    consumer = _registry_resource(proxy.host, kitops_home / "consumer", "one-layer")
    big = tmp_path / "model.bin"
    big.write_bytes(os.urandom(3 << 20))
    csv = tmp_path / "eval.csv"
    csv.write_text("x,y\n" + "1,2\n" * 100)

    @dg.asset
    def kit() -> ModelKitContents:
        return ModelKitContents(layers=(Layer("model", big), Layer("dataset", csv, name="eval")))

    @dg.asset(ins={"kit": dg.AssetIn(metadata={"kitops": {"layers": ["datasets:eval"]}})})
    def evaluation(kit: Path) -> int:
        return len(kit.read_text().splitlines())

    instance = dg.DagsterInstance.ephemeral()
    made = dg.materialize([kit], resources={"io_manager": ModelKitIOManager(kitops=producer)}, instance=instance)
    desc = _descriptor(made, "kit")
    model_blob, data_blob = desc.layer("model"), desc.layer("dataset")
    before_model = proxy.bytes_for(f"/blobs/{model_blob.digest}", method="GET")
    result = dg.materialize([kit, evaluation], resources={"io_manager": ModelKitIOManager(kitops=consumer)},
                            instance=instance, selection=[evaluation])
    assert result.output_for_node("evaluation") == 101
    assert proxy.bytes_for(f"/blobs/{model_blob.digest}", method="GET") == before_model  # the 3 MiB never moved
    assert proxy.bytes_for(f"/blobs/{data_blob.digest}", method="GET") >= data_blob.size
    store = consumer.get_client().store
    assert store.has_blob(data_blob.digest) and not store.has_blob(model_blob.digest)
    # a second load is served from the local cache: no more blob bytes
    fetched = proxy.bytes_for("/blobs/", method="GET")
    again = dg.materialize([kit, evaluation], resources={"io_manager": ModelKitIOManager(kitops=consumer)},
                           instance=instance, selection=[evaluation])
    assert again.success and proxy.bytes_for("/blobs/", method="GET") == fetched


def test_sensor_requests_a_run_for_versions_pushed_outside_dagster(registry, kitops_home: Path,  # noqa: ANN001
                                                                    tmp_path: Path) -> None:
    repo = f"{registry.host}/sensor-test/drops"
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)

    def push(tag: str, content: str) -> ModelKitDescriptor:  # what `kit pack . -t …; kit push …` does
        ctx = tmp_path / f"ctx-{tag}-{len(content)}"
        ctx.mkdir()
        (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\ndatasets:\n  - {name: drop, path: drop.csv}\n")
        (ctx / "drop.csv").write_text(content)
        return kit.pack(ctx, reference=f"{repo}:{tag}", push=True)

    @dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2026-11-01"))
    def consume(context: dg.AssetExecutionContext) -> None:
        context.log.info(context.run.tags[TAG_PINNED])

    job = dg.define_asset_job("consume_job", selection=[consume])
    sensor = modelkit_sensor("drops", repository=repo, job=job, tag_patterns=["2026-*"], partition_key_from_tag=True)
    kitops = _registry_resource(registry.host, kitops_home, "")
    defs = dg.Definitions(assets=[consume], jobs=[job], sensors=[sensor], resources={"kitops": kitops})

    def tick(cursor: str | None) -> tuple[list[dg.RunRequest], str | None]:
        # a context manager: KitRegistryResource nests the optional S3Resource, so Dagster sets it up as one
        with dg.build_sensor_context(cursor=cursor, resources={"kitops": kitops}, definitions=defs) as context:
            data = sensor.evaluate_tick(context)
        return list(data.run_requests or []), data.cursor

    requests, cursor = tick(None)
    assert requests == [] and cursor is None or json.loads(cursor or "{}") == {}  # repository does not exist yet
    first = push("2026-11-02", "a\n1\n")
    push("scratch", "not matched\n")
    requests, cursor = tick(cursor)
    assert [(r.partition_key, r.run_key, r.tags[TAG_PINNED]) for r in requests] == [
        ("2026-11-02", f"2026-11-02@{first.digest}", first.pinned)]
    assert tick(cursor)[0] == []  # nothing new
    second = push("2026-11-03", "a\n2\n")
    moved = push("2026-11-02", "a\n1\n3\n")  # someone re-pushed the day: the tag moved
    requests, cursor = tick(cursor)
    assert sorted((r.partition_key, r.tags[TAG_PINNED]) for r in requests) == [
        ("2026-11-02", moved.pinned), ("2026-11-03", second.pinned)]
    assert tick(cursor)[0] == []


def test_asset_check_fails_when_the_tag_was_moved(registry, kitops_home: Path, tmp_path: Path) -> None:  # noqa: ANN001
    kitops = _registry_resource(registry.host, kitops_home, "check-test", immutable_tags=False)

    @dg.asset
    def scores() -> dict[str, int]:
        return {"a": 1}

    check = modelkit_digest_check(scores)
    resources = {"kitops": kitops, "io_manager": ModelKitIOManager(kitops=kitops, unpartitioned_tag_template="v1")}
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([scores, check], resources=resources, instance=instance)
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True]

    # another build is pushed to the same tag behind Dagster's back
    ctx = tmp_path / "other"
    ctx.mkdir()
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\ncode:\n  - {path: x.py}\n")
    (ctx / "x.py").write_text("x = 2\n")
    other = kitops.get_client().pack(ctx, reference=f"{registry.host}/check-test/scores:v1", push=True)
    rerun = dg.materialize([scores, check], resources=resources, instance=instance,
                           selection=dg.AssetSelection.checks_for_assets(scores))
    [evaluation] = rerun.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["tag v1"].value == other.digest
    assert "points at" in (evaluation.description or "")


def test_immutable_tags_refuse_to_move(registry, kitops_home: Path) -> None:  # noqa: ANN001
    kitops = _registry_resource(registry.host, kitops_home, "immutable", immutable_tags=True)
    resources = {"io_manager": ModelKitIOManager(kitops=kitops, unpartitioned_tag_template="fixed")}

    @dg.asset
    def value() -> int:
        return 1

    assert dg.materialize([value], resources=resources).success

    @dg.asset(name="value")
    def value2() -> int:
        return 2

    with pytest.raises(KitopsError, match="already points at .*refusing to move it"):
        dg.materialize([value2], resources=resources)


@pytest.mark.parametrize(("registry_value", "message"), [
    ("127.0.0.1:1", "asset broken: could not store ModelKit 127.0.0.1:1/bad/broken:"),
    ("Bad Registry!", "asset broken: could not store ModelKit Bad Registry!/bad/broken:"),
])
def test_bad_registry_reference_fails_the_materialisation_clearly(kitops_home: Path, registry_value: str,
                                                                   message: str) -> None:
    kitops = KitRegistryResource(registry=registry_value, plain_http=True, kitops_home=str(kitops_home),
                                 repository_prefix="bad")

    @dg.asset
    def broken() -> int:
        return 1

    result = dg.materialize([broken], resources={"io_manager": ModelKitIOManager(kitops=kitops)},
                            raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    text = str(failure.step_failure_data.error)
    assert message in text, text


def test_password_never_reaches_metadata_or_logs(auth_registry, kitops_home: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
                                                 caplog: pytest.LogCaptureFixture,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TEST_KITOPS_PASSWORD", auth_registry.password)
    kitops = KitRegistryResource(registry=auth_registry.host, plain_http=True, kitops_home=str(kitops_home),
                                 repository_prefix="secret", username=auth_registry.username,
                                 password=dg.EnvVar("TEST_KITOPS_PASSWORD"))
    resources = {"kitops": kitops, "io_manager": ModelKitIOManager(kitops=kitops)}

    @dg.asset
    def private() -> list[int]:
        return [1, 2, 3]

    @dg.asset
    def reader(private: list[int]) -> int:
        return len(private)

    caplog.set_level(logging.DEBUG)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([private, reader], resources=resources, instance=instance)
    assert result.success and result.output_for_node("reader") == 3
    pushed = _descriptor(result, "private")
    assert pushed.registry == auth_registry.host

    events = instance.all_logs(result.run_id)
    dumped = "\n".join(dg.serialize_value(e) for e in events)  # every event: metadata, logs, run config
    out, err = capfd.readouterr()
    assert auth_registry.password not in dumped
    assert auth_registry.password not in caplog.text
    assert auth_registry.password not in out + err
    assert auth_registry.password not in repr(kitops.get_client())

    # and a wrong password fails with the registry's refusal, not the password
    monkeypatch.setenv("TEST_KITOPS_PASSWORD", "wrong-" + auth_registry.password[::-1])
    with pytest.raises(KitopsError) as info:
        dg.materialize([private], resources=resources)
    assert auth_registry.password[::-1] not in str(info.value)
