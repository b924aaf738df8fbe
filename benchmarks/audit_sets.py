"""Audits of sets with a known share of members, drawn from a detector's own held-out test set.

From a detector checkpoint (trained with `data.calibration_size > 0`), rebuild its test set (images the
detector never saw: held-out members and non-members), write audited sets of N members, N
non-members and mixes as `.npz`, run `mint audit` on each, and print p-value, effect size and the
estimated member fraction beside the true one.

    python benchmarks/audit_sets.py --ckpt lightning_logs/mint_layer7/latest/checkpoints/best.ckpt \
        --out /tmp/audit_sets --sets m50 m200 m1000 n1000 mix500
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch

from mint.audit import run_audit
from mint.data import DetectorDataModule
from mint.records import DetectorRecord


def held_out(ckpt: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Member and non-member images (and labels) of the detector's test set, rebuilt from `ckpt`."""
    data = DetectorRecord.read(torch.load(ckpt, map_location="cpu", weights_only=True)).data
    sizes = data["requested_sizes"]
    dm = DetectorDataModule(
        train_size=sizes["train"], val_size=sizes["val"], test_size=sizes["test"],
        calibration_size=sizes["calibration"], balance=data["balance"], seed=data["seed"], cache_dir=None,
        target_ckpt=ckpt,
    )  # fmt: skip
    plan = dm.sets
    rows = plan.portions["test"]
    assert dm.manifest()["sets_sha256"]["test"] == data["sets_sha256"]["test"], "test set not rebuilt exactly"
    member = plan.members[rows].astype(bool)
    images, labels = plan.data.train.images[plan.pool[rows]], plan.labels[rows]
    return {"m": (images[member], labels[member]), "n": (images[~member], labels[~member])}


def make_set(name: str, pools: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """`m200`: 200 members; `n1000`: 1000 non-members; `mix500`: 500 of each (images, labels, share)."""
    kind, n = re.fullmatch(r"(m|n|mix)(\d+)", name).groups()

    def take(side: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        images, labels = pools[side]
        idx = rng.choice(len(labels), k, replace=False)
        return images[idx], labels[idx]

    if kind == "mix":
        (mi, ml), (ni, nl) = take("m", int(n)), take("n", int(n))
        return np.concatenate([mi, ni]), np.concatenate([ml, nl]), 0.5
    images, labels = take(kind, int(n))
    return images, labels, 1.0 if kind == "m" else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--sets", nargs="+", default=["m50", "m200", "m1000", "n1000", "mix500"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pools, out = held_out(args.ckpt), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    print(f"held-out test set: {len(pools['m'][1])} members, {len(pools['n'][1])} non-members")
    header = [
        "set",
        "images",
        "true member share",
        "p-value",
        "effect size (AUROC vs non-members)",
        "estimated share [95% CI]",
    ]
    print("| " + " | ".join(header) + " |\n" + "|" + " --- |" * len(header))
    for name in args.sets:
        images, labels, truth = make_set(name, pools, rng)
        np.savez(out / f"{name}.npz", images=images, labels=labels)
        s = run_audit(args.ckpt, str(out / f"{name}.npz"), str(out / name), overwrite=True, progress=False)
        f = s["member_fraction"]
        share = f"{f['fraction']:.2f} [{f['ci_low']:.2f}, {f['ci_high']:.2f}]"
        if f["raw"][1] < 0 or f["raw"][2] > 1:  # clipped to [0, 1]: show the unclipped interval too
            share += " (unclipped {:.2f} [{:.2f}, {:.2f}])".format(*f["raw"])
        print(f"| {name} | {s['n_audited']} | {truth:.2f} | {s['p_value']:.2g} | "
              f"{s['effect_size_auroc_vs_nonmembers']:.3f} | {share} |")  # fmt: skip


if __name__ == "__main__":
    main()
