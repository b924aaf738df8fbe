"""Membership metrics of any scorer: AUROC with its interval, accuracy, TPR at low FPR, thresholds.

Scores are kept in float64 and never squashed through a sigmoid before ranking: saturated scores
tie, and ties make low-FPR numbers meaningless.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mint.errors import MintError
from mint.records.scores import read_scores_npz

FPR_LEVELS = (0.1, 0.01, 0.001)


def fpr_label(fpr: float) -> str:
    """0.01 -> '1%', 0.001 -> '0.1%'."""
    return f"{fpr * 100:g}%"


def roc_curve(scores: Tensor, members: Tensor) -> tuple[Tensor, Tensor]:
    """(FPR, TPR) at every distinct threshold, from (0, 0) to (1, 1), in float64.

    Unlike torchmetrics' functional ROC, scores are used as given: no sigmoid is applied to scores
    outside [0, 1], since in floating point it turns large logits into ties.
    """
    scores, members = scores.double().flatten(), members.long().flatten()
    order = torch.argsort(scores, descending=True, stable=True)
    s, m = scores[order], members[order]
    last_of_value = torch.ones_like(s, dtype=torch.bool)
    last_of_value[:-1] = s[1:] != s[:-1]  # a threshold between distinct values only: ties move together
    tp = torch.cumsum(m, 0)[last_of_value].double()
    fp = torch.cumsum(1 - m, 0)[last_of_value].double()
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, fp / max(int((m == 0).sum()), 1)]), torch.cat([zero, tp / max(int(m.sum()), 1)])


def auroc(scores: Tensor, members: Tensor) -> float:
    """Area under the ROC, ties counting one half.

    Equal to the Mann-Whitney U statistic over n_members * n_nonmembers and to torchmetrics'
    `binary_auroc` of the same order (a test checks both).
    """
    fpr, tpr = roc_curve(scores, members)
    return float(torch.trapezoid(tpr, fpr))


def tpr_at_fpr(scores: Tensor, members: Tensor, fpr: float) -> float:
    """Highest TPR among thresholds whose FPR is at most `fpr`; NaN when the data cannot resolve it.

    A level is resolvable only with at least 1/fpr non-members (one false positive is then at most
    `fpr`). Tied scores form one threshold, so ties can only lower the TPR, never fake it.
    """
    negatives = int((members == 0).sum())
    if negatives < math.ceil(1.0 / fpr - 1e-9) or int(members.sum()) == 0:
        return float("nan")
    roc_fpr, roc_tpr = roc_curve(scores, members)
    ok = roc_fpr <= fpr + 1e-12
    return float(roc_tpr[ok].max()) if ok.any() else 0.0


def membership_scores_summary(
    scores: Tensor, members: Tensor, threshold: float = 0.0, fpr_levels=FPR_LEVELS
) -> dict[str, float]:
    """AUROC, accuracy / precision / recall at `threshold`, and TPR at each FPR level.

    Args:
        scores: membership scores (higher = more likely a member), any real scale (e.g. logits).
        members: 1 for members, 0 for non-members.
        threshold: score above which a sample is called a member (0 for logits = probability 0.5).
        fpr_levels: FPR levels for TPR@FPR.
    """
    scores, members = scores.double().flatten(), members.long().flatten()
    predicted = scores > threshold
    tp = int((predicted & (members == 1)).sum())
    both = members.unique().numel() == 2
    out = {
        "auroc": auroc(scores, members) if both else float("nan"),
        "acc": float((predicted.long() == members).double().mean()) if len(members) else float("nan"),
        "precision": tp / int(predicted.sum()) if predicted.any() else float("nan"),
        "recall": tp / int(members.sum()) if members.any() else float("nan"),
        "n_members": int(members.sum()),
        "n_nonmembers": int((members == 0).sum()),
    }
    for level in fpr_levels:
        out[f"tpr@{fpr_label(level)}fpr"] = tpr_at_fpr(scores, members, level)
    return out


def auroc_ci(
    scores: Tensor, members: Tensor, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUROC, resampling members and non-members separately."""
    scores, members = scores.double().flatten(), members.long().flatten()
    pos, neg = scores[members == 1], scores[members == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    gen = torch.Generator().manual_seed(seed)
    values = torch.empty(n_boot, dtype=torch.float64)
    for b in range(n_boot):
        p = pos[torch.randint(len(pos), (len(pos),), generator=gen)]
        n = neg[torch.randint(len(neg), (len(neg),), generator=gen)]
        values[b] = _rank_auroc(p, n)
    lo, hi = torch.quantile(values, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return float(lo), float(hi)


def tpr_ci(
    scores: Tensor, members: Tensor, fpr: float, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the TPR at `fpr` (as `tpr_at_fpr`), resampling both sides.

    In each resample of n non-members, at most floor(fpr * n) may score above the threshold: it is
    the (k + 1)-th highest non-member score, and the TPR is the share of members strictly above it
    (tied scores never cross it together, as in `tpr_at_fpr`). NaN when `tpr_at_fpr` would be.
    """
    scores, members = scores.double().flatten(), members.long().flatten()
    pos, neg = scores[members == 1], scores[members == 0]
    if len(neg) < math.ceil(1.0 / fpr - 1e-9) or len(pos) == 0:
        return float("nan"), float("nan")
    k = math.floor(fpr * len(neg) + 1e-9)
    gen = torch.Generator().manual_seed(seed)
    values = torch.empty(n_boot, dtype=torch.float64)
    for b in range(n_boot):
        n = neg[torch.randint(len(neg), (len(neg),), generator=gen)]
        p = pos[torch.randint(len(pos), (len(pos),), generator=gen)]
        threshold = torch.topk(n, k + 1).values[-1]  # the (k + 1)-th highest non-member score
        values[b] = (p > threshold).double().mean()
    lo, hi = torch.quantile(values, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return float(lo), float(hi)


def _rank_auroc(pos: Tensor, neg: Tensor) -> float:
    """Mann-Whitney AUROC with average ranks for ties."""
    both = torch.cat([pos, neg])
    _, inverse, counts = torch.unique(both, return_inverse=True, return_counts=True)
    upper = torch.cumsum(counts, 0).double()
    avg_rank = upper - (counts.double() - 1) / 2  # 1-based average rank of each distinct value
    rank_sum = avg_rank[inverse[: len(pos)]].sum()
    return float((rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def best_threshold(scores: Tensor, members: Tensor) -> float:
    """The threshold with the highest balanced accuracy (chosen on validation data, applied to test)."""
    fpr, tpr = roc_curve(scores, members)
    values = torch.unique(scores.double())
    # ROC point k > 0 calls the k highest distinct scores members; point 0 calls nobody.
    cuts = torch.cat([values.flip(0), values.min()[None] - 1])  # distinct scores, high to low, then below all
    k = int(torch.argmax(tpr - fpr))
    if k == 0:
        return float(values.max())
    return (float(cuts[k - 1]) + float(cuts[k])) / 2  # between the last score called member and the next


def at_threshold(scores: Tensor, members: Tensor, threshold: float) -> dict[str, float]:
    """Balanced accuracy, precision, TPR and FPR when scores above `threshold` are called members."""
    predicted, members = scores.double() > threshold, members.long() == 1
    tpr = float((predicted & members).sum() / max(int(members.sum()), 1))
    fpr = float((predicted & ~members).sum() / max(int((~members).sum()), 1))
    called = int(predicted.sum())
    precision = float((predicted & members).sum() / called) if called else float("nan")
    return {"balanced_acc": (tpr + 1 - fpr) / 2, "precision": precision, "tpr": tpr, "fpr": fpr}


def per_class_auroc(scores: Tensor, members: Tensor, labels: Tensor) -> dict[int, dict[str, float]]:
    """AUROC within each class (which classes leak most), with the counts behind it."""
    out = {}
    for c in torch.unique(labels).tolist():
        mask = labels == c
        m = members[mask]
        both = bool((m == 1).any() and (m == 0).any())
        out[int(c)] = {
            "auroc": auroc(scores[mask], m) if both else float("nan"),
            "n_members": int((m == 1).sum()),
            "n_nonmembers": int((m == 0).sum()),
        }
    return out


def full_report(
    test_scores: Tensor,
    test_members: Tensor,
    threshold: float,
    labels: Tensor | None = None,
    n_boot: int = 1000,
) -> dict:
    """Everything the evaluation tables report for one scorer on one held-out set.

    Args:
        test_scores: scores of the held-out set.
        test_members: membership (0/1) of the held-out set.
        threshold: decision threshold, chosen beforehand on other data (see `best_threshold`).
        labels: class labels of the held-out set, for the per-class table.
        n_boot: bootstrap resamples of the AUROC interval.
    """
    summary = membership_scores_summary(test_scores, test_members, threshold)
    lo, hi = auroc_ci(test_scores, test_members, n_boot)
    report = summary | {"auroc_ci95": [lo, hi], "threshold": threshold}
    for level in (0.01, 0.001):  # the low-FPR numbers the field compares, with their uncertainty
        report[f"tpr@{fpr_label(level)}fpr_ci95"] = list(tpr_ci(test_scores, test_members, level, n_boot))
    report |= {f"{k}_at_threshold": v for k, v in at_threshold(test_scores, test_members, threshold).items()}
    if labels is not None:
        report["per_class_auroc"] = per_class_auroc(test_scores, test_members, labels)
    return report


def auroc_from_file(path: str | Path, scorer: str) -> float:
    """One scorer's AUROC recomputed from a scores file (what a re-plot starts from)."""
    data = read_scores_npz(path)
    names = [str(s) for s in data["scorers"]]
    if scorer not in names:
        raise MintError(f"{str(path)!r} has no scorer {scorer!r}; it has {', '.join(names)}")
    column = data["scores"][:, names.index(scorer)]
    return auroc(torch.from_numpy(column), torch.from_numpy(data["members"].astype(np.int64)))
