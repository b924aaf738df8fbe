"""Evaluation of membership scorers: metrics with intervals, DDP-safe collectors, ROC plots, test reports."""

from mint.evaluation.collectors import MembershipMetrics, ScoreCollector
from mint.evaluation.metrics import (
    auroc,
    auroc_ci,
    best_threshold,
    full_report,
    membership_scores_summary,
    roc_curve,
    tpr_at_fpr,
)

__all__ = [
    "MembershipMetrics",
    "ScoreCollector",
    "auroc",
    "auroc_ci",
    "best_threshold",
    "full_report",
    "membership_scores_summary",
    "roc_curve",
    "tpr_at_fpr",
]
