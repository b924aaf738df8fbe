"""Images as every part of mint handles them: uint8 RGB arrays, their checks and conversions.

One conversion each way: any PIL image to uint8 RGB (`resize_rgb`), any array to uint8 RGB
(`to_rgb_uint8`), and uint8 images to the float tensors in [0, 1] that models read (`to_tensor`).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class ImageSet:
    """Images of one split of a data source.

    Attributes:
        images: uint8 array of shape (N, H, W, 3), RGB.
        labels: int64 array of shape (N,).
        groups: optional int64 array of shape (N,): images sharing a group id (e.g. frames of one
            GTSRB track) must stay on the same side of every membership boundary.
        notes: what was converted on loading (grayscale, RGBA, resized), for the run's records.
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.images = to_rgb_uint8(self.images, self.notes)
        self.labels = np.asarray(self.labels)
        if self.labels.ndim != 1 or not np.issubdtype(self.labels.dtype, np.integer):
            raise ValueError(
                f"labels must be a 1-D integer array, got {self.labels.dtype} {self.labels.shape}"
            )
        self.labels = self.labels.astype(np.int64)
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels: lengths must match")
        if len(self.labels) and self.labels.min() < 0:
            raise ValueError(f"labels must be >= 0, found {self.labels.min()}")
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
            if self.groups.shape != self.labels.shape or not np.issubdtype(self.groups.dtype, np.integer):
                raise ValueError(
                    f"groups must be an integer array with one id per image ({len(self.labels)}), "
                    f"got {self.groups.dtype} {self.groups.shape}"
                )
            self.groups = self.groups.astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def fingerprint(self) -> str:
        """Sha256 of pixels, labels and groups: identifies the data a split was made from."""
        h = hashlib.sha256()
        h.update(str(self.images.shape).encode())
        h.update(np.ascontiguousarray(self.images).data)
        h.update(self.labels.tobytes())
        if self.groups is not None:
            h.update(self.groups.tobytes())
        return h.hexdigest()


def to_tensor(images: np.ndarray | Tensor) -> Tensor:
    """uint8 images (..., H, W, 3) as floats (..., 3, H, W) in [0, 1], on the device they are on."""
    images = torch.as_tensor(images)
    return images.movedim(-1, -3).float().div_(255.0)  # (..., H, W, C) -> (..., C, H, W)


def resize_rgb(image: Image.Image, size: int | None) -> np.ndarray:
    """Convert any PIL image to RGB uint8 (H, W, 3), resized to size x size when `size` is set."""
    image = image.convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def to_rgb_uint8(images: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
    """Return images as uint8 (N, H, W, 3), converting grayscale and RGBA instead of failing.

    Args:
        images: (N, H, W), (N, H, W, 1), (N, H, W, 3) or (N, H, W, 4) array, uint8 or floats in [0, 1].
        notes: list that receives a line for every conversion made.
    """
    images = np.asarray(images)
    notes = notes if notes is not None else []
    if images.ndim == 3:  # (N, H, W) grayscale -> (N, H, W, 1)
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"images must have shape (N, H, W[, 1|3|4]), got {images.shape}")
    if images.dtype != np.uint8:
        if np.issubdtype(images.dtype, np.floating) and images.size and images.max() <= 1.0:
            images = np.round(images * 255.0)
        images = np.clip(images, 0, 255).astype(np.uint8)
        notes.append("converted images to uint8")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
        notes.append("converted grayscale images to RGB")
        warnings.warn("grayscale images were converted to RGB", stacklevel=3)
    elif images.shape[-1] == 4:
        images = np.ascontiguousarray(images[..., :3])
        notes.append("dropped the alpha channel of RGBA images")
        warnings.warn("RGBA images were converted to RGB (alpha dropped)", stacklevel=3)
    return images


class ImageDataset(Dataset):
    """Items `(image, label)` for a subset of an `ImageSet`; images as float (3, H, W) in [0, 1].

    Args:
        data: the image set.
        indices: which of its images, in this order.
        transform: optional tensor transform (augmentation) applied to each image.
    """

    def __init__(self, data: ImageSet, indices: np.ndarray, transform=None) -> None:
        self.data = data
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = self.indices[i]
        image = to_tensor(self.data.images[j])
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.data.labels[j])
