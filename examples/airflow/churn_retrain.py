"""Daily retraining of the churn model, packed as a KitOps ModelKit.

    fetch_dataset -> train -> pack -> evaluate -> improved? -> push -> promote(staging)

* ``fetch_dataset`` downloads the day's data from S3 (boto3) for training.
* ``pack`` builds the ModelKit from arguments: the trained model, the dataset *streamed from S3*
  (no second local copy), the training code and a README. The Airflow run (dag, run, task, try,
  logical date) and the S3 object version are recorded in its provenance.
* ``evaluate`` scores the new model and the one currently in ``staging`` on the same data; only a
  better model is pushed (the push emits an asset event for ``oci://<registry>/team/churn``, which
  schedules ``churn_deploy``) and promoted to ``staging``.

Same inputs, same ModelKit: a re-run of a logical date (or a retry on another worker) packs the same
digest, and its push uploads nothing and emits no asset event (the event goes through
``modelkit_alias``, only for a digest new to the repository), also with immutable tags.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task
from churn_settings import CHURN_CODE_DIR, CONN_ID, DATASET_URI, MODELKIT_REPO, WORK_DIR

from kitops_flows_airflow import KitPackOperator, KitPromoteOperator, KitPushOperator, modelkit_alias

# events go through the alias only when a digest is new to the repository (churn_deploy is scheduled
# on modelkit_asset(MODELKIT_REPO), which the alias resolves to)
NEW_CHURN_VERSIONS = modelkit_alias(MODELKIT_REPO)

with DAG(
    dag_id="churn_retrain",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"dataset_uri": Param(DATASET_URI, type="string"), "work_dir": Param(WORK_DIR, type="string")},
    tags=["kitops", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def fetch_dataset(params: dict[str, Any], run_id: str) -> dict[str, str]:
        """Download the training data from S3 into this run's job directory."""
        import boto3

        bucket, _, key = params["dataset_uri"].removeprefix("s3://").partition("/")
        job = Path(params["work_dir"]) / run_id.replace(":", "_").replace("+", "_")
        local = job / "cache" / Path(key).name
        local.parent.mkdir(parents=True, exist_ok=True)
        boto3.client("s3").download_file(bucket, key, str(local))
        return {"job_dir": str(job), "dataset": str(local)}

    @task
    def train(fetched: dict[str, str]) -> dict[str, str]:
        """Train, and lay out the pack context: model/, src/ (the training code) and README.md."""
        from churn.model import train as fit

        job = Path(fetched["job_dir"])
        fit(Path(fetched["dataset"]), job / "model")
        shutil.rmtree(job / "src", ignore_errors=True)
        shutil.copytree(CHURN_CODE_DIR, job / "src", ignore=shutil.ignore_patterns("__pycache__", "*.template"))
        (job / "README.md").write_text("# churn\nLogistic regression on customer data, retrained daily.\n")
        return {"job_dir": str(job), "dataset": fetched["dataset"]}

    trained = train(fetch_dataset())

    pack = KitPackOperator(
        task_id="pack",
        kitops_conn_id=CONN_ID,
        context_dir="{{ ti.xcom_pull(task_ids='train')['job_dir'] }}",
        model="model",
        datasets={"train": "{{ params.dataset_uri }}"},
        code=["src"],
        docs=["README.md"],
        package={"name": "churn", "description": "Customer churn classifier", "authors": ["ML Platform"]},
        reference=f"{MODELKIT_REPO}:{{{{ ts_nodash }}}}",
    )
    trained >> pack

    @task
    def evaluate(packed: dict[str, Any], job: dict[str, str]) -> dict[str, Any]:
        """Accuracy of the new model vs the model in staging (if any), on today's data."""
        from churn.model import evaluate as score

        from kitops_flows.errors import NotFoundError
        from kitops_flows_airflow import KitOpsHook

        dataset = Path(job["dataset"])
        accuracy = score(Path(job["job_dir"]) / "model" / "model.json", dataset)
        baseline = None
        kit = KitOpsHook(CONN_ID).get_client()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                result = kit.pull_layer(f"{MODELKIT_REPO}:staging", ["model"], tmp)
                baseline = score(result.paths[0] / "model.json", dataset)
            except NotFoundError:
                pass  # nothing in staging yet: any model is an improvement
        return {"pinned": packed["pinned"], "accuracy": accuracy, "baseline": baseline,
                "improved": baseline is None or accuracy > baseline}

    @task.short_circuit
    def improved(metrics: dict[str, Any]) -> bool:
        return bool(metrics["improved"])

    push = KitPushOperator(
        task_id="push",
        kitops_conn_id=CONN_ID,
        source="{{ ti.xcom_pull(task_ids='pack')['reference'] }}",
        outlets=[NEW_CHURN_VERSIONS],  # the reference is templated, so declare where it pushes
    )
    promote = KitPromoteOperator(
        task_id="promote",
        kitops_conn_id=CONN_ID,
        reference="{{ ti.xcom_pull(task_ids='push')['pinned'] }}",
        stage="staging",
    )
    improved(evaluate(pack.output, trained)) >> push >> promote
