"""Membership attacks, listed once (`registry.ATTACKS`), scored on the same images as the detector."""

from mint.attacks.registry import ATTACKS, BASELINES, BLACK_BOX, LEARNED_ATTACKS, REFERENCE_ATTACKS, Attack
from mint.attacks.scoring import SCORERS, baseline_scores, score_batch

__all__ = [
    "ATTACKS",
    "BASELINES",
    "BLACK_BOX",
    "LEARNED_ATTACKS",
    "REFERENCE_ATTACKS",
    "SCORERS",
    "Attack",
    "baseline_scores",
    "score_batch",
]
