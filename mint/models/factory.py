"""A classifier built by the user's own function (`package.module:function`): trusted code, it runs."""

from __future__ import annotations

import importlib
import inspect
import sys

from torch import nn

from mint.errors import MintError
from mint.models.external import IMAGENET_MEAN, IMAGENET_STD, WeightsTarget, state_sha256


class FactoryTarget(WeightsTarget):
    """A classifier built by the user's own function, `package.module:function` (trusted code: it runs).

    For networks neither torchvision nor timm has. The function is imported and called with
    `factory_args`; it returns the `nn.Module`, into which `weights` are loaded when given (a
    function that loads its own weights may leave `weights` empty). Name a factory only in your own
    config or command line: mint never takes one from a file, nor the arguments it is called with
    (a detector checkpoint's factory is rebuilt only when you name it and its `factory_args`). A
    module of Python's standard library (`os:system`, `builtins:exec`) is refused: it builds no model.

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
        if module.split(".")[0] in sys.stdlib_module_names:  # os:system, builtins:exec, subprocess:run
            raise MintError(
                f"factory {factory!r} names {module!r}, a module of Python's standard library, which "
                "builds no models: name your own function returning the nn.Module (my_nets:small)"
            )
        if factory_args is not None and (
            not isinstance(factory_args, dict) or not all(isinstance(k, str) for k in factory_args)
        ):
            raise MintError(f"factory_args must map argument names to values, got {factory_args!r}")
        super().__init__(factory, weights, num_classes, strip_prefix, image_size, mean, std)
        self.factory, self.factory_args = factory, factory_args  # recorded as given

    def build(self) -> nn.Module:
        module, _, function = self.factory.partition(":")
        try:
            make = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError) as err:
            raise MintError(f"cannot import the factory {self.factory!r}: {err}") from err
        net = self._call(make)
        if not isinstance(net, nn.Module):
            raise MintError(f"the factory {self.factory!r} returned a {type(net).__name__}, not an nn.Module")
        return net

    def _call(self, make: object) -> object:
        """`make(**factory_args)`, refusing in one line a function whose signature does not take them."""
        args = self.factory_args or {}
        if not callable(make):
            raise MintError(f"the factory {self.factory!r} is a {type(make).__name__}, not a function")
        try:
            signature = inspect.signature(make)
        except (TypeError, ValueError):  # some builtins have none: the call itself tells
            signature = None
        try:
            if signature is not None:
                signature.bind(**args)
            else:
                return make(**args)
        except TypeError as err:
            shown = f", of signature {signature}," if signature is not None else ""
            raise MintError(
                f"the factory {self.factory!r}{shown} cannot be called with factory_args {args} ({err}): "
                "it is not a model factory, or factory_args do not fit it"
            ) from err
        return make(**args)  # the user's own code: an error inside it is theirs to see

    def network(self, weights: bool = True) -> tuple[nn.Module, str]:
        """The network, and the sha256 of its weights file; without one, of its weights themselves.

        A factory that loads its own weights has no file to hash; the hash of its tensors still
        names the model in every record and keys the activation cache (retrained weights, new cache).
        """
        if self.weights or not weights:
            return super().network(weights and bool(self.weights))
        net, _ = super().network(False)
        return net, state_sha256(net)
