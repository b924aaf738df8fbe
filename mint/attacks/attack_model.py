"""A trained attack model over the target's output vector and the label (Shokri et al. / IBM ART style).

A learned black-box baseline: a small MLP reads, for each image, everything a black-box attacker
gets from one query (the whole float64 log-probability vector and the true label) plus the float64
output features (logit-scaled confidence, margin, log entropy: what float32 probabilities round
away), and is trained with BCE on the detector's training set (known members and non-members),
its epoch kept by the validation loss. Shokri et al. train it on a shadow model's outputs; here the
attacker's known images of the target itself stand in for the shadow data, as in ART's
`MembershipInferenceBlackBox`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mint.attacks.fitting import fit_network, seeded, standardizer
from mint.signals import output_features

LOG_P_FLOOR = -100.0  # log-probabilities below this carry no more information, only scale


def attack_inputs(logits: Tensor, labels: Tensor) -> Tensor:
    """(B, 3 + 2C) float64: output features, log-probabilities (floored), one-hot label."""
    z = logits.double()
    log_p = torch.log_softmax(z, dim=1).clamp_min(LOG_P_FLOOR)
    onehot = F.one_hot(labels.long(), z.shape[1]).double()
    return torch.cat([output_features(z, labels), log_p, onehot], dim=1)


class AttackModel:
    """An MLP membership classifier over `attack_inputs`.

    Args:
        num_classes: classes of the target.
        seed: seed of the initialization and of the batch order.
        hidden: units of each of the two hidden layers.
    """

    name = "attack_model"
    notes: tuple[str, ...] = ()  # it always fits

    def __init__(self, num_classes: int, seed: int = 0, hidden: int = 64) -> None:
        self.num_classes, self.seed, self.hidden = num_classes, seed, hidden

    def _inputs(self, logits: Tensor, labels: Tensor) -> Tensor:
        # standardized in float64 first, so the float32 net sees confidences apart that float32 ties
        return ((attack_inputs(logits, labels) - self.mean) / self.std).float()

    def fit(self, train: dict[str, Tensor], val: dict[str, Tensor]) -> AttackModel:
        """Fit on `train` (logits, labels, members), keep the epoch with the best loss on `val`."""
        self.mean, self.std = standardizer(attack_inputs(train["logits"], train["labels"]))
        width = 3 + 2 * self.num_classes
        self.net = seeded(
            lambda: nn.Sequential(
                nn.Linear(width, self.hidden),
                nn.ReLU(),
                nn.Linear(self.hidden, self.hidden),
                nn.ReLU(),
                nn.Linear(self.hidden, 1),
            ),
            self.seed,
        ).to(train["logits"].device)

        def loss(net: nn.Module, x: Tensor, member: Tensor) -> Tensor:
            return F.binary_cross_entropy_with_logits(net(x).squeeze(1), member)

        def columns(part: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
            return self._inputs(part["logits"], part["labels"]), part["members"].float()

        self.epochs = fit_network(self.net, loss, columns(train), columns(val), seed=self.seed)
        return self

    @torch.no_grad()
    def score(self, logits: Tensor, labels: Tensor, images: Tensor | None = None) -> Tensor:
        """The attack model's logit (B,) as float64: higher = more member-like (the images are not read)."""
        net = self.net.to(logits.device)
        return net(self._inputs(logits, labels).to(logits.device)).squeeze(1).double()
