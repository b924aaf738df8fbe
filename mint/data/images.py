"""Images as every part of mint handles them: uint8 RGB arrays, their checks and conversions.

One conversion each way: any image file (`decode_image`) or PIL image (`resize_rgb`) to uint8 RGB,
any array to uint8 RGB (`to_rgb_uint8`), and uint8 images to the float tensors in [0, 1] that models
read (`to_tensor`). What cannot be converted without guessing (NaN pixels, floats outside [0, 1] and
[0, 255], channels-first arrays) is refused with a message, never read as black or white images.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from mint.errors import MintError
from mint.files import check_input_file

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
        if self.labels.ndim != 1 or self.labels.dtype.kind not in "iu":
            raise MintError(
                f"labels must be a 1-D integer array, got {self.labels.dtype} {self.labels.shape}"
            )
        self.labels = self.labels.astype(np.int64)
        if len(self.labels) != len(self.images):
            raise MintError(f"{len(self.images)} images but {len(self.labels)} labels: lengths must match")
        if len(self.labels) and self.labels.min() < 0:
            raise MintError(f"labels must be >= 0, found {self.labels.min()}")
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
            if self.groups.shape != self.labels.shape or not np.issubdtype(self.groups.dtype, np.integer):
                raise MintError(
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


# PIL modes deeper than 8 bits: `convert("RGB")` would clip them (a 16-bit scan turns white).
HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def resize_rgb(image: Image.Image, size: int | None) -> np.ndarray:
    """Convert any PIL image to RGB uint8 (H, W, 3), resized to size x size when `size` is set.

    16-bit, 32-bit integer and float images are first scaled to 8 bits by the rules of
    `to_rgb_uint8` (16-bit: divided by 257, so 65535 becomes 255).
    """
    if image.mode in HIGH_DEPTH_MODES:
        values = np.asarray(image)
        if image.mode.startswith("I;16") or (image.mode == "I" and 255 < values.max(initial=0) <= 65535):
            values = np.round(values / 257.0).astype(np.uint8)  # 16-bit: 65535 -> 255, 200 -> 1
        with warnings.catch_warnings():  # the caller counts conversions per file (`decode_image`)
            warnings.simplefilter("ignore")
            image = Image.fromarray(to_rgb_uint8(values[None])[0])
    image = image.convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _to_uint8(images: np.ndarray, notes: list[str]) -> np.ndarray:
    """Pixel values as uint8, with the scale chosen once for the whole set, or a refusal saying why."""
    kind = images.dtype.kind
    if kind not in "fiu":
        raise MintError(
            f"images must hold numbers (uint8, or floats in [0, 1] or [0, 255]), got {images.dtype}"
        )
    if kind == "f":
        bad = ~np.isfinite(images)
        if bad.any():
            count = int(bad.reshape(len(images), -1).any(1).sum())
            raise MintError(
                f"{int(bad.sum())} pixel values in {count} images are NaN or infinite; "
                "fix or drop those images (mint reads floats in [0, 1] or [0, 255])"
            )
    if not images.size:
        return images.astype(np.uint8)
    low, high = images.min(), images.max()
    if kind == "f" and low >= 0 and high <= 1.0:
        notes.append(f"float images in [0, 1] ({images.dtype}) scaled by 255 to uint8")
        return np.round(images * 255.0).astype(np.uint8)
    if low >= 0 and high < 10:
        # [0, 1] images that overshoot (1.01 after a resize), or 0/1 masks, would be black if read as 0-255
        raise MintError(
            f"{images.dtype} pixel values span [{low:g}, {high:g}]: not [0, 1] floats, and too dark for "
            "[0, 255]. If they are [0, 1] images that overshoot, clip them to [0, 1]; if they are "
            "masks or labels, they are not images; otherwise give uint8 images"
        )
    if low >= 0 and high <= 255:
        notes.append(f"{images.dtype} images in [0, 255] read as 8-bit values")
        return np.round(images).astype(np.uint8)
    hint = "divide 16-bit images by 257" if kind in "iu" else "undo any normalization (mean / std) first"
    raise MintError(
        f"{images.dtype} pixel values span [{low:g}, {high:g}]: mint reads uint8, or floats in [0, 1] "
        f"(scaled by 255) or [0, 255]; rescale the images ({hint})"
    )


def to_rgb_uint8(images: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
    """Return images as uint8 (N, H, W, 3), converting grayscale, RGBA and other number types.

    Args:
        images: (N, H, W), (N, H, W, 1), (N, H, W, 3) or (N, H, W, 4) array: uint8, integers in
            [0, 255], or floats in [0, 1] (scaled by 255) or [0, 255]. Anything else (NaN, other
            ranges, channels first) is refused with a message saying what to do.
        notes: list that receives a line for every conversion made.
    """
    images = np.asarray(images)
    notes = notes if notes is not None else []
    if images.ndim == 3:  # (N, H, W) grayscale -> (N, H, W, 1)
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        first = images.ndim == 4 and images.shape[1] in (1, 3, 4) and images.shape[-1] > 4
        raise MintError(
            f"images must have shape (N, H, W[, 1|3|4]), got {images.shape}"
            + ("; these look channels-first: transpose them to (N, H, W, C)" if first else "")
        )
    if images.dtype != np.uint8:
        images = _to_uint8(images, notes)
        warnings.warn(f"mint: {notes[-1]}", stacklevel=3)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
        notes.append("converted grayscale images to RGB")
        warnings.warn("grayscale images were converted to RGB", stacklevel=3)
    elif images.shape[-1] == 4:
        images = np.ascontiguousarray(images[..., :3])
        notes.append("dropped the alpha channel of RGBA images")
        warnings.warn("RGBA images were converted to RGB (alpha dropped)", stacklevel=3)
    return images


def decode_image(path: str | Path, size: int | None, notes: list[str] | None = None) -> np.ndarray:
    """Read one image file as uint8 RGB (resized to `size`); `MintError` naming the file if it cannot be.

    Oversized files (PIL's decompression-bomb limit: more than about 179 million pixels) are refused
    before decoding, since decoding them could exhaust memory.
    """
    check_input_file(path, "image file")  # a FIFO would wait forever, a device never end
    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file fails here, not later
            if notes is not None and im.mode != "RGB":
                depth = " (scaled to 8 bits)" if im.mode in HIGH_DEPTH_MODES else ""
                notes.append(f"{im.mode}{depth} converted to RGB")
            if notes is not None and size and im.size != (size, size):
                notes.append(f"resized to {size}x{size}")
            return resize_rgb(im, size)
    except Image.DecompressionBombError as err:
        raise MintError(f"{path}: too large to decode safely ({err})") from err
    except (OSError, ValueError, SyntaxError, EOFError) as err:  # PIL's errors for damaged files
        if isinstance(err, MintError):
            raise
        raise MintError(f"{path} cannot be decoded as an image ({type(err).__name__}: {err})") from err


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
