"""A tiny churn model shared by every example: synthetic data, pure-Python training, evaluation.

Kept dependency-free on purpose so the examples run anywhere the orchestrators do.
"""
