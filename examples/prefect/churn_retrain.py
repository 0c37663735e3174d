"""Nightly retraining of the churn model as a Prefect flow, shipped as a KitOps ModelKit.

    download (S3) -> train -> pack + push -> evaluate (pull only the model layer) -> promote

* ``download_dataset`` fetches the training CSV from S3 (boto3) for training.
* ``pack_modelkit`` builds the ModelKit: the trained model, the dataset *streamed from S3* (no
  second copy; its ETag lands in the provenance), the training code and a README. The flow run,
  task run and deployment are recorded too. The pack is cached on content: when neither the data
  nor the code changed, the re-run returns the ModelKit already in the registry (task ``Cached``).
* ``evaluate`` pulls only the model layer of the pushed ModelKit, by digest, and scores it.
* ``promote_modelkit`` moves ``staging`` to it, and ``production`` when it is accurate enough;
  the ``kitops.modelkit.promoted`` event can trigger the ``churn-serve`` deployment.

Run it once against a local registry and S3-compatible store::

    prefect block register -m kitops_flows_prefect
    python -c "from kitops_flows_prefect import KitOpsRegistry as R; \\
               R(registry='http://127.0.0.1:5000', repository='team/churn').save('kitops-registry')"
    python -m examples.prefect.churn_retrain --once

Serve it on its schedule (03:00 every day): ``python -m examples.prefect.churn_retrain``, or deploy it
to a work pool (``prefect work-pool create kitops-examples --type process``, then
``prefect deploy --all --prefect-file examples/prefect/prefect.yaml`` and
``prefect worker start --pool kitops-examples``). S3 credentials and endpoint come from boto3's chain
(``AWS_*`` env vars, ``AWS_ENDPOINT_URL_S3``); the kitops tasks use an ``AwsCredentials`` block instead
when it is set as the ``KitOpsRegistry`` block's ``aws_credentials``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run

from examples.churn import model as churn
from kitops_flows.api import ModelKitDescriptor
from kitops_flows_prefect import KitOpsRegistry, pack_modelkit, promote_modelkit, pull_modelkit_layer

CHURN_DIR = Path(churn.__file__).resolve().parent
DATASET_URI = os.environ.get("CHURN_DATASET_URI", "s3://ml-data/churn/train.csv")
WORK_DIR = os.environ.get("CHURN_WORK_DIR", str(Path(tempfile.gettempdir()) / "churn-prefect"))
REGISTRY_BLOCK = os.environ.get("CHURN_REGISTRY_BLOCK", "kitops-registry")
SCHEDULE = "0 3 * * *"


@task
def download_dataset(dataset_uri: str, job_dir: Path) -> Path:
    """The day's training data, downloaded from S3 for training (the ModelKit streams it separately)."""
    import boto3

    bucket, _, key = dataset_uri.removeprefix("s3://").partition("/")
    local = job_dir / "cache" / Path(key).name
    local.parent.mkdir(parents=True, exist_ok=True)
    boto3.client("s3").download_file(bucket, key, str(local))
    return local


@task
def train(dataset: Path, job_dir: Path) -> Path:
    """Train, then lay out the pack context: Kitfile, model/, src/ (the training code), README.md."""
    context = job_dir / "modelkit"
    churn.train(dataset, context / "model")
    shutil.rmtree(context / "src", ignore_errors=True)
    shutil.copytree(CHURN_DIR, context / "src", ignore=shutil.ignore_patterns("__pycache__", "*.template"))
    (context / "README.md").write_text("# churn\nLogistic regression on customer data, retrained nightly.\n")
    shutil.copyfile(CHURN_DIR / "Kitfile.template", context / "Kitfile")
    return context


@task
def evaluate(modelkit: ModelKitDescriptor, dataset: Path, registry: KitOpsRegistry | str) -> float:
    """Accuracy of the *pushed* model: pull only its model layer (by digest) and score it."""
    with tempfile.TemporaryDirectory() as tmp:
        pulled = pull_modelkit_layer(modelkit, tmp, layers=["model"], registry=registry)
        return churn.evaluate(pulled.paths[0] / "model.json", dataset)


@flow(name="churn-retrain", log_prints=True)
def churn_retrain(
    dataset_uri: str = DATASET_URI,
    registry: KitOpsRegistry | str = REGISTRY_BLOCK,
    tag: str = "candidate",
    min_accuracy: float = 0.7,
    work_dir: str = WORK_DIR,
) -> dict[str, Any]:
    """Retrain on ``dataset_uri``, push ``:<tag>`` to the block's repository, evaluate, promote."""
    job = Path(work_dir) / str(flow_run.id or "local")
    dataset = download_dataset(dataset_uri, job)
    context = train(dataset, job)
    mk = pack_modelkit(context, f":{tag}", registry=registry, sources={"train": dataset_uri}, push=True)
    accuracy = evaluate(mk, dataset, registry)
    stages = ["staging"] + (["production"] if accuracy >= min_accuracy else [])
    for stage in stages:
        promote_modelkit(mk, stage, registry=registry)
    print(f"{mk.pinned}: accuracy {accuracy:.3f}, promoted to {', '.join(stages)}")
    shutil.rmtree(job, ignore_errors=True)
    return {"pinned": mk.pinned, "accuracy": accuracy, "stages": stages}


if __name__ == "__main__":
    if "--once" in sys.argv:
        churn_retrain()
    else:  # a long-running process that runs the flow on its schedule (Ctrl-C to stop)
        churn_retrain.serve(name="nightly", cron=SCHEDULE, tags=["kitops", "example"])
