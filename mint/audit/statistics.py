"""Set-level membership evidence: "was this collection of images used to train the model?".

Per-image scores are noisy, but a whole set's scores can be compared with the scores of images known
not to be members (calibration non-members held out from the detector's training):

- a one-sided Mann-Whitney U test (audited scores stochastically larger than non-members'), with
  the normal approximation and tie correction, gives a p-value;
- its effect size is the AUROC of audited set vs non-members (0.5 = no difference);
- the fraction of the set that was in training follows from a two-component mixture: if a share pi
  of the set are members, AUROC(set, non-members) = pi * AUROC(members, non-members) + (1 - pi) / 2,
  so pi = (AUROC_set - 0.5) / (AUROC_members - 0.5), with a bootstrap confidence interval;
- whether the detector separates known members from non-members at all: the calibration AUROC with
  DeLong's confidence interval (`auroc_interval`). An audit whose interval reaches 0.5 concludes nothing.

Every function here refuses NaN or infinite scores (`MintError`): a NaN ranks anywhere, so a p-value
or a share computed from one is silently wrong.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mint.errors import check_finite


def _average_ranks(values: Tensor) -> tuple[Tensor, Tensor]:
    """1-based average ranks (ties share the mean rank) and the tie-group sizes."""
    _, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    upper = torch.cumsum(counts, 0).double()
    return (upper - (counts.double() - 1) / 2)[inverse], counts.double()


def mann_whitney_greater(x: Tensor, y: Tensor) -> dict[str, float]:
    """One-sided test that scores `x` tend to exceed scores `y`.

    Returns the U statistic of `x`, the effect size AUROC = U / (n_x n_y) (ties count one half) and
    the p-value of the normal approximation with tie correction and continuity correction: equal to
    `scipy.stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic")` (a test checks it).
    """
    x, y = x.double().flatten(), y.double().flatten()
    nx, ny = len(x), len(y)
    if nx == 0 or ny == 0:
        raise ValueError(f"both samples need scores (got {nx} and {ny})")
    check_finite("the scores compared (first sample)", x)
    check_finite("the scores compared (second sample)", y)
    ranks, ties = _average_ranks(torch.cat([x, y]))
    u = float(ranks[:nx].sum()) - nx * (nx + 1) / 2
    n = nx + ny
    variance = nx * ny / 12 * ((n + 1) - float((ties**3 - ties).sum()) / (n * (n - 1)))
    if variance <= 0:  # every score tied: no evidence either way
        return {"u": u, "auroc": u / (nx * ny), "z": 0.0, "p_value": 1.0}
    z = (u - nx * ny / 2 - 0.5) / math.sqrt(variance)
    return {"u": u, "auroc": u / (nx * ny), "z": z, "p_value": 0.5 * math.erfc(z / math.sqrt(2))}


def member_fraction_estimate(
    audited: Tensor,
    nonmembers: Tensor,
    members: Tensor,
    n_boot: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Estimate the share of the audited set that was in training, with a bootstrap interval.

    Args:
        audited: scores of the audited images.
        nonmembers: scores of known non-members (calibration).
        members: scores of known members (calibration), to know how well the detector separates.
        n_boot: bootstrap resamples (of all three samples) for the interval.
        level: confidence level of the interval.
        seed: seed of the resampling.
    """
    for name, scores in (("audited", audited), ("non-member", nonmembers), ("member", members)):
        check_finite(f"the {name} scores", scores)  # once here: the bootstrap's resamples hold no others

    def estimate(a: Tensor, nm: Tensor, m: Tensor) -> float:
        separation = mann_whitney_greater(m, nm)["auroc"] - 0.5
        if separation <= 0:
            return float("nan")
        return (mann_whitney_greater(a, nm)["auroc"] - 0.5) / separation

    point = estimate(audited, nonmembers, members)
    gen = torch.Generator().manual_seed(seed)

    def resample(t: Tensor) -> Tensor:
        return t[torch.randint(len(t), (len(t),), generator=gen)]

    boots = torch.tensor(
        [estimate(resample(audited), resample(nonmembers), resample(members)) for _ in range(n_boot)]
    )
    return _fraction_record(point, boots[~boots.isnan()], level)


def _fraction_record(point: float, boots: Tensor, level: float) -> dict[str, float]:
    """The estimate `point` with the `level` interval of its bootstrap values `boots` (NaNs dropped)."""
    if len(boots) == 0:
        nan = float("nan")
        return {
            "fraction": point,
            "ci_low": nan,
            "ci_high": nan,
            "raw": [point, nan, nan],
            "consistent_with_none": None,
        }
    lo, hi = torch.quantile(
        boots.double(), torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    )
    clip = lambda v: min(max(float(v), 0.0), 1.0)  # noqa: E731  (a share lies in [0, 1])
    # `raw`: before clipping. Above 1, the set scores higher than the known members (all members, and
    # a detector that separates this set better than its calibration set); below 0, lower than non-members.
    # The clipped point estimate is biased away from 0 and 1 (at a true 0% it averaged 5-13%): the
    # raw estimate is reported beside it, and an interval reaching 0 is read as "consistent with none".
    return {
        "fraction": clip(point) if point == point else point,
        "ci_low": clip(lo),
        "ci_high": clip(hi),
        "raw": [point, float(lo), float(hi)],
        "consistent_with_none": bool(lo <= 0),
    }


