"""Dagster example: daily churn retraining whose every asset is a ModelKit version (see definitions.py)."""
