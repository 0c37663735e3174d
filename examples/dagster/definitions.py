"""Daily churn retraining where every asset is a ModelKit version.

    S3 drop (s3://<bucket>/churn/<day>/train.csv)
      -> churn_dataset    ModelKit with one dataset layer, streamed from S3 (no local copy)
      -> churn_model      trained on only the dataset layer; ModelKit with one model layer
      -> churn_modelkit   dataset + model + code + docs in one ModelKit (parents: the two above)
      -> churn_promoted   evaluated; promoted to ``staging`` when accurate enough

One ModelKit tag per day (the partition key), a daily schedule, a sensor that evaluates any
version pushed to ``churn_modelkit`` from outside Dagster (e.g. ``kit push``), and an asset
check that the recorded digests still resolve.

Run it (from the repository root)::

    CHURN_REGISTRY=127.0.0.1:5000 CHURN_PLAIN_HTTP=1 CHURN_BUCKET=ml-data \\
        dagster dev -m examples.dagster.definitions

Environment: ``CHURN_REGISTRY`` (empty: the local store only), ``CHURN_PLAIN_HTTP``,
``CHURN_BUCKET`` (default ``ml-data``), ``KITOPS_REGISTRY_USERNAME`` and, read at run time
through ``dg.EnvVar``, ``KITOPS_REGISTRY_PASSWORD``. AWS credentials come from boto3's chain.
"""

# No `from __future__ import annotations`: Dagster inspects the real annotation of `context`.
import os
import tempfile
from pathlib import Path

import dagster as dg
from examples.churn import model as churn
from kitops_flows.api import ModelKitDescriptor
from kitops_flows_dagster import (
    KitRegistryResource,
    Layer,
    ModelKitIOManager,
    modelkit_asset,
    modelkit_digest_check,
    modelkit_sensor,
)
from kitops_flows_dagster.sensors import TAG_PINNED

daily = dg.DailyPartitionsDefinition(start_date="2026-11-01")
MIN_ACCURACY = 0.6


class ChurnData(dg.ConfigurableResource):
    """Where the daily drops land. ``land_synthetic`` writes a synthetic drop when a day has none
    (a stand-in for the ingestion job that would normally put it there)."""

    bucket: str = "ml-data"
    prefix: str = "churn"
    land_synthetic: bool = True

    def uri(self, day: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}/{day}/train.csv"

    def ensure_drop(self, day: str) -> str:
        import boto3
        from botocore.exceptions import ClientError

        s3, key = boto3.client("s3"), f"{self.prefix}/{day}/train.csv"
        try:
            s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError:
            if not self.land_synthetic:
                raise
            with tempfile.TemporaryDirectory() as tmp:
                seed = int(day.replace("-", ""))
                s3.upload_file(str(churn.make_dataset(Path(tmp) / "train.csv", rows=400, seed=seed)), self.bucket, key)
        return self.uri(day)


@dg.asset(partitions_def=daily, metadata={"kitops": {"layer": "dataset"}}, group_name="churn",
          kinds={"s3", "kitops"})
def churn_dataset(context: dg.AssetExecutionContext, churn_data: ChurnData) -> Layer:
    """The day's drop, streamed from S3 into a dataset layer."""
    return Layer("dataset", churn_data.ensure_drop(context.partition_key), name="train", path="train.csv")


@dg.asset(partitions_def=daily, metadata={"kitops": {"layer": "model", "path": "model"}}, group_name="churn",
          code_version="logreg-1", kinds={"python", "kitops"},
          ins={"churn_dataset": dg.AssetIn(metadata={"kitops": {"layers": ["datasets"]}})})
def churn_model(context: dg.AssetExecutionContext, churn_dataset: Path) -> Path:
    """Logistic regression trained on the dataset layer only (the only blob this step downloads)."""
    out = Path(tempfile.mkdtemp(prefix="churn-model-"))
    churn.train(churn_dataset, out, epochs=60)
    context.add_output_metadata({"train_accuracy": churn.evaluate(out / "model.json", churn_dataset)})
    return out


