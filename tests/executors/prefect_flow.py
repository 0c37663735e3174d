"""A Prefect flow for the DaskTaskRunner test: tasks on a ``distributed.LocalCluster`` of worker processes.

``pack_modelkit`` streams an S3 object (credentials only in the block's ``AwsCredentials``) into a pushed
ModelKit; ``pull_modelkit_layer`` fetches its dataset layer and ``promote_modelkit`` moves ``staging`` to it, each on a
worker with another empty store; a pack
that does not push followed by ``push_modelkit`` fails with the error naming the cause.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from prefect import flow, task
from prefect_dask import DaskTaskRunner

from kitops_flows_prefect import (
    KitOpsRegistry,
    pack_modelkit,
    promote_modelkit,
    pull_modelkit_layer,
    push_modelkit,
)


@task
def worker_pid() -> int:
    time.sleep(1)  # busy long enough that the scheduler hands the next ones to the other worker
    return os.getpid()


def dask_flow(block: KitOpsRegistry, context_dir: str, s3_uri: str, dest: str) -> dict:
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True,
                                            "dashboard_address": None})

    @flow(name="kitops-dask", task_runner=runner)
    def kitops_dask() -> dict:
        pids = [worker_pid.submit() for _ in range(4)]
        mk = pack_modelkit.submit(context_dir, ":dask", registry=block, sources={"train": s3_uri}, push=True)
        pulled = pull_modelkit_layer.submit(mk, dest, layers=["datasets"], registry=block)
        promoted = promote_modelkit.submit(mk, "staging", registry=block)
        local = pack_modelkit.submit(context_dir, ":not-pushed", registry=block, sources={"train": s3_uri})
        push = push_modelkit.with_options(retries=0).submit(local, registry=block)
        return {"pids": [p.result() for p in pids], "pinned": mk.result().pinned,
                "pulled": [str(p) for p in pulled.result().paths], "promoted": promoted.result().digest,
                "push_error": str(push.result(raise_on_failure=False))}

    return kitops_dask()


def write_context(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: churn}\n"
                                  "datasets:\n  - {name: train, path: train.json}\n")
    return path
