"""S3 access with an Airflow AWS connection (``aws_conn_id``), through the Amazon provider's ``AwsBaseHook``.

Every operator takes ``aws_conn_id``; its credentials, role, region, endpoint URL and botocore config
then apply to ``s3://`` datasets and sources, as they do for the Amazon provider's own operators::

    KitPackOperator(task_id="pack", ..., datasets={"train": "s3://ml-data/churn/{{ ds }}/"},
                    aws_conn_id="aws_ml_data", push=True)

``None`` (the default) keeps boto3's default credential chain. ``apache-airflow-providers-amazon`` is
needed only when a connection is named (it is in the ``airflow`` extra).
"""

from __future__ import annotations

from typing import Any

from kitops_flows.aws import S3ClientFactory, merged_config
from kitops_flows.errors import KitopsError


def s3_client_factory(aws_conn_id: str | None) -> S3ClientFactory | None:
    """S3 clients from the connection ``aws_conn_id`` (None: no factory, boto3's default chain)."""
    if not aws_conn_id:
        return None
    try:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    except ImportError as e:
        raise KitopsError(
            f"aws_conn_id={aws_conn_id!r} needs apache-airflow-providers-amazon: pip install 'kitops-flows[airflow]'"
        ) from e
    hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3")

    def make(config: Any) -> Any:
        return hook.get_client_type(config=merged_config(config, hook.conn_config.botocore_config))

    return S3ClientFactory(make, f"Airflow connection {aws_conn_id!r}")


__all__ = ["s3_client_factory"]
