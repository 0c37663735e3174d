"""One Kitfile-from-arguments path: Airflow's operator arguments, Prefect's ``ModelKitSpec.from_arguments``
and Dagster's ``Layer``s all go through the core's ``KitfileArguments``, so the same inputs give the
same Kitfile (byte for byte) and the same S3 sources in every plugin (unit: no orchestrator run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitops_flows.errors import KitfileError
from kitops_flows.kitfile_args import KitfileArguments, LayerArgument

pytest.importorskip("airflow.sdk")
pytest.importorskip("prefect")
pytest.importorskip("dagster")

from kitops_flows.kitfile import Kitfile  # noqa: E402
from kitops_flows_airflow.operators import KitPackOperator  # noqa: E402
from kitops_flows_dagster.contents import Layer, ModelKitContents, stage  # noqa: E402
from kitops_flows_prefect.flows import ModelKitSpec  # noqa: E402

TRAIN, PREFIX = "s3://b/churn/train.csv", "s3://b/churn/"


def _job(tmp_path: Path) -> Path:
    job = tmp_path / "job"
    (job / "model").mkdir(parents=True)
    (job / "model" / "m.json").write_text("{}")
    (job / "src").mkdir()
    (job / "src" / "train.py").write_text("print(1)\n")
    (job / "README.md").write_text("hi")
    return job


def test_three_plugins_give_the_same_kitfile(tmp_path: Path) -> None:
    job = _job(tmp_path)
    package = {"name": "churn", "version": "3", "authors": ["me"]}
    datasets = {"train": TRAIN, "raw": PREFIX}

    airflow = KitPackOperator(task_id="pack", model=str(job / "model"), datasets=datasets, code=str(job / "src"),
                              docs=[str(job / "README.md")], package=package)
    a_ctx, a_kf, a_sources = airflow.kitfile_arguments().build(None)

    spec = ModelKitSpec.from_arguments(KitfileArguments(model=str(job / "model"), datasets=datasets,
                                                        code=[str(job / "src")], docs=[str(job / "README.md")],
                                                        package=package), reference=":v3")
    assert isinstance(spec.kitfile, Kitfile) and spec.reference == ":v3"

    contents = ModelKitContents(layers=(
        Layer("model", job / "model"), Layer("dataset", TRAIN, name="train"), Layer("dataset", PREFIX, name="raw"),
        Layer("code", job / "src"), Layer("docs", job / "README.md"),
    ), name="churn", version="3", authors=("me",))
    staged = stage(contents, tmp_path / "w", default_name="churn", default_serializer="pickle", what="asset churn")
    d_kf = Kitfile.load(staged.kitfile)

    assert a_ctx == Path(spec.context_dir) == job
    assert a_kf.to_yaml() == spec.kitfile.to_yaml() == d_kf.to_yaml()
    assert a_kf.to_json() == d_kf.to_json()  # the config blob: the same ModelKit digest
    assert [(d.name, d.path) for d in d_kf.datasets] == [("train", "data/train.csv"), ("raw", "data/raw")]
    assert (d_kf.model.name, d_kf.model.path) == ("churn", "model")
    assert a_sources == dict(spec.sources) == staged.sources == {"train": TRAIN, "raw": PREFIX}
    assert (staged.context_dir / "src" / "train.py").read_text() == "print(1)\n"


def test_descriptions_and_explicit_s3_paths(tmp_path: Path) -> None:
    job = _job(tmp_path)
    args = KitfileArguments(package={"name": "churn"}, datasets={"train": TRAIN}, layers=(
        LayerArgument("dataset", PREFIX, name="raw", path="data/all", description="every day"),
        LayerArgument("model", "s3://b/models/churn.onnx", description="onnx"),
        LayerArgument("code", str(job / "src"), path="src", description="trainer"),
    ))
    _, kf, sources = args.build(job)
    assert [(d.name, d.path, d.description) for d in kf.datasets] == [
        ("train", "data/train.csv", ""), ("raw", "data/all", "every day")]
    assert (kf.model.name, kf.model.path, kf.model.description) == ("churn", "model/churn.onnx", "onnx")
    assert [(c.path, c.description) for c in kf.code] == [("src", "trainer")]
    assert sources == {"train": TRAIN, "raw": PREFIX, "model/churn.onnx": "s3://b/models/churn.onnx"}

    # Dagster's Layer fields map to the same entries
    staged = stage(ModelKitContents(layers=(Layer("dataset", PREFIX, name="raw", path="data/all",
                                                  description="every day"),), name="churn"),
                   tmp_path / "w", default_name="churn", default_serializer="pickle", what="asset churn")
    assert [(d.name, d.path, d.description) for d in Kitfile.load(staged.kitfile).datasets] == [
        ("raw", "data/all", "every day")]


@pytest.mark.parametrize(("layers", "message"), [
    ((LayerArgument("dataset", PREFIX, path="../up"),), "without '..'"),
    ((LayerArgument("code", "src", path="elsewhere"),), "move it there or leave path empty"),
    ((LayerArgument("model", "s3://b/a"), LayerArgument("model", "s3://b/c")), "one model layer"),
])
def test_bad_layer_arguments_are_refused(tmp_path: Path, layers: tuple[LayerArgument, ...], message: str) -> None:
    _job(tmp_path)
    with pytest.raises(KitfileError, match=message):
        KitfileArguments(layers=layers).build(tmp_path / "job")
    with pytest.raises(KitfileError, match="not one of"):
        LayerArgument("weights", "x")
