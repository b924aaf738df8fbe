"""Training tasks: the LightningModules that train a target and a detector, and their run safety."""

from mint.tasks.detector import DetectorModule
from mint.tasks.target import TargetModule

__all__ = ["DetectorModule", "TargetModule"]
