"""mint: the Membership Inference Test (MINT) for image classifiers, on PyTorch Lightning.

The pipeline, one subpackage per stage: `mint.data` (sources, splits, data modules, activation
cache) -> `mint.models` (target and detector networks) -> `mint.tasks` (the LightningModules) ->
`mint.attacks` and `mint.evaluation` (membership scorers and their metrics) -> `mint.audit` (was
this set used?) -> `mint.experiments` (quickstart, sweeps, factor studies). See docs/architecture.md.
"""

from mint.data import (
    ClassSubset,
    DetectorDataModule,
    FakeSource,
    ImageFolderSource,
    NpzSource,
    SampleSource,
    TargetDataModule,
    TorchvisionSource,
)
from mint.tasks import DetectorModule, TargetModule

__all__ = [
    "ClassSubset",
    "DetectorDataModule",
    "DetectorModule",
    "FakeSource",
    "ImageFolderSource",
    "NpzSource",
    "SampleSource",
    "TargetDataModule",
    "TargetModule",
    "TorchvisionSource",
]
__version__ = "0.2.0"
