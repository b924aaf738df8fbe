"""mint: the Membership Inference Test (MINT) for image classifiers, on PyTorch Lightning.

The pipeline, one subpackage per stage: `mint.data` (sources, splits, data modules, activation
cache) -> `mint.models` (target and detector networks) -> `mint.tasks` (the LightningModules) ->
`mint.attacks` and `mint.evaluation` (membership scorers and their metrics) -> `mint.audit` (was
this set used?) -> `mint.experiments` (quickstart, sweeps, factor studies). See docs/architecture.md.

From Python (a notebook): `mint.audit_model(model, members, nonmembers, layers=[...])`, `mint.score`,
`mint.audit_images` (`mint.api`: the CLI's code, typed results).
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

API = ("audit_model", "score", "audit_images", "ModelAudit", "ImageScores", "SetAudit")  # `mint.api`

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
    *API,
]
__version__ = "0.2.0"


def __getattr__(name: str):
    """`mint.audit_model` and the rest of `mint.api`, imported on first use (the CLI never needs them)."""
    if name in API:
        from mint import api

        return getattr(api, name)
    raise AttributeError(f"module 'mint' has no attribute {name!r}")
