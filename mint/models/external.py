"""Targets trained elsewhere: the kinds' base classes, reading a weights file, preprocessing.

The weights are a `.safetensors` file (read with the `safetensors` package) or a `.pt` / `.pth` file
holding a state_dict (read with `weights_only=True`). A pickled whole model is refused: loading it
would run code from the file; the message says how to save a state_dict instead. Every mismatch
between the architecture and the weights is said in terms of what to change (a key prefix to strip,
the number of classes the weights hold, close architecture names).
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
from pathlib import Path

import torch
from torch import Tensor, nn

from mint.errors import MintError
from mint.files import read_checkpoint
from mint.models.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_classes,
    check_preprocessing,
    dry_run,
    preprocessing_record,
)

SAVE_HINT = (
    "Save the weights alone: torch.save(model.state_dict(), 'weights.pt'), or "
    "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')"
)


def state_sha256(net: nn.Module) -> str:
    """The sha256 of a network's weights themselves (names and bytes), for a network with no file."""
    h = hashlib.sha256()
    for key, value in net.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def read_weights(path: str | Path) -> tuple[dict[str, Tensor], str]:
    """A state_dict from a `.safetensors` or `.pt` / `.pth` file, and the file's sha256."""
    path = Path(path)
    if not path.is_file():
        raise MintError(f"weights file not found: {str(path)!r} (absolute: {path.absolute()})")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load

        data = path.read_bytes()
        try:
            return load(data), hashlib.sha256(data).hexdigest()
        except SafetensorError as err:
            raise MintError(f"{path} is not a valid .safetensors file ({err})") from err
    try:
        state, sha256 = read_checkpoint(path)
    except MintError as err:
        raise MintError(f"{err}. {SAVE_HINT}") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a Lightning checkpoint or a {"state_dict": ...} bundle
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise MintError(f"{path} holds no state_dict (a mapping of names to tensors). {SAVE_HINT}")
    return state, sha256


def _shared_prefix(keys: list[str]) -> str:
    """The dotted prefix every key starts with (`module.`, `model.`), or ''."""
    first = keys[0].split(".")[0] + "." if keys and "." in keys[0] else ""
    return first if first and all(k.startswith(first) for k in keys) else ""


def load_weights(net: nn.Module, state: dict[str, Tensor], source: str, strip_prefix: str = "") -> None:
    """Load `state` into `net` (strictly), explaining any mismatch in terms of what to change."""
    if strip_prefix:
        state = {k.removeprefix(strip_prefix): v for k, v in state.items()}
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        hint = ""
        prefix = _shared_prefix(unexpected)
        if prefix and all(k.removeprefix(prefix) in own for k in unexpected):
            hint = f" Every key of the file starts with {prefix!r}: set strip_prefix: {prefix!r}."
        parts = [f"{len(keys)} keys {what} (e.g. {keys[:3]})" for what, keys in
                 (("missing", missing), ("unexpected", unexpected)) if keys]  # fmt: skip
        raise MintError(
            f"the weights of {source} do not fit {net.__class__.__name__}: {', '.join(parts)}.{hint}"
        )
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items() if state[k].shape != v.shape]
    if wrong:
        key, theirs, ours = wrong[-1]  # the classifier layer comes last
        # Only the first dimension differs at the last layer: the weights have another class count.
        classes = (
            f" The weights hold {theirs[0]} classes: set num_classes: {theirs[0]}."
            if theirs[1:] == ours[1:]
            else ""
        )
        raise MintError(
            f"the weights of {source} have other shapes: {key} is {theirs} in the file, {ours} in the "
            f"architecture ({len(wrong)} tensors differ).{classes}"
        )
    net.load_state_dict(state)


def check_known_arch(arch: str, names: list[str], library: str, listing: str) -> None:
    """Refuse an architecture name the library does not have, listing close names."""
    if arch not in names:
        close = difflib.get_close_matches(arch, names, n=5, cutoff=0.5)
        raise MintError(
            f"unknown {library} architecture {arch!r}"
            + (f"; close names: {', '.join(close)}" if close else "")
            + f" (all of them: {listing})"
        )


class ExternalTarget:
    """A classifier trained outside mint: how to build it, its file and its preprocessing.

    Subclasses (`TorchvisionTarget`, `TimmTarget`, `HuggingFaceTarget`, `FactoryTarget`,
    `ExportedTarget`, `ScriptTarget`) are chosen in a detector config by `class_path` under
    `data.init_args.target`; `ModuleTarget` (a model object) is given by `mint.audit_model`.
    """

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def network(self, weights: bool = True) -> tuple[nn.Module, str]:
        """The classifier (eval mode) and its file's sha256; `weights=False`: weights come later."""
        raise NotImplementedError

    def preprocessing(self) -> dict:
        """What is done to an image in [0, 1] before the network reads it."""
        return preprocessing_record(self.image_size, self.mean, self.std)

    def config(self) -> dict:
        """`class_path` and `init_args`: how a config names this target, recorded with every result."""
        params = inspect.signature(type(self).__init__).parameters
        args = {k: getattr(self, k) for k in params if k != "self" and hasattr(self, k)}
        args = {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}
        return {"class_path": f"mint.models.{type(self).__name__}", "init_args": args}


class ProgramTarget(ExternalTarget):
    """A classifier saved as a program (graph and weights in one file): `ExportedTarget`, `ScriptTarget`.

    Args:
        program: the file.
        image_size: side of the square images it reads (a program may run only at the size it was
            exported or traced for).
        mean: per-channel mean subtracted from images in [0, 1].
        std: per-channel standard deviation images are divided by.
    """

    def __init__(
        self,
        program: str,
        image_size: int = 224,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        self.mean, self.std = check_preprocessing(image_size, mean, std)
        self.program, self.image_size = program, image_size


class WeightsTarget(ExternalTarget):
    """A classifier built by name and given weights trained anywhere (subclasses say how to build it).

    Args:
        arch: the architecture's name in its library (e.g. `resnet18`).
        weights: `.safetensors` file, or `.pt` / `.pth` file holding a state_dict.
        num_classes: number of classes of the classifier (its last layer's outputs).
        strip_prefix: removed from the start of every key of the file (`module.` of DataParallel,
            `model.` of a wrapping LightningModule).
        image_size: side of the square images the network reads (images are resized to it).
        mean: per-channel mean subtracted from images in [0, 1] (ImageNet's by default).
        std: per-channel standard deviation images are divided by.
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
    ) -> None:
        self.check_arch(arch)
        self.mean, self.std = check_preprocessing(image_size, mean, std)
        self.arch, self.weights, self.num_classes = arch, weights, check_classes("num_classes", num_classes)
        self.strip_prefix, self.image_size = strip_prefix, image_size
        self.resolve()

    def check_arch(self, arch: str) -> None:
        """Refuse an architecture the library does not have (subclasses know their library)."""

    def resolve(self) -> None:
        """Settle what the arguments name (subclasses: e.g. pretrained weights and their preprocessing)."""

    def build(self) -> nn.Module:
        """The untrained classifier."""
        raise NotImplementedError

    def network(self, weights: bool = True) -> tuple[nn.Module, str]:
        """The classifier with its weights loaded (eval mode), and the weights file's sha256.

        With `weights=False` the file is not read (a detector checkpoint carries the weights).
        """
        net = self.build()
        dry_run(net, self.image_size, self.arch)
        if not weights:
            return net.eval(), ""
        state, sha256 = read_weights(self.weights)
        load_weights(net, state, self.weights, self.strip_prefix)
        return net.eval(), sha256
