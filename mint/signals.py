"""What the target's output says about an image and its label, in float64: the signals of every score.

Every score mint reads from a target's output is computed here, from the logits, in float64: the
detector's output features, the threshold attacks' log-probabilities, LiRA's logit-scaled
confidence, RMIA's true-class probability.

A white-box detector sees everything a black-box attack sees, so it should at least reproduce the
loss attack. It cannot from the cached activations alone: they are float16, and at the output of a
memorizing model the margins that separate members from non-members live where float16 (and even
float32 probabilities) round them away. These features are computed in float64 from the logits
(cached in float32) and stay ordered where the loss itself would tie:

- `confidence`: z_y - logsumexp_{j != y} z_j = log p_y - log(1 - p_y), LiRA's logit-scaled
  confidence; the loss attack's score, -log(1 + e^-confidence), is a monotone function of it;
- `margin`: z_y minus the largest other logit;
- `log_entropy`: the log of the prediction's entropy (its raw value is about 0 for every confident
  prediction; the log spreads those apart).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mint.errors import MintError

OUTPUT_FEATURES = ("confidence", "margin", "log_entropy")
TINY = 1e-300  # an entropy that rounds to 0 in float64 still has a finite log


def logit_confidence(logits: Tensor, labels: Tensor) -> Tensor:
    """z_y - logsumexp_{j != y} z_j in float64: logits (..., C), labels (...,) (or (N,) for (K, N, C))."""
    z = logits.double()
    y = labels.long().expand(z.shape[:-1]).unsqueeze(-1)
    others = z.scatter(-1, y, float("-inf"))  # the true class left out
    return z.gather(-1, y).squeeze(-1) - torch.logsumexp(others, dim=-1)


def check_class_logits(shape: tuple[int, ...]) -> None:
    """Refuse an output that is not class logits (shape per image: (classes >= 2,))."""
    if len(shape) != 1 or shape[0] < 2:
        raise MintError(
            f"output features need class logits (one score per class, at least 2); the target's output "
            f"has shape {tuple(shape)} per image: leave `output_features` off for this target"
        )


def log_probability(logits: Tensor, labels: Tensor) -> Tensor:
    """Log p(label) in float64 from logits (..., C), as -softplus(-confidence).

    `log_softmax` rounds it to exactly 0 once the margin passes about 37; this form keeps the
    e^-margin term up to margins of about 700.
    """
    return -torch.nn.functional.softplus(-logit_confidence(logits, labels))


def output_features(logits: Tensor, labels: Tensor) -> Tensor:
    """(B, 3) float64 `OUTPUT_FEATURES` of logits (B, C) for the classes `labels` (B,)."""
    check_class_logits(tuple(logits.shape[1:]))
    z = logits.double()
    y = labels.long()[:, None]
    margin = z.gather(1, y).squeeze(1) - z.scatter(1, y, float("-inf")).amax(1)
    log_p = torch.log_softmax(z, dim=1)
    entropy = -torch.special.xlogy(log_p.exp(), log_p.exp()).sum(1)  # 0 log 0 = 0 (a -inf logit)
    return torch.stack([logit_confidence(z, labels), margin, entropy.clamp_min(TINY).log()], dim=1)


def log_probabilities(logits: Tensor) -> Tensor:
    """Log-softmax (..., C) in float64."""
    return torch.log_softmax(logits.double(), dim=-1)


def log1m_exp(log_p: Tensor) -> Tensor:
    """log(1 - exp(log_p)) without cancellation: exact also where p rounds to 1."""
    return torch.where(log_p > -0.693, torch.log(-torch.expm1(log_p)), torch.log1p(-torch.exp(log_p)))


def true_class_probability(logits: Tensor, labels: Tensor) -> Tensor:
    """Softmax probability of the true class, float64: RMIA's Pr(x | model). Logits (..., C)."""
    y = labels.long().expand(logits.shape[:-1]).unsqueeze(-1)
    return torch.softmax(logits.double(), dim=-1).gather(-1, y).squeeze(-1)
