"""The white-box gain: what the detector adds over the strongest black-box attack, with intervals.

A white-box detector reads the target's layers (and gradients) besides its outputs; the gain is
what that buys over the best black-box attack on the same test images (thresholds and learned
attacks, which read only the outputs and the label). The best one is chosen *on the test set
itself*, which flatters the black-box side, so the gain is never overstated. Intervals come from a
paired bootstrap: members and non-members resampled separately, both scorers on the same resample.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mint.evaluation.metrics import _rank_auroc, auroc, tpr_at_fpr

LEVEL = 0.01  # the field's low-FPR headline


def _tpr(pos: Tensor, neg: Tensor, k: int) -> float:
    """TPR at the (k + 1)-th highest non-member score (as `tpr_ci`): at most k false positives."""
    return float((pos > torch.topk(neg, k + 1).values[-1]).double().mean())


def _ratio(a: float, b: float) -> float | None:
    """The ratio a / b, or None where undefined (NaN, or b = 0: a black-box attack that finds nobody)."""
    return a / b if b > 0 and not math.isnan(a) else None


def white_box_gain(
    scores: Tensor,
    members: Tensor,
    names: tuple[str, ...],
    black_box: tuple[str, ...],
    detector: str = "mint",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """AUROC difference and TPR@1%FPR ratio of `detector` over the best of `black_box`, with 95% intervals.

    Args:
        scores: (N, len(names)) test scores, column j of scorer `names[j]`.
        members: membership (N,) 0/1.
        names: the scorers' names.
        black_box: the names that count as black-box attacks.
        detector: the white-box scorer's name.
        n_boot: bootstrap resamples.
        seed: seed of the resampling.
    """
    members = members.long().cpu()
    col = {n: scores[:, j].double().cpu() for j, n in enumerate(names)}
    candidates = [n for n in black_box if n in col]
    best = max(candidates, key=lambda n: auroc(col[n], members))
    m, b = col[detector], col[best]
    point_tpr = (tpr_at_fpr(m, members, LEVEL), tpr_at_fpr(b, members, LEVEL))
    pos, neg = members == 1, members == 0
    mp, mn, bp, bn = m[pos], m[neg], b[pos], b[neg]
    resolvable = not math.isnan(point_tpr[0])
    k = math.floor(LEVEL * len(mn) + 1e-9)
    gen = torch.Generator().manual_seed(seed)
    diffs = torch.empty(n_boot, dtype=torch.float64)
    ratios = torch.empty(n_boot, dtype=torch.float64)
    for i in range(n_boot):
        p = torch.randint(len(mp), (len(mp),), generator=gen)  # the same images for both scorers
        q = torch.randint(len(mn), (len(mn),), generator=gen)
        diffs[i] = _rank_auroc(mp[p], mn[q]) - _rank_auroc(bp[p], bn[q])
        if resolvable:
            r = _ratio(_tpr(mp[p], mn[q], k), _tpr(bp[p], bn[q], k))
            ratios[i] = math.inf if r is None else r
    bounds = torch.tensor([0.025, 0.975], dtype=torch.float64)
    lo, hi = torch.quantile(diffs, bounds).tolist()
    out = {
        "against": best,
        "auroc": auroc(m, members) - auroc(b, members),
        "auroc_ci95": [lo, hi],
        "tpr@1%fpr": list(point_tpr),
        "tpr@1%fpr_ratio": _ratio(*point_tpr) if resolvable else None,
        "tpr@1%fpr_ratio_ci95": [None, None],
        "chosen_on": "test set (flatters the black-box side)",
    }
    if resolvable:  # order statistics, not interpolation: a resample whose black-box TPR is 0 is +inf
        low = torch.quantile(ratios, 0.025, interpolation="lower").item()
        high = torch.quantile(ratios, 0.975, interpolation="higher").item()
        out["tpr@1%fpr_ratio_ci95"] = [v if math.isfinite(v) else None for v in (low, high)]
    return out
