"""Data: sources of images, the member / non-member split, and the LightningDataModules that serve them."""

from mint.data.activation_cache import ActivationCache
from mint.data.class_subset import ClassSubset
from mint.data.detector_datamodule import DetectorDataModule
from mint.data.fake import FakeSource
from mint.data.folder_source import ImageFolderSource
from mint.data.images import ImageSet
from mint.data.known import KnownData, load_known
from mint.data.membership import build_membership, rebuild_membership
from mint.data.reference_datamodule import ReferenceDataModule
from mint.data.sample import SampleSource
from mint.data.sources import NpzSource, Source, TorchvisionSource
from mint.data.split import membership_split, partition
from mint.data.target_datamodule import TargetDataModule

__all__ = [
    "ActivationCache",
    "ClassSubset",
    "DetectorDataModule",
    "FakeSource",
    "ImageFolderSource",
    "ImageSet",
    "KnownData",
    "NpzSource",
    "ReferenceDataModule",
    "SampleSource",
    "Source",
    "TargetDataModule",
    "TorchvisionSource",
    "build_membership",
    "load_known",
    "membership_split",
    "partition",
    "rebuild_membership",
]
