"""Data sources, the membership split and the LightningDataModules that serve them."""

from mint.data.class_subset import ClassSubset
from mint.data.classifier_datamodule import ClassifierDataModule
from mint.data.image_set import ImageSet
from mint.data.membership import build_membership, rebuild_membership
from mint.data.mint_datamodule import MINTDataModule
from mint.data.sample import SampleSource
from mint.data.sources import ImageFolderSource, NpzSource, Source, TorchvisionSource
from mint.data.split import membership_split, partition

__all__ = [
    "ClassSubset",
    "ClassifierDataModule",
    "ImageFolderSource",
    "ImageSet",
    "MINTDataModule",
    "NpzSource",
    "SampleSource",
    "Source",
    "TorchvisionSource",
    "build_membership",
    "membership_split",
    "partition",
    "rebuild_membership",
]
