"""A two-step Dagster job for the multiprocess executor test: every step runs in its own process.

``dataset`` streams an S3 object (credentials only in the ``S3Resource``) into a ModelKit pushed to the
registry; ``model`` loads its dataset layer and stores a model ModelKit. The resource's store is
``<KITOPS_TEST_STORES>/{step_key}``, so each step starts from an empty store of its own. Settings come
from the environment because the step processes rebuild the job from this module.
"""

# No `from __future__ import annotations`: Dagster inspects the real annotations.
import json
import os
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from kitops_flows_dagster import KitRegistryResource, Layer, ModelKitIOManager, modelkit_digest_check


@dg.asset(key_prefix=["exec17"])
def dataset(context: dg.AssetExecutionContext) -> Layer:
    context.add_output_metadata({"pid": os.getpid()})
    return Layer("dataset", os.environ["KITOPS_TEST_S3_URI"], name="train", path="train.json")


@dg.asset(key_prefix=["exec17"], ins={"dataset": dg.AssetIn(key=["exec17", "dataset"],
                                                          metadata={"kitops": {"layers": ["datasets"]}})})
def model(context: dg.AssetExecutionContext, dataset: Path) -> dict:
    context.add_output_metadata({"pid": os.getpid()})
    rows = json.loads(Path(dataset).read_text())
    return {"mean": sum(rows) / len(rows), "trained_in": str(os.getpid())}


def kitops_job() -> dg.JobDefinition:
    kitops = KitRegistryResource(
        registry=os.environ["KITOPS_TEST_REGISTRY"], plain_http=True, repository_prefix=os.environ["KITOPS_TEST_PREFIX"],
        kitops_home=os.environ["KITOPS_TEST_STORES"] + "/{step_key}",
        s3=S3Resource(endpoint_url=os.environ["KITOPS_TEST_S3_ENDPOINT"], region_name="us-east-1",
                      aws_access_key_id=os.environ["KITOPS_TEST_S3_KEY"],
                      aws_secret_access_key=os.environ["KITOPS_TEST_S3_SECRET"]),
    )
    defs = dg.Definitions(
        assets=[dataset, model], asset_checks=[modelkit_digest_check(dataset)],  # a step of its own, too
        jobs=[dg.define_asset_job("exec17_job", selection=[dataset, model], executor_def=dg.multiprocess_executor)],
        resources={"io_manager": ModelKitIOManager(kitops=kitops), "kitops": kitops},
    )
    return defs.resolve_job_def("exec17_job")
