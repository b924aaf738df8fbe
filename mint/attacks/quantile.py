"""Quantile-regression membership inference (Bertran et al., NeurIPS 2023), without reference models.

A learned black-box baseline: a small CNN trained on known *non-members* only predicts, from the
image and its label, the distribution of the target's score on images it did not train on; an
image whose score is unusually high for what the regressor expects of it is called a member. The
regressor replaces LiRA's per-image OUT references with one model, so hard images (low confidence
even when seen) and easy ones (high confidence even when unseen) are each judged against their own
expectation.

The regressor is the paper's Gaussian form: it outputs a mean and a log standard deviation of the
float64 logit-scaled confidence (LiRA's statistic), trained by Gaussian negative log-likelihood;
the score is the standardized residual (phi - mu(x)) / sd(x), which orders images as the paper's
quantile test does at every level at once. Images are averaged down to `side` x `side` pixels:
the regressor needs their content, not their detail, and stays cheap beside a detector fit.

With fewer than `min_nonmembers` known non-members a CNN cannot be fitted: each class's
non-member mean and spread stand in for it (a class-wise regressor), and the report says so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mint.attacks.fitting import fit_network, seeded, standardizer
from mint.signals import logit_confidence

MIN_NONMEMBERS = 200  # fewer known non-members than this fit a class-wise mean and spread instead
SIDE = 16


def small_images(images: Tensor, side: int = SIDE) -> Tensor:
    """Images (B, C, H, W) averaged down to at most side x side, float32."""
    images = images.float()
    if images.shape[-1] > side or images.shape[-2] > side:
        images = F.adaptive_avg_pool2d(images, (min(side, images.shape[-2]), min(side, images.shape[-1])))
    return images


class Regressor(nn.Module):
    """Image + one-hot label -> (mean, log std) of the standardized score.

    Args:
        channels: image channels.
        num_classes: classes of the target.
        width: filters of the first convolution (doubled twice).
    """

    def __init__(self, channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (B, 4 * width)
        )
        self.head = nn.Sequential(nn.Linear(4 * width + num_classes, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, images: Tensor, onehot: Tensor) -> tuple[Tensor, Tensor]:
        out = self.head(torch.cat([self.features(images), onehot], dim=1))
        return out[:, 0], out[:, 1].clamp(-7.0, 7.0)  # log std bounded: no zero or infinite spread


def _nll(net: nn.Module, images: Tensor, onehot: Tensor, target: Tensor) -> Tensor:
    mu, log_sd = net(images, onehot)
    return (log_sd + 0.5 * ((target - mu) / log_sd.exp()) ** 2).mean()


class QuantileRegression:
    """Bertran et al.'s attack in its Gaussian form, fitted on the known non-members.

    Args:
        num_classes: classes of the target.
        seed: seed of the initialization and of the batch order.
        side: the regressor's image side (images are averaged down to it).
        min_nonmembers: known non-members needed to fit the CNN regressor.
    """

    name = "quantile_regression"

    def __init__(
        self, num_classes: int, seed: int = 0, side: int = SIDE, min_nonmembers: int = MIN_NONMEMBERS
    ) -> None:
        self.num_classes, self.seed, self.side, self.min_nonmembers = num_classes, seed, side, min_nonmembers
        self.net: Regressor | None = None
        self.notes: list[str] = []

    def _phi(self, part: dict[str, Tensor]) -> Tensor:
        return (logit_confidence(part["logits"], part["labels"]) - self.phi_mean) / self.phi_std

    def _columns(self, part: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        outside = part["members"] == 0
        images = ((small_images(part["images"][outside], self.side) - self.pix_mean) / self.pix_std).float()
        onehot = F.one_hot(part["labels"][outside].long(), self.num_classes).float()
        return images, onehot, self._phi(part)[outside].float()

    def fit(self, train: dict[str, Tensor], val: dict[str, Tensor]) -> QuantileRegression:
        """Fit on the non-members of `train` (images, logits, labels, members); epochs kept by `val`'s."""
        outside = train["members"] == 0
        phi = logit_confidence(train["logits"], train["labels"])[outside]
        self.phi_mean, self.phi_std = standardizer(phi)
        self.phi_mean, self.phi_std = self.phi_mean.squeeze(0), self.phi_std.squeeze(0)
        labels = train["labels"][outside].long()
        z = (phi - self.phi_mean) / self.phi_std
        # The class-wise regressor: the fallback, and where a class has no known non-member, the prior.
        counts = torch.bincount(labels, minlength=self.num_classes).double()
        self.class_mu = torch.bincount(labels, z, minlength=self.num_classes) / counts.clamp_min(1)
        self.class_mu = torch.where(counts > 0, self.class_mu, z.mean())
        square = torch.bincount(labels, (z - self.class_mu[labels]) ** 2, minlength=self.num_classes)
        sd = (square / counts.clamp_min(1)).sqrt()
        self.class_sd = torch.where(counts > 1, sd, z.std(correction=0)).clamp_min(1e-3).cpu()
        self.class_mu = self.class_mu.cpu()
        if int(outside.sum()) < self.min_nonmembers:
            self.notes = [
                f"{self.name}: only {int(outside.sum())} known non-members in the detector's training "
                f"set (fewer than {self.min_nonmembers}): each class's non-member mean and spread stand "
                "in for the regressor"
            ]
            return self
        small = small_images(train["images"][outside], self.side)
        self.pix_mean, self.pix_std = (s.float() for s in standardizer(small, (0, 2, 3)))
        channels = small.shape[1]
        self.net = seeded(lambda: Regressor(channels, self.num_classes), self.seed).to(small.device)
        self.epochs = fit_network(
            self.net, _nll, self._columns(train), self._columns(val), seed=self.seed, epochs=20, patience=3
        )
        return self

    @torch.no_grad()
    def score(self, logits: Tensor, labels: Tensor, images: Tensor | None) -> Tensor:
        """Standardized residual (B,) in float64: how far above the expected score an image's is."""
        z = (logit_confidence(logits, labels) - self.phi_mean.to(logits.device)) / self.phi_std.to(
            logits.device
        )
        if self.net is None:
            y = labels.long().cpu()
            return ((z.cpu() - self.class_mu[y]) / self.class_sd[y]).to(logits.device)
        small = (small_images(images, self.side) - self.pix_mean.to(images.device)) / self.pix_std.to(
            images.device
        )
        onehot = F.one_hot(labels.long(), self.num_classes).float()
        net = self.net.to(images.device)
        mu, log_sd = net(small.float(), onehot.to(images.device))
        return (z - mu.double()) / log_sd.double().exp()
