"""Generate a small synthetic wine-quality-like dataset and split it (stdlib only)."""

import argparse
import csv
import random
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, required=True)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

rng = random.Random(args.seed)
rows = []
for _ in range(args.rows):
    acidity = rng.uniform(4, 16)
    sugar = rng.uniform(0.5, 15)
    alcohol = rng.uniform(8, 15)
    quality = 0.3 * alcohol - 0.2 * acidity + 0.05 * sugar + rng.gauss(0, 0.5) + 3
    rows.append((acidity, sugar, alcohol, quality))

split = int(len(rows) * 0.8)
out = Path(args.out)
for name, part in (("train.csv", rows[:split]), ("test.csv", rows[split:])):
    with open(out / name, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["acidity", "sugar", "alcohol", "quality"])
        writer.writerows(part)
print(f"wrote {split} training and {len(rows) - split} test rows")
