"""The class-calibrated loss: a per-class Gaussian likelihood ratio of the target's confidence, float64.

For each class c, one Gaussian is fitted to the known members' and one to the known non-members'
logit-scaled confidence phi = log p_y - log(1 - p_y) (LiRA's statistic; the loss attack's score is a
monotone function of it), and an image scores log N(phi; mu_in_c, sd_in_c) - log N(phi; mu_out_c,
sd_out_c). Easy classes, where every image is confident, no longer look like members: the threshold
moves per class. A class with fewer than `min_per_class` known members or non-members gets the
pooled fit (every class together).

Two users: the learned black-box attack of that name (`mint.attacks.class_calibrated`), and the
detector, which can start from it (`calibrated_base`) and learn only what its layers add: its score
is base + s * residual, the residual trained at s = 1 and s chosen on the validation set, so a
residual that does not help on held-out images (a detector memorizing GTSRB tracks) is scaled away.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mint.errors import MintError
from mint.signals import logit_confidence

MIN_PER_CLASS = 20  # below this, a class's mean and spread are too noisy to fit on their own
SCALES = tuple(i / 10 for i in range(11))  # the residual's scales tried on validation: 0, 0.1, ..., 1
MIN_STD = 1e-6  # a class whose images all share one confidence still has a finite density
LOG_2PI = math.log(2 * math.pi)


def _log_normal(x: Tensor, mu: Tensor, sd: Tensor) -> Tensor:
    return -0.5 * ((x - mu) / sd) ** 2 - sd.log() - 0.5 * LOG_2PI


def _mean_std(values: Tensor) -> list[Tensor]:
    return [values.mean(), values.std(correction=0) + MIN_STD]


def fit_class_gaussians(
    phi: Tensor, labels: Tensor, members: Tensor, num_classes: int, min_per_class: int = MIN_PER_CLASS
) -> tuple[Tensor, list[int]]:
    """Each class's member and non-member Gaussian of phi (N,), float64.

    Returns:
        `params` (num_classes, 4): mu_in, sd_in, mu_out, sd_out; and the classes present in the data
        that got the pooled fit (min_per_class > the count of their members or non-members).
    """
    phi, labels, members = phi.double().cpu(), labels.long().cpu(), members.bool().cpu()
    if not members.any() or members.all():
        raise MintError("the class-calibrated loss needs known members and non-members: one side is empty")
    pooled = torch.stack([*_mean_std(phi[members]), *_mean_std(phi[~members])])
    params = pooled.repeat(num_classes, 1)
    pooled_classes = []
    for c in range(num_classes):
        inside, outside = phi[(labels == c) & members], phi[(labels == c) & ~members]
        if min(len(inside), len(outside)) >= min_per_class:
            params[c] = torch.stack([*_mean_std(inside), *_mean_std(outside)])
        elif (labels == c).any():  # a class absent from the data is not worth a note
            pooled_classes.append(c)
    return params, pooled_classes


def log_likelihood_ratio(phi: Tensor, labels: Tensor, params: Tensor) -> Tensor:
    """Log-likelihood ratio log N(phi; in) - log N(phi; out) (B,), float64, per image class."""
    p = params.to(phi.device)[labels.long().clamp(0, len(params) - 1)]  # (B, 4)
    phi = phi.double()
    return _log_normal(phi, p[:, 0], p[:, 1]) - _log_normal(phi, p[:, 2], p[:, 3])


class CalibratedLossBase(nn.Module):
    """The class-calibrated loss as a detector's starting score, and how much of the residual to add.

    Its parameters and the residual's scale are buffers (in the detector's `state_dict`, so in every
    checkpoint and audit); the parameters are NaN until `fit`, the scale 1 until the detector's
    validation chooses it (`mint.tasks.detector_validation`).

    Args:
        num_classes: classes of the target.
        per_class: one fit per class; False: the pooled fit for every class (a detector told no class).
    """

    def __init__(self, num_classes: int, per_class: bool = True) -> None:
        super().__init__()
        self.per_class = per_class
        self.register_buffer("params", torch.full((num_classes, 4), float("nan"), dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))
        self._checked = False  # fitted parameters seen: checked once, not at every batch (a GPU sync)

    @property
    def fitted(self) -> bool:
        """Whether `fit` has run (or a checkpoint filled the buffer)."""
        return not bool(self.params.isnan().any())

    def fit(self, logits: Tensor, labels: Tensor, members: Tensor) -> list[int]:
        """Fit on known images: logits (N, C), labels (N,), members (N,); returns the pooled classes."""
        min_count = MIN_PER_CLASS if self.per_class else len(labels) + 1  # pooled: no class has enough
        params, pooled = fit_class_gaussians(
            logit_confidence(logits, labels), labels, members, len(self.params), min_count
        )
        self.params.copy_(params)
        self._checked = False
        return pooled if self.per_class else []

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._checked = False

    def score(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Log likelihood ratio (B,) in float64 for logits (B, C) and labels (B,)."""
        return log_likelihood_ratio(logit_confidence(logits, labels), labels, self.params)

    def forward(self, logits: Tensor, labels: Tensor, residual: Tensor) -> Tensor:
        """The score base + scale * residual (B,), float64; in training mode the whole residual (scale 1)."""
        if not self._checked:
            if not self.fitted:
                raise MintError(
                    "the detector's calibrated base is not fitted: fit it on known members and "
                    "non-members first (`detector.base.fit(logits, labels, members)`; `mint fit` does), "
                    "or build the detector with calibrated_base=False"
                )
            self._checked = True
        scale = 1.0 if self.training else self.scale
        return self.score(logits, labels) + scale * residual.double()
