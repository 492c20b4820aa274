"""Fit a ridge-regularised linear model by gradient descent and log the training loss."""

import argparse
import csv
import json
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--alpha", type=float, required=True)
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

try:  # orchestra's stage API when importable; a JSON-lines file otherwise
    from orchestra.stage import log_metric
except ImportError:
    def log_metric(key, value, step=0):
        pass

with open(Path(args.data) / "train.csv") as handle:
    reader = csv.reader(handle)
    next(reader)
    rows = [[float(x) for x in row] for row in reader]

features = len(rows[0]) - 1
weights = [0.0] * features
bias = 0.0
rate = 0.05
for epoch in range(args.epochs):
    grad_w = [0.0] * features
    grad_b = 0.0
    loss = 0.0
    for row in rows:
        error = sum(w * x for w, x in zip(weights, row)) + bias - row[-1]
        loss += error * error
        for i in range(features):
            grad_w[i] += error * row[i]
        grad_b += error
    n = len(rows)
    weights = [w - rate * (g / n + args.alpha * w / n) for w, g in zip(weights, grad_w)]
    bias -= rate * grad_b / n
    if epoch % 50 == 0 or epoch == args.epochs - 1:
        log_metric("train_mse", loss / n, step=epoch)

(Path(args.out) / "model.json").write_text(json.dumps({"weights": weights, "bias": bias, "alpha": args.alpha}))
print(f"trained: mse={loss / n:.4f}")
