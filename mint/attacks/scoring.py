"""Every membership score of a batch in one table: the detector's, then each threshold attack's."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mint.attacks.registry import BASELINES, BY_NAME
from mint.models.target import LOGITS

SCORERS = ("mint", *BASELINES)  # the columns of `score_batch`, in order


def baseline_scores(logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Every threshold attack's scores for a batch, in registry order; refuses a target without logits."""
    if logits is None or logits.ndim != 2:
        raise ValueError(
            "the black-box baselines need the target's logits (B, classes); this target has none"
        )
    return {name: BY_NAME[name].make(logits, labels) for name in BASELINES}


def score_batch(detector: nn.Module, acts: dict[str, Tensor], labels: Tensor) -> Tensor:
    """(B, len(SCORERS)) float64 scores, higher = more member-like, from a target's activations.

    Args:
        detector: the detector network (its logit is MINT's score).
        acts: the target's activations and logits for the batch (`Target.forward`).
        labels: the class fed to the detector and to the label-aware baselines (B,).
    """
    mint = detector(acts, labels).double()
    return torch.stack([mint, *baseline_scores(acts[LOGITS], labels).values()], dim=1)
