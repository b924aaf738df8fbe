"""The learned black-box baselines, fitted together on the detector's known images.

A threshold on the loss is the weakest black-box attack; a white-box detector should be compared
with the strongest one that reads the same outputs. These three are fitted on the detector's own
training set (the known members and non-members) and keep their epochs by its validation set, as
the detector does, then score the same test images:

- `class_calibrated_loss`: per-class Gaussian likelihood ratio of the logit-scaled confidence
  (`mint.attacks.class_calibrated`);
- `attack_model`: an MLP over the whole output vector and the label (Shokri et al., IBM ART;
  `mint.attacks.attack_model`);
- `quantile_regression`: a regressor on non-members predicts each image's expected score
  (Bertran et al. 2023, as in LeakPro; `mint.attacks.quantile`), no reference models.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from mint.attacks.registry import BY_NAME, LEARNED_ATTACKS


class LearnedAttacks:
    """Fit the learned black-box attacks once, then score batches: columns in `LEARNED_ATTACKS` order.

    Args:
        num_classes: classes of the target.
        seed: seed of every fit (the detector data module's seed).
    """

    def __init__(self, num_classes: int, seed: int = 0) -> None:
        self.attacks = {name: BY_NAME[name].make(num_classes, seed) for name in LEARNED_ATTACKS}
        self.seconds = 0.0

    def fit(self, train: dict[str, Tensor], val: dict[str, Tensor]) -> LearnedAttacks:
        """Fit on `train`, early-stop on `val`: each a dict of logits (N, C), labels, members, images."""
        start = time.perf_counter()
        # Called from a test hook, where Lightning runs in inference mode: gradients are turned back
        # on, and the inputs copied out of inference mode (its tensors cannot be saved for backward).
        with torch.inference_mode(False), torch.enable_grad():
            train, val = ({k: v.clone() for k, v in part.items()} for part in (train, val))
            for attack in self.attacks.values():
                attack.fit(train, val)
        self.seconds = time.perf_counter() - start
        return self

    def scores(self, logits: Tensor, labels: Tensor, images: Tensor | None) -> Tensor:
        """(B, len(LEARNED_ATTACKS)) float64 scores in registry order, higher = more member-like."""
        return torch.stack([attack.score(logits, labels, images) for attack in self.attacks.values()], dim=1)

    def record(self) -> dict:
        """What the report says of the fits: their time, fallbacks, the classes fitted pooled."""
        return {
            "fit_seconds": round(self.seconds, 2),
            "notes": [note for attack in self.attacks.values() for note in attack.notes],
            "pooled_classes": list(self.attacks["class_calibrated_loss"].pooled_classes),
        }
