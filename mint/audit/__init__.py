"""Audits: "was this set of images used to train the target?", with a calibrated verdict and a report."""

from mint.audit.command import main, run_audit
from mint.audit.detector import TrainedDetector, load_detector
from mint.audit.statistics import mann_whitney_greater, member_fraction_estimate

__all__ = [
    "TrainedDetector",
    "load_detector",
    "main",
    "mann_whitney_greater",
    "member_fraction_estimate",
    "run_audit",
]
