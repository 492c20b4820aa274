"""Score the model on the held-out split."""

import argparse
import csv
import json
import math
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--model", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

try:
    from orchestra.stage import log_metric
except ImportError:
    def log_metric(key, value, step=0):
        pass

model = json.loads((Path(args.model) / "model.json").read_text())
with open(Path(args.data) / "test.csv") as handle:
    reader = csv.reader(handle)
    next(reader)
    rows = [[float(x) for x in row] for row in reader]

errors = [sum(w * x for w, x in zip(model["weights"], row)) + model["bias"] - row[-1] for row in rows]
rmse = math.sqrt(sum(e * e for e in errors) / len(errors))
mae = sum(abs(e) for e in errors) / len(errors)
log_metric("rmse", rmse)
log_metric("mae", mae)
(Path(args.out) / "report.json").write_text(json.dumps({"rmse": rmse, "mae": mae, "alpha": model["alpha"]}, indent=2))
print(f"rmse={rmse:.4f} mae={mae:.4f}")
