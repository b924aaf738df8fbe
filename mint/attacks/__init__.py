"""Membership scorers ("attacks"): the detector's score and the black-box baselines, on the same images."""

from mint.attacks.baselines import BASELINES, baseline_scores
from mint.attacks.scoring import SCORERS, score_batch

__all__ = ["BASELINES", "SCORERS", "baseline_scores", "score_batch"]
