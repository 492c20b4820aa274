"""Standardise the features with the training set's mean and deviation."""

import argparse
import csv
import json
import statistics
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()


def read(name):
    with open(Path(args.data) / name) as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, [[float(x) for x in row] for row in reader]


header, train = read("train.csv")
_, test = read("test.csv")
columns = len(header) - 1
stats = [(statistics.fmean(r[i] for r in train), statistics.pstdev(r[i] for r in train) or 1.0) for i in range(columns)]
for name, rows in (("train.csv", train), ("test.csv", test)):
    with open(Path(args.out) / name, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([round((row[i] - m) / s, 6) for i, (m, s) in enumerate(stats)] + [row[-1]])
print("scaled", columns, "features:", json.dumps([round(m, 3) for m, _ in stats]))