def auroc_interval(members: Tensor, nonmembers: Tensor, level: float = 0.95) -> dict[str, float]:
    """AUROC of `members` vs `nonmembers` scores with DeLong's confidence interval.

    DeLong et al. (1988): the AUROC is a two-sample U statistic, and its variance follows from each
    score's share of the other sample it beats (its "placement"), var = s2(V10) / n_m + s2(V01) / n_n.
    Chosen over a bootstrap (hundreds of sorts, a seed) and Hanley-McNeil (which assumes the scores'
    distributions, and misstates the variance when they differ): it assumes nothing about the scores,
    is deterministic and costs one sort of each sample (milliseconds for 10^5 scores). The interval is
    the normal one, AUROC +- z SE, clipped to [0, 1].

    Args:
        members: scores of known members.
        nonmembers: scores of known non-members.
        level: confidence level of the interval.

    Returns:
        `auroc`, `ci_low`, `ci_high`, `se`, and `method` ("DeLong").
    """
    x, y = members.double().flatten(), nonmembers.double().flatten()
    nx, ny = len(x), len(y)
    if nx < 2 or ny < 2:
        raise ValueError(f"an AUROC interval needs at least 2 scores a side (got {nx} and {ny})")
    check_finite("the member scores", x)
    check_finite("the non-member scores", y)
    combined, _ = _average_ranks(torch.cat([x, y]))
    # A score's rank among both samples minus its rank within its own: how many of the other sample
    # lie below it (ties count one half).
    v10 = (combined[:nx] - _average_ranks(x)[0]) / ny  # share of non-members below each member
    v01 = 1 - (combined[nx:] - _average_ranks(y)[0]) / nx  # share of members above each non-member
    auroc = float(v10.mean())
    se = math.sqrt(float(v10.var()) / nx + float(v01.var()) / ny)
    z = float(torch.special.ndtri(torch.tensor((1 + level) / 2, dtype=torch.float64)))
    return {
        "auroc": auroc,
        "ci_low": max(auroc - z * se, 0.0),
        "ci_high": min(auroc + z * se, 1.0),
        "se": se,
        "level": level,
        "method": "DeLong",
    }


def target_accuracy(predicted: Tensor, labels: Tensor, members: Tensor, num_classes: int) -> dict:
    """The target's accuracy on known members and non-members, and whether it is no better than chance.

    "At chance": the accuracy over both is not above 1 / `num_classes` by a one-sided binomial test at
    the 5% level (normal approximation). Such a target learned little, so there is little memorization
    for a detector to find. Images without a label (negative) are left out.
    """
    known = labels >= 0
    correct = (predicted == labels)[known].double()
    chance = 1 / num_classes
    n = len(correct)
    if n == 0:
        return {"members": None, "nonmembers": None, "chance": chance, "at_chance": None}
    z = (float(correct.mean()) - chance) / math.sqrt(chance * (1 - chance) / n) if num_classes > 1 else 0.0
    sides = {name: correct[members[known] == m] for name, m in (("members", 1), ("nonmembers", 0))}
    accuracy = {name: float(c.mean()) if len(c) else None for name, c in sides.items()}
    return accuracy | {"chance": chance, "at_chance": z < 1.645}


def calibration_summary(
    cal: dict[str, Tensor], num_classes: int, members: Tensor, nonmembers: Tensor
) -> dict:
    """How well the detector separates its known members from non-members, and how good the target is."""
    interval = auroc_interval(members, nonmembers)
    accuracy = None  # recorded only by checkpoints that keep the target's predicted classes
    if "predicted_class" in cal and "labels" in cal:
        accuracy = target_accuracy(cal["predicted_class"], cal["labels"], cal["members"], num_classes)
    return {
        "n_members": len(members),
        "n_nonmembers": len(nonmembers),
        "detector_auroc_members_vs_nonmembers": interval["auroc"],
        "detector_auroc_ci": [interval["ci_low"], interval["ci_high"]],
        "detector_auroc_ci_level": interval["level"],
        "detector_auroc_ci_method": interval["method"],
        # The verdict's guard: a detector no better than chance on known images concludes nothing.
        "detector_separates": interval["ci_low"] > 0.5,
        "target_accuracy": accuracy,
    }


def member_share(scores: Tensor, members: Tensor, nonmembers: Tensor, calibration: dict) -> dict:
    """The estimated share of the set used in training, or why there is none (a detector at chance)."""
    if calibration["detector_separates"]:
        return member_fraction_estimate(scores, nonmembers, members)
    # The share divides by (calibration AUROC - 0.5): near 0, any number would be noise (it read 100%).
    return {
        "fraction": None,
        "ci_low": None,
        "ci_high": None,
        "raw": None,
        "consistent_with_none": None,
        "not_reported": "the detector does not separate known members from non-members better than chance",
    }
