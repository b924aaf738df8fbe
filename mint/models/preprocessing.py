"""What a target is given about its images and classes: checked where it enters, recorded with every result.

Every target kind (a torchvision, timm or factory architecture given weights, a TorchScript or
exported program) takes its image size, per-channel mean and std, and most a class count; each is
checked here, once for all kinds, with the setting's name, the value given and the range allowed;
and a network built by name runs once on a blank image of that size before anything else.
"""

from __future__ import annotations

import torch
from torch import nn

from mint.errors import MintError, check_float

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Sides of the square images a target reads: a side of 10^6 pixels would allocate terabytes for
# one batch; the largest classifiers read 518 to 1024 px.
IMAGE_SIZES = (8, 4096)
MAX_CLASSES = 1_000_000  # a last layer of 10^9 outputs would not fit in memory


def is_int(value: object) -> bool:
    """A whole number, not a bool (True is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_image_size(name: str, value: int) -> int:
    """Refuse a side of the images outside `IMAGE_SIZES` (or not a whole number)."""
    low, high = IMAGE_SIZES
    if not is_int(value) or not low <= value <= high:
        raise MintError(f"{name} must be a whole number of pixels in [{low}, {high}], got {value!r}")
    return value


def check_classes(name: str, value: int | None) -> int | None:
    """Refuse a class count outside [1, MAX_CLASSES]; None passes (read from the network's output)."""
    if value is not None and (not is_int(value) or not 1 <= value <= MAX_CLASSES):
        raise MintError(f"{name} must be a whole number in [1, {MAX_CLASSES:,}], got {value!r}")
    return value


def check_preprocessing(image_size: int, mean: tuple, std: tuple) -> tuple[tuple, tuple]:
    """Refuse what every target kind is given about its images, if unusable; return (mean, std) as tuples.

    A std of 0 divides every pixel by 0: NaN activations, whose scores rank anywhere (an AUROC of
    1.0 on an untrained network). Each value must be finite, std > 0.
    """
    check_image_size("image_size", image_size)
    for name, given in (("mean", mean), ("std", std)):
        if not isinstance(given, list | tuple) or len(given) != 3:
            raise MintError(f"{name} needs 3 values (one per channel: R, G, B), got {given!r}")
        for i, value in enumerate(given):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise MintError(f"{name}[{i}] must be a number, got {value!r}")
            check_float(f"{name}[{i}]", value, minimum=0.0 if name == "std" else None, open_minimum=True)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def preprocessing_record(image_size: int, mean: tuple, std: tuple, crop_size: int | None = None) -> dict:
    """What is done to an image in [0, 1] before a network reads it, as recorded with every result."""
    crop = crop_size if crop_size and crop_size < image_size else None
    return {
        "image_size": image_size,
        "resize": f"whole image to {image_size}x{image_size}, bilinear (antialiased)",
        "crop_size": crop,
        "crop": f"center {crop}x{crop}" if crop else "none",
        "mean": [float(m) for m in mean],
        "std": [float(v) for v in std],
        "channel_order": "RGB",
    }


def _made_for(net: nn.Module) -> int | None:
    """The image side a network is built for, where it says (timm's pretrained_cfg, torchvision's ViT)."""
    cfg = getattr(net, "pretrained_cfg", None) or getattr(net, "default_cfg", None) or {}
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    if isinstance(size, tuple | list) and size and is_int(size[-1]):
        return size[-1]
    side = getattr(net, "image_size", None)
    return side if is_int(side) else None


def dry_run(net: nn.Module, image_size: int, name: str) -> None:
    """Run `net` once on a blank image, so that a network made for another image size says so here.

    In one line: timm's ViT asserts its 224 px in a traceback, deep in a later pass. Lazy layers
    take their shapes from this pass too.
    """
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, image_size, image_size))
    except (AssertionError, RuntimeError, ValueError, TypeError, IndexError) as err:
        made = _made_for(net)
        hint = f"; it reads images of {made} px: pass --image-size {made} (image_size: {made})"
        hint = hint if made else ""
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        size = f"{image_size} x {image_size} px"
        raise MintError(f"{name} does not run on images of {size} ({first}){hint}") from err
