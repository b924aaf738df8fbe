"""A classifier built by the user's own function (`package.module:function`): trusted code, it runs."""

from __future__ import annotations

import hashlib
import importlib

import torch
from torch import nn

from mint.errors import MintError
from mint.models.external import IMAGENET_MEAN, IMAGENET_STD, WeightsTarget


class FactoryTarget(WeightsTarget):
    """A classifier built by the user's own function, `package.module:function` (trusted code: it runs).

    For networks neither torchvision nor timm has. The function is imported and called with
    `factory_args`; it returns the `nn.Module`, into which `weights` are loaded when given (a
    function that loads its own weights may leave `weights` empty). Name a factory only in your own
    config or command line: mint never takes one from a file.

    Args:
        factory: `package.module:function`, importable from the working folder or the environment.
        factory_args: keyword arguments of the function.
        weights, num_classes, strip_prefix, image_size, mean, std: as for `WeightsTarget`
            (`weights` may be empty; `num_classes` is then read from the network's output).
    """

    def __init__(
        self,
        factory: str,
        factory_args: dict | None = None,
        weights: str = "",
        num_classes: int | None = None,
        strip_prefix: str = "",
        image_size: int = 224,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        module, _, function = factory.partition(":")
        if not module or not function.isidentifier():
            raise MintError(f"factory {factory!r} must be 'package.module:function'")
        super().__init__(factory, weights, num_classes, strip_prefix, image_size, mean, std)
        self.factory, self.factory_args = factory, factory_args  # recorded as given

    def build(self) -> nn.Module:
        module, _, function = self.factory.partition(":")
        try:
            make = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError) as err:
            raise MintError(f"cannot import the factory {self.factory!r}: {err}") from err
        net = make(**(self.factory_args or {}))
        if not isinstance(net, nn.Module):
            raise MintError(f"the factory {self.factory!r} returned a {type(net).__name__}, not an nn.Module")
        return net

    def network(self, weights: bool = True) -> tuple[nn.Module, str]:
        """The network, and the sha256 of its weights file; without one, of its weights themselves.

        A factory that loads its own weights has no file to hash; the hash of its tensors still
        names the model in every record and keys the activation cache (retrained weights, new cache).
        """
        if self.weights or not weights:
            return super().network(weights and bool(self.weights))
        net, _ = super().network(False)
        h = hashlib.sha256()
        for key, value in net.state_dict().items():
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return net, h.hexdigest()
