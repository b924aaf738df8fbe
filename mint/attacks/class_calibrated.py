"""Class-conditional calibrated loss: a per-class Gaussian likelihood ratio of the target's confidence.

A learned black-box baseline: it sees only the target's logits and the label, like the loss attack,
but is fitted on the detector's training set (known members and non-members). The fit and the score
are `mint.models.calibrated_loss` (the detector can start from the same score); this is the attack,
with the note the report prints when some classes fell back to the pooled fit.
"""

from __future__ import annotations

from torch import Tensor

from mint.models.calibrated_loss import MIN_PER_CLASS, fit_class_gaussians, log_likelihood_ratio
from mint.signals import logit_confidence


class ClassCalibratedLoss:
    """Per-class Gaussian likelihood ratio of the logit-scaled confidence (float64).

    Args:
        num_classes: classes of the target.
        seed: unused (the fit draws nothing); every learned attack takes one.
        min_per_class: known members and non-members a class needs for its own fit.
    """

    name = "class_calibrated_loss"

    def __init__(self, num_classes: int, seed: int = 0, min_per_class: int = MIN_PER_CLASS) -> None:
        self.num_classes = num_classes
        self.min_per_class = min_per_class
        self.pooled_classes: list[int] = []

    def fit(self, train: dict[str, Tensor], val: dict[str, Tensor] | None = None) -> ClassCalibratedLoss:
        """Fit each class's two Gaussians on known images: `train`'s logits (N, C), labels, members."""
        phi = logit_confidence(train["logits"], train["labels"])
        self.params, self.pooled_classes = fit_class_gaussians(
            phi, train["labels"], train["members"], self.num_classes, self.min_per_class
        )
        return self

    def score(self, logits: Tensor, labels: Tensor, images: Tensor | None = None) -> Tensor:
        """Log likelihood ratio (B,) in float64: higher = more member-like (the images are not read)."""
        return log_likelihood_ratio(logit_confidence(logits, labels), labels, self.params)

    @property
    def notes(self) -> list[str]:
        """What the report says when some classes fell back to the pooled fit."""
        if not self.pooled_classes:
            return []
        shown = ", ".join(map(str, self.pooled_classes[:20])) + (
            " ..." if len(self.pooled_classes) > 20 else ""
        )
        return [
            f"{self.name}: {len(self.pooled_classes)} classes ({shown}) have fewer than "
            f"{self.min_per_class} known members or non-members in the detector's training set: "
            "they use the fit of all classes pooled (as does the detector's calibrated base, fitted on "
            "the same images)"
        ]
