"""The DAG the Airflow LocalExecutor test writes into its DAGs folder (this file is a template: see SETTINGS).

``pack_push`` streams an S3 object (credentials only in the ``aws_live`` connection) into a ModelKit and
pushes it; ``unpack`` takes ``pack_push.output["pinned"]`` (an XCom of its own under a real scheduler) and
fetches the dataset layer into its own store; ``pack_local`` packs without pushing and ``push_elsewhere``,
on another store, fails naming the cause. Every task has the store ``<stores>/{task_id}``.
"""

import pendulum
from airflow.sdk import DAG

from kitops_flows_airflow.operators import (
    KitPackOperator,
    KitPromoteOperator,
    KitPushOperator,
    KitUnpackOperator,
)

SETTINGS = {"stores": "", "s3_uri": "", "dest": "", "ctx": ""}  # replaced by the test when it writes the DAG file
HOME = SETTINGS["stores"] + "/{task_id}"
COMMON = {"kitops_conn_id": "kitops_live", "kitops_home": HOME, "retries": 0}

with DAG("kitops_live", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    pack = KitPackOperator(task_id="pack_push", context_dir=SETTINGS["ctx"] + "/push", datasets={"train": SETTINGS["s3_uri"]}, reference=":live",
                           push=True, aws_conn_id="aws_live", **COMMON)
    unpack = KitUnpackOperator(task_id="unpack", reference=pack.output["pinned"], filters=["datasets"],
                               dest=SETTINGS["dest"], **COMMON)
    local = KitPackOperator(task_id="pack_local", context_dir=SETTINGS["ctx"] + "/local", datasets={"train": SETTINGS["s3_uri"]}, reference=":local",
                            aws_conn_id="aws_live", **COMMON)
    push = KitPushOperator(task_id="push_elsewhere", source=local.output["reference"], **COMMON)
    # no kitops_default connection exists: the local store and default credentials, as the Amazon provider does
    KitPackOperator(task_id="pack_no_connection", context_dir=SETTINGS["ctx"] + "/local",
                    datasets={"train": SETTINGS["s3_uri"]}, reference="local/churn:v1", aws_conn_id="aws_live",
                    kitops_home=HOME, retries=0)
    promote = KitPromoteOperator(task_id="promote", reference=pack.output["pinned"], stage="staging", **COMMON)
    pack >> [unpack, promote]
    local >> push
