"""Coverage of the audit's member-share interval, on a trained detector's real calibration scores.

The detector checkpoint holds its scores of known members and non-members (`mint_calibration`).
They are split in two halves: one plays the calibration set, the other is the pool audited sets are
drawn from, with a known share of members. For each share, the script reports the mean clipped and
raw estimates, the coverage of the 95% interval (how often it contains the true share) and how often
the interval reaches 0 ("consistent with none").

    python benchmarks/fraction_coverage.py --ckpt lightning_logs/mint_layer7/latest/checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import time

import torch

from mint.audit.statistics import member_fraction_estimate
from mint.records import DetectorRecord


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="detector checkpoint with calibration scores")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.1, 0.5, 1.0])
    parser.add_argument("--set-size", type=int, default=200, help="images per audited set")
    parser.add_argument("--repeats", type=int, default=100, help="audited sets per share")
    parser.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples per interval")
    args = parser.parse_args()
    cal = DetectorRecord.read(torch.load(args.ckpt, map_location="cpu", weights_only=True)).calibration
    scores, members = cal["true_label"], cal["members"]
    gen = torch.Generator().manual_seed(0)
    halves = {}
    for side in (1, 0):
        s = scores[members == side][torch.randperm(int((members == side).sum()), generator=gen)]
        halves[side] = (s[: len(s) // 2], s[len(s) // 2 :])  # (calibration, audited pool)
    print(f"calibration {len(halves[1][0])} + {len(halves[0][0])}, pools {len(halves[1][1])} + "
          f"{len(halves[0][1])}, sets of {args.set_size}, {args.repeats} sets per share, "
          f"{args.n_boot} bootstrap resamples")  # fmt: skip
    print("| true share | mean estimate (clipped) | mean raw estimate | 95% interval coverage | reaches 0 |")
    print("| --- | --- | --- | --- | --- |")
    start = time.perf_counter()
    for share in args.shares:
        k = round(share * args.set_size)
        clipped, raw, covered, none = [], [], 0, 0
        for r in range(args.repeats):
            m = halves[1][1][torch.randint(len(halves[1][1]), (k,), generator=gen)]
            n = halves[0][1][torch.randint(len(halves[0][1]), (args.set_size - k,), generator=gen)]
            out = member_fraction_estimate(
                torch.cat([m, n]), halves[0][0], halves[1][0], n_boot=args.n_boot, seed=r
            )
            clipped.append(out["fraction"])
            raw.append(out["raw"][0])
            covered += out["ci_low"] <= share <= out["ci_high"]
            none += bool(out["consistent_with_none"])
        n_sets = args.repeats
        print(f"| {share:.2f} | {sum(clipped) / n_sets:.3f} | {sum(raw) / n_sets:.3f} | "
              f"{covered / n_sets:.2f} | {none / n_sets:.2f} |")  # fmt: skip
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
