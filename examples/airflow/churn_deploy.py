"""Deploy each new churn ModelKit: scheduled on the ModelKit repository's asset.

When ``churn_retrain`` pushes a better model, the push's asset event (digest and tag in its
``extra``) starts this DAG. ``pull_model`` unpacks *only the model layer* of exactly that digest
(the dataset and code layers are never downloaded) into a release directory; ``deploy`` switches
``<serve_dir>/current`` to it atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task
from churn_settings import CONN_ID, MODELKIT_REPO, SERVE_DIR

from kitops_flows_airflow import KitUnpackOperator, modelkit_asset

CHURN_MODELKIT = modelkit_asset(MODELKIT_REPO)

with DAG(
    dag_id="churn_deploy",
    schedule=[CHURN_MODELKIT],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"serve_dir": Param(SERVE_DIR, type="string")},
    tags=["kitops", "example"],
    doc_md=__doc__,
) as dag:
    pull_model = KitUnpackOperator(
        task_id="pull_model",
        kitops_conn_id=CONN_ID,
        asset=CHURN_MODELKIT,  # reference=None: the digest of the event that triggered this run
        filters=["model"],
        dest="{{ params.serve_dir }}/releases/{{ run_id | replace(':', '_') | replace('+', '_') }}",
        kitops_home="{{ params.serve_dir }}/.kitops",  # the serving host's own ModelKit cache
    )

    @task
    def deploy(unpacked: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
        """Point ``current`` at the new release (a symlink swap: readers never see a half model)."""
        serve = Path(params["serve_dir"])
        release = Path(unpacked["paths"][0])
        (release / "DEPLOYED_DIGEST").write_text(unpacked["digest"] + "\n")
        json.loads((release / "model.json").read_text())  # refuse to serve a model that does not load
        tmp_link = serve / ".current.tmp"
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(release, target_is_directory=True)
        os.replace(tmp_link, serve / "current")
        return {"digest": unpacked["digest"], "pinned": unpacked["pinned"], "served": str(serve / "current")}

    deploy(pull_model.output)
