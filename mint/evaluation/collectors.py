"""torchmetrics collectors of membership scores: synced over DDP ranks, padding duplicates dropped.

Every sample carries an id, so the duplicates that a `DistributedSampler` pads in under DDP are
counted once.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from mint.evaluation.metrics import FPR_LEVELS, membership_scores_summary


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

    def _gathered(self) -> tuple[Tensor, Tensor, Tensor]:
        """(ids, scores, members) with DDP padding duplicates removed, sorted by id (inside `compute`)."""
        ids, scores, members = (dim_zero_cat(x) for x in (self.ids, self.scores, self.members))
        ids, first = _first_occurrence(ids)
        return ids, scores[first], members[first]

    def compute(self) -> dict[str, float]:
        _, scores, members = self._gathered()
        return membership_scores_summary(scores, members, 0.0, self.fpr_levels)


class ScoreCollector(Metric):
    """Accumulate several score columns per sample (MINT, baselines, ...) with membership and class.

    Like `MembershipMetrics` it syncs across DDP ranks (in `compute()`, which torchmetrics wraps
    with the sync) and drops padding duplicates by sample id.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("ids", "scores", "members", "labels"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, members: Tensor, labels: Tensor, ids: Tensor) -> None:
        """Add a batch: scores (B, columns), membership (B,), class labels (B,), unique ids (B,)."""
        self.ids.append(ids.long().flatten())
        self.scores.append(scores.detach().double())
        self.members.append(members.long().flatten())
        self.labels.append(labels.long().flatten())

    def compute(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(ids, scores (N, columns), members, labels) of all ranks, deduplicated and sorted by id."""
        ids, scores, members, labels = (
            dim_zero_cat(x) for x in (self.ids, self.scores, self.members, self.labels)
        )
        ids, first = _first_occurrence(ids)
        return ids, scores[first], members[first], labels[first]


def _first_occurrence(ids: Tensor) -> tuple[Tensor, Tensor]:
    """Unique ids (sorted) and the position of each one's first occurrence."""
    uniq, inverse = torch.unique(ids, return_inverse=True)
    first = torch.full((len(uniq),), len(ids), dtype=torch.long, device=ids.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(ids), device=ids.device), reduce="amin")
    return uniq, first
