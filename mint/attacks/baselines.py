"""Black-box membership scores from the target's logits: the attacks other tools report.

Each scorer maps logits (B, classes) and true labels (B,) to a score (B,) where higher means "more
likely a member". All work in float64 from the logits, never from float32 probabilities: on a
memorizing model many losses round to exactly 0 in float32, and the ties erase every low-FPR signal.
The loss and the confidence keep the e^-margin term (`log_probability`), so they stay ordered for
margins up to about 700; the entropies saturate earlier (their terms round to 0 in float64).

- `loss`: minus the cross-entropy loss (Yeom et al., CSF 2018).
- `confidence`: the top-1 log-probability (Salem et al., NDSS 2019).
- `entropy`: minus the prediction entropy (Salem et al.).
- `modified_entropy`: minus the modified entropy of Song & Mittal (USENIX Security 2021), which uses
  the true label: -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mint.signals import log1m_exp, log_probabilities, log_probability


def loss_score(logits: Tensor, labels: Tensor) -> Tensor:
    """Minus the cross-entropy loss of the true class."""
    return log_probability(logits, labels)


def confidence_score(logits: Tensor, labels: Tensor) -> Tensor:
    """Top-1 log-probability (the label is not used)."""
    return log_probability(logits, logits.argmax(dim=1))


def entropy_score(logits: Tensor, labels: Tensor) -> Tensor:
    """Minus the entropy of the predicted distribution (the label is not used)."""
    log_p = log_probabilities(logits)
    return (log_p.exp() * log_p).sum(dim=1)


def modified_entropy_score(logits: Tensor, labels: Tensor) -> Tensor:
    """Minus Song & Mittal's modified entropy, which is low for confident, correct predictions."""
    log_p = log_probabilities(logits)
    p = log_p.exp()
    true = torch.nn.functional.one_hot(labels.long(), log_p.shape[1]).bool()
    log_1mp = log1m_exp(log_p)
    term_true = -(1.0 - p) * log_p  # -(1 - p_y) log p_y, only at the true class
    term_other = -p * log_1mp  # -p_i log(1 - p_i), at the other classes
    return -torch.where(true, term_true, term_other).sum(dim=1)
