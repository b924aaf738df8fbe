"""Membership metrics shared by MINT detectors and baselines: AUROC, accuracy, TPR at low FPR.

Scores are kept in float64 and never squashed through a sigmoid before ranking: saturated scores
tie, and ties make low-FPR numbers meaningless. Every sample carries an id, so the duplicates that
a `DistributedSampler` pads in under DDP are counted once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

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
    """Area under the ROC (ties count one half, as in the Mann-Whitney U statistic)."""
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


class MembershipMetrics(Metric):
    """Accumulate (id, score, membership) over batches and ranks; compute the summary once per epoch.

    Args:
        fpr_levels: FPR levels for TPR@FPR.
    """

    full_state_update = False

    def __init__(self, fpr_levels=FPR_LEVELS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fpr_levels = tuple(fpr_levels)
        self.add_state("ids", default=[], dist_reduce_fx="cat")
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("members", default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, members: Tensor, ids: Tensor) -> None:
        """Add a batch: scores (B,), membership 0/1 (B,), unique sample ids (B,)."""
        self.ids.append(ids.long().flatten())
        self.scores.append(scores.detach().double().flatten())
        self.members.append(members.long().flatten())

    def gathered(self) -> tuple[Tensor, Tensor, Tensor]:
        """(ids, scores, members) with DDP padding duplicates removed, sorted by id."""
        ids, scores, members = (dim_zero_cat(x) for x in (self.ids, self.scores, self.members))
        ids, first = _first_occurrence(ids)
        return ids, scores[first], members[first]

    def compute(self) -> dict[str, float]:
        _, scores, members = self.gathered()
        return membership_scores_summary(scores, members, 0.0, self.fpr_levels)


def _first_occurrence(ids: Tensor) -> tuple[Tensor, Tensor]:
    """Unique ids (sorted) and the position of each one's first occurrence."""
    uniq, inverse = torch.unique(ids, return_inverse=True)
    first = torch.full((len(uniq),), len(ids), dtype=torch.long, device=ids.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(ids), device=ids.device), reduce="amin")
    return uniq, first
