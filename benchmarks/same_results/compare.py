"""Compare two runs of the same-results scripts: reports, scores, weights and records, bit for bit.

Every `test_results.json` (timings, paths and checkpoint hashes aside: a checkpoint file holds its own
paths), every `test_scores.npz`, the weights of every `best.ckpt` and a detector's records (sets,
image digests, calibration scores, manifest). Files are paired by their path below each folder (a
target run named `classifier_*` before issue 29 pairs with `target_*`).

    python benchmarks/same_results/compare.py BEFORE_FOLDER AFTER_FOLDER
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

from mint.records import DetectorRecord

LEFT_OUT = re.compile(r"seconds|_s$|mint_version|sha256")  # keys that differ between any two runs


def normalized(value, root: Path):
    """A report with the run's own folder, and the keys of `LEFT_OUT`, taken out."""
    if isinstance(value, dict):
        return {k: normalized(v, root) for k, v in value.items() if not LEFT_OUT.search(k)}
    if isinstance(value, list):
        return [normalized(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(str(root), "ROOT").replace("classifier_", "target_")
    return value


def same(x, y) -> bool:
    return json.dumps(x, sort_keys=True) == json.dumps(y, sort_keys=True)


def same_tensors(x: dict | None, y: dict | None) -> bool:
    if x is None or y is None:
        return x is y
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def same_checkpoints(f: Path, g: Path, a: Path, b: Path) -> bool:
    """The weights, and a detector's records (either layout), equal."""
    x, y = torch.load(f, weights_only=True), torch.load(g, weights_only=True)
    if not same_tensors(x["state_dict"], y["state_dict"]):
        return False
    rx, ry = DetectorRecord.read(x), DetectorRecord.read(y)
    if rx is None:
        return ry is None
    digests = rx.seen_digests is None or torch.equal(rx.seen_digests, ry.seen_digests)
    records = same_tensors(rx.calibration, ry.calibration) and same_tensors(rx.sets, ry.sets)
    return digests and records and same(normalized(rx.data, a), normalized(ry.data, b))


def main(a: Path, b: Path) -> int:
    def other(f: Path) -> Path:
        g = b / f.relative_to(a)
        return g if g.exists() else Path(str(g).replace("classifier_", "target_"))

    different = 0
    for pattern in ("test_results.json", "test_scores.npz", "best.ckpt"):
        for f in sorted(a.rglob(pattern)):
            g = other(f)
            if not g.exists():
                ok = False
            elif pattern.endswith(".json"):
                ok = same(normalized(json.loads(f.read_text()), a), normalized(json.loads(g.read_text()), b))
            elif pattern.endswith(".npz"):
                x, y = np.load(f), np.load(g)
                ok = x.files == y.files and all(np.array_equal(x[k], y[k]) for k in x.files)
            else:
                ok = same_checkpoints(f, g, a, b)
            different += not ok
            print(f"{'identical' if ok else 'DIFFERENT'}  {f.relative_to(a)}")
    audits = sorted(a.glob("audit_*/scores.csv"))
    for f in audits:
        ok = f.read_bytes() == other(f).read_bytes()
        different += not ok
        print(f"{'identical' if ok else 'DIFFERENT'}  {f.relative_to(a)}")
    print("ALL IDENTICAL" if different == 0 else f"{different} DIFFERENT")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
