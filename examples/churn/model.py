"""Synthetic churn data, a logistic-regression trainer and an evaluator (stdlib only)."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

FEATURES = ("tenure_months", "monthly_spend", "support_calls")


def make_dataset(path: Path, rows: int = 2000, seed: int = 7) -> Path:
    """Write a CSV of synthetic customers; churn is more likely with short tenure and many support calls."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*FEATURES, "churned"])
        for _ in range(rows):
            tenure = rng.randint(1, 72)
            spend = round(rng.uniform(10, 120), 2)
            calls = rng.randint(0, 9)
            logit = 1.5 - 0.06 * tenure + 0.01 * spend + 0.45 * calls
            churned = int(rng.random() < 1 / (1 + math.exp(-logit)))
            w.writerow([tenure, spend, calls, churned])
    return path


def _load(path: Path) -> tuple[list[list[float]], list[int]]:
    xs, ys = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            xs.append([float(row[k]) for k in FEATURES])
            ys.append(int(row["churned"]))
    return xs, ys


def train(dataset: Path, out_dir: Path, epochs: int = 200, lr: float = 0.05) -> Path:
    """Fit logistic regression by batch gradient descent on standardised features; write model.json."""
    xs, ys = _load(dataset)
    n = len(xs)
    means = [sum(x[j] for x in xs) / n for j in range(len(FEATURES))]
    stds = [math.sqrt(sum((x[j] - means[j]) ** 2 for x in xs) / n) or 1.0 for j in range(len(FEATURES))]
    zs = [[(x[j] - means[j]) / stds[j] for j in range(len(FEATURES))] for x in xs]
    w, b = [0.0] * len(FEATURES), 0.0
    for _ in range(epochs):
        gw, gb = [0.0] * len(FEATURES), 0.0
        for z, y in zip(zs, ys, strict=True):
            p = 1 / (1 + math.exp(-(sum(wi * zi for wi, zi in zip(w, z, strict=True)) + b)))
            for j in range(len(FEATURES)):
                gw[j] += (p - y) * z[j]
            gb += p - y
        w = [wi - lr * g / n for wi, g in zip(w, gw, strict=True)]
        b -= lr * gb / n
    out_dir.mkdir(parents=True, exist_ok=True)
    model = {"features": list(FEATURES), "means": means, "stds": stds, "weights": w, "bias": b}
    path = out_dir / "model.json"
    path.write_text(json.dumps(model, indent=2))
    return path


def predict(model: dict, row: list[float]) -> float:
    z = [(v - m) / s for v, m, s in zip(row, model["means"], model["stds"], strict=True)]
    return 1 / (1 + math.exp(-(sum(w * x for w, x in zip(model["weights"], z, strict=True)) + model["bias"])))


def evaluate(model_path: Path, dataset: Path) -> float:
    """Accuracy of the model on a dataset."""
    model = json.loads(model_path.read_text())
    xs, ys = _load(dataset)
    correct = sum(int((predict(model, x) >= 0.5) == bool(y)) for x, y in zip(xs, ys, strict=True))
    return correct / len(xs)
