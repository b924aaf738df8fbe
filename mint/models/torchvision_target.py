"""A torchvision classifier by architecture name, with weights trained anywhere (a target kind)."""

from __future__ import annotations

import torchvision
from torch import nn

from mint.errors import MintError
from mint.models.external import WeightsTarget, check_known_arch
from mint.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, preprocessing_record


class TorchvisionTarget(WeightsTarget):
    """A torchvision classifier by architecture name, with weights trained anywhere.

    Args:
        arch: a name of `torchvision.models.list_models()` (e.g. `resnet18`).
        small_input_stem: the ResNet stem adapted to 32 x 32 images (3x3 stride-1 first
            convolution, no max-pool), as mint's own torchvision targets and most CIFAR recipes use.
        transforms: the name of torchvision weights (e.g. `ResNet18_Weights.IMAGENET1K_V1`) whose
            `transforms()` give the sizes and statistics (resize to 256, center crop 224, mean, std)
            in place of `image_size`, `mean` and `std`; nothing is downloaded. mint resizes the whole
            image to a square (bilinear, antialiased), where torchvision resizes the shorter side
            (bicubic for some weights): the same for square images up to the interpolation.
        weights, num_classes, strip_prefix, image_size, mean, std: as for `WeightsTarget`.
    """

    def __init__(
        self,
        arch: str,
        weights: str,
        num_classes: int,
        strip_prefix: str = "",
        image_size: int = 224,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        small_input_stem: bool = False,
        transforms: str | None = None,
    ) -> None:
        super().__init__(arch, weights, num_classes, strip_prefix, image_size, mean, std)
        self.small_input_stem, self.transforms = small_input_stem, transforms
        self.preset = None  # (resize, crop, mean, std) of the named weights' transforms()
        if transforms:
            try:
                t = torchvision.models.get_weight(transforms).transforms()
            # (a malformed name raises any of these: "resnet18.X" a TypeError)
            except (ValueError, KeyError, AttributeError, TypeError, IndexError) as err:
                raise MintError(
                    f"unknown torchvision weights {transforms!r} for transforms ({err}); e.g. "
                    "ResNet18_Weights.IMAGENET1K_V1 (torchvision.models.get_model_weights('resnet18'))"
                ) from err
            self.preset = (t.resize_size[0], t.crop_size[0], tuple(t.mean), tuple(t.std))

    def preprocessing(self) -> dict:
        if self.preset is None:
            return super().preprocessing()
        resize, crop, mean, std = self.preset
        return preprocessing_record(resize, mean, std, crop) | {"from": f"{self.transforms}.transforms()"}

    def check_arch(self, arch: str) -> None:
        names = torchvision.models.list_models(module=torchvision.models)
        check_known_arch(arch, names, "torchvision", "torchvision.models.list_models()")

    def build(self) -> nn.Module:
        net = torchvision.models.get_model(self.arch, num_classes=self.num_classes, weights=None)
        if self.small_input_stem and isinstance(getattr(net, "conv1", None), nn.Conv2d):
            net.conv1 = nn.Conv2d(3, net.conv1.out_channels, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        return net
