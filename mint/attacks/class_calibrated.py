"""Class-conditional calibrated loss: a per-class Gaussian likelihood ratio of the target's confidence.

A learned black-box baseline: it sees only the target's logits and the label, like the loss attack,
but is fitted on the detector's training set (known members and non-members). For each class c it
fits one Gaussian to the members' and one to the non-members' float64 logit-scaled confidence
phi = log p_y - log(1 - p_y) (LiRA's statistic; the loss attack's score is a monotone function of
it) and scores log N(phi; mu_in_c, sd_in_c) - log N(phi; mu_out_c, sd_out_c). Easy classes, where
every image is confident, no longer look like members: the threshold moves per class.

A class with fewer than `min_per_class` known members or non-members gets the pooled fit (every
class together), and the report names those classes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mint.models.output_features import logit_confidence

MIN_PER_CLASS = 20  # below this, a class's mean and spread are too noisy to fit on their own
MIN_STD = 1e-6  # a class whose images all share one confidence still has a finite density
LOG_2PI = math.log(2 * math.pi)


def _log_normal(x: Tensor, mu: Tensor, sd: Tensor) -> Tensor:
    return -0.5 * ((x - mu) / sd) ** 2 - sd.log() - 0.5 * LOG_2PI


def _mean_std(values: Tensor) -> tuple[Tensor, Tensor]:
    return values.mean(), values.std(correction=0) + MIN_STD


class ClassCalibratedLoss:
    """Per-class Gaussian likelihood ratio of the logit-scaled confidence (float64).

    Args:
        num_classes: classes of the target.
        min_per_class: known members and non-members a class needs for its own fit.
    """

    name = "class_calibrated_loss"

    def __init__(self, num_classes: int, min_per_class: int = MIN_PER_CLASS) -> None:
        self.num_classes = num_classes
        self.min_per_class = min_per_class
        self.pooled_classes: list[int] = []

    def fit(self, logits: Tensor, labels: Tensor, members: Tensor) -> ClassCalibratedLoss:
        """Fit each class's two Gaussians on known images: logits (N, C), labels (N,), members (N,)."""
        phi = logit_confidence(logits, labels).cpu()
        labels, members = labels.long().cpu(), members.bool().cpu()
        pooled = [*_mean_std(phi[members]), *_mean_std(phi[~members])]
        params = torch.empty(self.num_classes, 4, dtype=torch.float64)  # mu_in, sd_in, mu_out, sd_out
        self.pooled_classes = []
        for c in range(self.num_classes):
            inside, outside = phi[(labels == c) & members], phi[(labels == c) & ~members]
            if min(len(inside), len(outside)) < self.min_per_class:
                params[c] = torch.stack(pooled)
                if (labels == c).any():  # a class absent from the data is not worth a note
                    self.pooled_classes.append(c)
            else:
                params[c] = torch.stack([*_mean_std(inside), *_mean_std(outside)])
        self.params = params
        return self

    def score(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Log likelihood ratio (B,) in float64: higher = more member-like."""
        phi = logit_confidence(logits, labels)
        p = self.params.to(phi.device)[labels.long().clamp(0, self.num_classes - 1)]  # (B, 4)
        return _log_normal(phi, p[:, 0], p[:, 1]) - _log_normal(phi, p[:, 2], p[:, 3])

    def note(self) -> str | None:
        """What the report says when some classes fell back to the pooled fit."""
        if not self.pooled_classes:
            return None
        shown = ", ".join(map(str, self.pooled_classes[:20])) + (
            " ..." if len(self.pooled_classes) > 20 else ""
        )
        return (
            f"{self.name}: {len(self.pooled_classes)} classes ({shown}) have fewer than "
            f"{self.min_per_class} known members or non-members in the detector's training set: "
            "they use the fit of all classes pooled"
        )
