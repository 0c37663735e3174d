"""kitops-flows: KitOps ModelKits as first-class outputs of Airflow, Prefect and Dagster."""

__version__ = "0.1.0"
