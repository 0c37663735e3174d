"""Pipelines run by the executor tests on real multi-process/multi-worker executors (importable by workers)."""
