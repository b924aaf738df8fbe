"""mint: the Membership Inference Test (MINT) for image classifiers, on PyTorch Lightning."""

from mint.classifier import ClassifierModule
from mint.data import (
    ClassifierDataModule,
    ImageFolderSource,
    MINTDataModule,
    NpzSource,
    SampleSource,
    TorchvisionSource,
)
from mint.detector import MINTModule

__all__ = [
    "ClassifierDataModule",
    "ClassifierModule",
    "ImageFolderSource",
    "MINTDataModule",
    "MINTModule",
    "NpzSource",
    "SampleSource",
    "TorchvisionSource",
]
__version__ = "0.1.0"
