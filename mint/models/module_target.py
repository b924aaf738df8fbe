"""A classifier held in Python (a notebook's `nn.Module`) as a target kind: `mint.audit_model` reads it."""

from __future__ import annotations

import copy

from torch import nn

from mint.errors import MintError
from mint.models.external import IMAGENET_MEAN, IMAGENET_STD, ExternalTarget, state_sha256
from mint.models.preprocessing import check_preprocessing, dry_run


class ModuleTarget(ExternalTarget):
    """A classifier given as an `nn.Module` object, not a file: for `mint.audit_model` and `mint.score`.

    mint reads a copy (the module given is never changed: not frozen, moved or put in eval mode).
    Its weights' sha256 names it in every record and keys the activation cache; a detector's
    checkpoint carries the weights, but not the Python class: `mint.score` and `mint.audit_images`
    take the module again to rebuild it (its weights then come from the checkpoint).

    Args:
        module: the classifier: images (B, 3, image_size, image_size), normalized by `mean` and
            `std`, to logits (B, classes).
        image_size: side of the square images it reads (images of another size are resized).
        mean: per-channel mean subtracted from images in [0, 1], as in its training.
        std: per-channel standard deviation images are divided by.
    """

    def __init__(
        self,
        module: nn.Module,
        image_size: int = 224,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise MintError(f"the model must be a torch.nn.Module, got {type(module).__name__}")
        self.mean, self.std = check_preprocessing(image_size, mean, std)
        self.module, self.image_size = module, image_size

    def network(self, weights: bool = True) -> tuple[nn.Module, str]:
        """A copy of the module on the CPU, in eval mode, and its weights' sha256."""
        try:
            net = copy.deepcopy(self.module).cpu().eval()
        except Exception as err:  # a module holding a lock, a file handle, a generator...
            raise MintError(
                f"mint reads a copy of the model and cannot copy this {type(self.module).__name__} "
                f"({type(err).__name__}: {err}); save it and give it as a file kind (TorchvisionTarget, ...)"
            ) from err
        dry_run(net, self.image_size, type(self.module).__name__)
        return net, state_sha256(net) if weights else ""

    def config(self) -> dict:
        """The record: the module's class by name (a live object is not recorded), its preprocessing."""
        cls = type(self.module)
        return {
            "class_path": "mint.models.ModuleTarget",
            "init_args": {
                "module": f"{cls.__module__}.{cls.__qualname__}",
                "image_size": self.image_size,
                "mean": list(self.mean),
                "std": list(self.std),
            },
        }