churn_modelkit = modelkit_asset(
    "churn_modelkit",
    layers={"churn_dataset": "dataset", "churn_model": "model"},
    extra_layers=[Layer("code", Path(churn.__file__), path="src/model.py", description="training code"),
                  Layer("docs", "# churn\nLogistic regression on daily churn drops.\n", path="README.md",
                        serializer="text")],
    description="Churn classifier with its training data, code and docs",
    partitions_def=daily,
    group_name="churn",
)


@dg.asset(partitions_def=daily, group_name="churn",
          ins={"churn_modelkit": dg.AssetIn(), "churn_dataset": dg.AssetIn(metadata={"kitops": {"layers": ["datasets"]}})})
def churn_promoted(context: dg.AssetExecutionContext, kitops: KitRegistryResource,
                   churn_modelkit: ModelKitDescriptor, churn_dataset: Path) -> dg.MaterializeResult:
    """Evaluate the packed ModelKit's model layer and promote it to staging when it is good enough.

    A run started by the sensor evaluates the version that was pushed (run tag kitops/pinned).
    """
    pinned = context.run.tags.get(TAG_PINNED) or churn_modelkit.pinned
    with tempfile.TemporaryDirectory() as tmp:
        result = kitops.pull_layer(pinned, ["model"], Path(tmp) / "serve")
        accuracy = churn.evaluate(result.paths[0] / "model.json", churn_dataset)
    metadata: dict[str, object] = {"candidate": pinned, "accuracy": accuracy}
    if accuracy >= MIN_ACCURACY:
        event = kitops.promote(pinned, "staging")
        metadata.update(stage=event.stage, previous=event.previous or "(none)", stage_event=event.event_digest)
    else:
        context.log.warning(f"{pinned}: accuracy {accuracy:.3f} < {MIN_ACCURACY}; not promoted")
    return dg.MaterializeResult(metadata=metadata)


retrain_job = dg.define_asset_job(
    "churn_retrain", selection=dg.AssetSelection.assets(churn_dataset, churn_model, churn_modelkit, churn_promoted),
    partitions_def=daily,
)
evaluate_job = dg.define_asset_job("churn_evaluate_pushed", selection=dg.AssetSelection.assets(churn_promoted),
                                   partitions_def=daily)
nightly = dg.build_schedule_from_partitioned_job(retrain_job, hour_of_day=2)
pushed_versions = modelkit_sensor("churn_modelkit_pushed", asset_key="churn_modelkit", job=evaluate_job,
                                  tag_patterns=["20??-??-??"], partition_key_from_tag=True)

ASSETS = [churn_dataset, churn_model, churn_modelkit, churn_promoted]


def make_definitions(kitops: KitRegistryResource, churn_data: ChurnData) -> dg.Definitions:
    """The example's Definitions for a given registry and bucket (tests build their own)."""
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=[modelkit_digest_check(a) for a in (churn_dataset, churn_model, churn_modelkit)],
        jobs=[retrain_job, evaluate_job],
        schedules=[nightly],
        sensors=[pushed_versions],
        resources={"kitops": kitops, "io_manager": ModelKitIOManager(kitops=kitops), "churn_data": churn_data},
    )


def _kitops_from_env() -> KitRegistryResource:
    user = os.environ.get("KITOPS_REGISTRY_USERNAME")
    return KitRegistryResource(
        registry=os.environ.get("CHURN_REGISTRY", ""),
        plain_http=os.environ.get("CHURN_PLAIN_HTTP", "") not in ("", "0", "false"),
        username=user,
        password=dg.EnvVar("KITOPS_REGISTRY_PASSWORD") if user else None,
        repository_prefix="examples",
    )


defs = make_definitions(_kitops_from_env(), ChurnData(bucket=os.environ.get("CHURN_BUCKET", "ml-data")))
