"""Per-class standardization of a detector's vector inputs.

A class-conditioned detector compares an image with the members of its own class, but its first
layer sees raw features whose scale and centre differ from class to class (a confident class's
margins sit far above a confusable one's), so one shared hidden layer has to spend units on undoing
the class before it can read membership. Standardizing each feature by its class's mean and
standard deviation removes that: what reaches the detector is how unusual the image is *for its
class*, the per-class calibration that class-specific thresholds give the black-box attacks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

EPS = 1e-6  # variance floor: a feature constant within a class is centred, not blown up


class ClassStandardize(nn.Module):
    """Standardize vectors by running per-class means and standard deviations.

    The statistics are exact running moments (Chan's parallel update of counts, means and sums of
    squared deviations, in float64) over every training batch seen, so after one epoch they are the
    per-class moments of the detector's training set; evaluation only reads them. A class with fewer
    than two training rows falls back to the statistics pooled over all classes (and before any
    training, e.g. Lightning's sanity check, inputs pass through unchanged). They live in buffers, so
    they are saved with the detector's checkpoint and an audit reads the same ones; under DDP the
    buffers are broadcast from rank 0, whose batches then supply the statistics.

    Args:
        features: length of the (flattened) vectors.
        num_classes: classes of the target.
    """

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(num_classes, features, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(num_classes, features, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor, labels: Tensor) -> None:
        """Fold a batch x (B, F) with classes labels (B,) into the running moments."""
        x = x.to(torch.float64)
        n_b = torch.bincount(labels, minlength=self.count.numel()).to(torch.float64)  # (C,)
        mean_b = self.mean.new_zeros(self.mean.shape).index_add_(0, labels, x) / n_b.clamp(min=1)[:, None]
        dev = x - mean_b[labels]  # (B, F): deviation from the batch mean of the row's class
        m2_b = self.m2.new_zeros(self.m2.shape).index_add_(0, labels, dev * dev)
        n = self.count + n_b
        delta = mean_b - self.mean
        seen = (n_b > 0)[:, None]
        share = (n_b / n.clamp(min=1))[:, None]  # the batch's weight in the class's new mean
        self.mean.copy_(torch.where(seen, self.mean + delta * share, self.mean))
        self.m2.copy_(
            torch.where(seen, self.m2 + m2_b + delta * delta * self.count[:, None] * share, self.m2)
        )
        self.count.copy_(n)

    def moments(self) -> tuple[Tensor, Tensor]:
        """Per-class (mean, std), each (C, F); classes seen fewer than twice get the pooled ones."""
        total = self.count.sum()
        if total < 2:
            return torch.zeros_like(self.mean), torch.ones_like(self.mean)
        pooled_mean = (self.count[:, None] * self.mean).sum(0) / total  # (F,)
        # pooled sum of squares: within-class plus between-class deviations
        between = self.count[:, None] * (self.mean - pooled_mean) ** 2
        pooled_var = (self.m2.sum(0) + between.sum(0)) / (total - 1)
        rare = (self.count < 2)[:, None]
        mean = torch.where(rare, pooled_mean, self.mean)
        var = torch.where(rare, pooled_var, self.m2 / (self.count - 1).clamp(min=1)[:, None])
        return mean, var.clamp(min=EPS).sqrt()

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        """Inputs x (B, ...) standardized by the class of each row, flattened to (B, F), in x's dtype."""
        flat = x.flatten(1)  # (B, ...) -> (B, F)
        if self.training:
            self.update(flat, labels)
        mean, std = self.moments()
        return ((flat.to(torch.float64) - mean[labels]) / std[labels]).to(x.dtype)
