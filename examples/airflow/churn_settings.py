"""Settings shared by the two example DAGs, read from the environment at parse time.

The asset (the ModelKit repository) must be known when the DAGs are parsed, so the repository
comes from ``CHURN_MODELKIT_REPO``; everything else can also be overridden per run with params.

    CHURN_MODELKIT_REPO   registry/repository of the ModelKit   (127.0.0.1:5000/team/churn)
    CHURN_DATASET_URI     the training data in S3                (s3://ml-data/churn/train.csv)
    CHURN_WORK_DIR        where training jobs lay out their files (<tmp>/churn-jobs)
    CHURN_SERVE_DIR       where the deploy DAG serves the model   (<tmp>/churn-serve)
    KITOPS_CONN_ID        the kitops connection                  (kitops_default)

S3 credentials and endpoint come from boto3's usual chain (``AWS_*`` env vars, ``AWS_ENDPOINT_URL_S3``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent.parent
# The churn model lives next door, in examples/churn. Appended, not prepended: examples/ also holds folders
# named airflow/, prefect/ and dagster/, which must never shadow the installed packages of those names.
if str(EXAMPLES_DIR) not in sys.path:
    sys.path.append(str(EXAMPLES_DIR))

CHURN_CODE_DIR = EXAMPLES_DIR / "churn"
MODELKIT_REPO = os.environ.get("CHURN_MODELKIT_REPO", "127.0.0.1:5000/team/churn")
DATASET_URI = os.environ.get("CHURN_DATASET_URI", "s3://ml-data/churn/train.csv")
WORK_DIR = os.environ.get("CHURN_WORK_DIR", str(Path(tempfile.gettempdir()) / "churn-jobs"))
SERVE_DIR = os.environ.get("CHURN_SERVE_DIR", str(Path(tempfile.gettempdir()) / "churn-serve"))
CONN_ID = os.environ.get("KITOPS_CONN_ID", "kitops_default")
