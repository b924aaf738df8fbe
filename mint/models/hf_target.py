"""A Hugging Face `AutoModelForImageClassification` folder (config.json + safetensors) as a target kind."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from mint.errors import MintError
from mint.models.external import ExternalTarget, load_weights, read_weights
from mint.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, check_preprocessing, dry_run

PROCESSOR = "preprocessor_config.json"


def _first_tensor(value: object) -> Tensor | None:
    """A module's output as one tensor: itself, the first of a tuple, or a model output's first field."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, dict):  # transformers' ModelOutput is an ordered dict
        value = list(value.values())
    if isinstance(value, tuple | list):
        return next((v for v in value if isinstance(v, Tensor)), None)
    return None


class HuggingFaceNetwork(nn.Module):
    """A transformers image classifier as a module: `forward` gives the logits, `read` any submodule's output.

    Read by forward hooks, not a `torch.fx` graph: transformers' models check input shapes in
    Python, which `create_feature_extractor` cannot trace.
    """

    def __init__(self, model: nn.Module, image_size: int) -> None:
        super().__init__()
        self.model, self.image_size = model, image_size
        self._names: list[str] | None = None

    def layer_names(self) -> list[str]:
        """Every submodule that gives a tensor, in the order they finish; last: `output`, the logits.

        Found by one dry forward pass: containers a model iterates over (ModuleList, or a Sequential
        it loops through) are never called and have no output of their own.
        """
        if self._names is None:
            with torch.no_grad():
                zeros = torch.zeros(1, 3, self.image_size, self.image_size)
                called = self._run(zeros, [n for n, _ in self.model.named_modules() if n])
            logits = called.pop("output")  # (the module giving the logits themselves is `output`)
            self._names = [n for n, v in called.items() if v is not None and v is not logits] + ["output"]
        return self._names

    def forward(self, images: Tensor) -> Tensor:
        return self.model(pixel_values=images, return_dict=True).logits

    def read(self, images: Tensor, names: list[str]) -> dict[str, Tensor]:
        """{name: output} of the submodules `names` (and `output`: the logits), from one forward pass."""
        unknown = [n for n in names if n not in self.layer_names()]
        if unknown:
            raise MintError(
                f"unknown layer(s) {unknown} of the model; valid names: {self.layer_names()[:40]}"
            )
        captured = self._run(images, [n for n in names if n != "output"])
        return {n: captured[n] for n in names}

    def _run(self, images: Tensor, names: list[str]) -> dict[str, Tensor | None]:
        """One forward pass: {name: module output as a tensor (None: none)}, in finishing order.

        The logits are under `output`.
        """
        modules = dict(self.model.named_modules())
        captured: dict[str, Tensor | None] = {}

        def keep(name: str):
            def hook(module: nn.Module, inputs: object, output: object) -> None:  # None: output unchanged
                captured.setdefault(name, _first_tensor(output))

            return hook

        hooks = [modules[n].register_forward_hook(keep(n)) for n in dict.fromkeys(names)]
        try:
            captured["output"] = self(images)
        finally:
            for hook in hooks:
                hook.remove()
        return captured


class HuggingFaceTarget(ExternalTarget):
    """A Hugging Face transformers image classifier: a `save_pretrained` folder (`pip install transformers`).

    The folder holds config.json and the weights as `.safetensors`. The model is built by
    `AutoModelForImageClassification.from_config` from that config; the weights are read by mint
    (safetensors only: no pickle), and a config that names code of its own (`auto_map`) is refused:
    no code from the folder runs. Nothing is downloaded. Layers are the model's submodule names
    (`mint layers` lists them).

    Args:
        folder: the model's folder (config.json, model.safetensors or its shards).
        image_size: side of the images it reads; default: the folder's `preprocessor_config.json`
            (its crop size, else its size), else 224.
        mean: per-channel mean of images in [0, 1]; default: the preprocessor's `image_mean`, else ImageNet's.
        std: per-channel standard deviation; default: the preprocessor's `image_std`, else ImageNet's.
    """

    def __init__(
        self,
        folder: str,
        image_size: int | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ) -> None:
        path = Path(folder)
        if not (path / "config.json").is_file():
            raise MintError(f"{folder!r} is not a Hugging Face model folder (no config.json in it)")
        processor = json.loads((path / PROCESSOR).read_text()) if (path / PROCESSOR).is_file() else {}
        size = processor.get("crop_size") or processor.get("size") or {}
        side = size if isinstance(size, int) else (size.get("height") or size.get("shortest_edge"))
        self.folder, self.image_size = folder, image_size or side or 224
        self.mean, self.std = check_preprocessing(
            self.image_size, mean or processor.get("image_mean") or IMAGENET_MEAN,
            std or processor.get("image_std") or IMAGENET_STD,
        )  # fmt: skip

    def _files(self) -> list[Path]:
        """The weights files: model.safetensors, or the shards its index lists."""
        path = Path(self.folder)
        index = path / "model.safetensors.index.json"
        if index.is_file():
            return [path / f for f in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
        if (path / "model.safetensors").is_file():
            return [path / "model.safetensors"]
        raise MintError(
            f"{self.folder} has no model.safetensors; mint reads safetensors weights only (no pickle): "
            "save the model with save_pretrained(folder, safe_serialization=True)"
        )

    def network(self, weights: bool = True) -> tuple[nn.Module, str]:
        """The model built from its config, its weights loaded; the sha256 of its weights files."""
        try:
            from transformers import AutoConfig, AutoModelForImageClassification
        except ImportError as err:
            raise MintError('HuggingFaceTarget needs transformers: pip install "mint-audit[hf]"') from err
        raw = json.loads((Path(self.folder) / "config.json").read_text())
        if raw.get("auto_map"):  # before transformers reads it: a custom model_type would ask for the code
            raise MintError(
                f"{self.folder}'s config names code of its own (auto_map): mint runs no code a folder names"
            )
        try:
            config = AutoConfig.from_pretrained(self.folder, local_files_only=True, trust_remote_code=False)
        except (ValueError, OSError) as err:  # a model type this transformers does not know, a bad file
            raise MintError(
                f"{self.folder}: transformers cannot read its config ({str(err).splitlines()[0]})"
            ) from err
        if getattr(config, "auto_map", None):
            raise MintError(
                f"{self.folder}'s config names code of its own (auto_map): mint runs no code a folder names"
            )
        try:
            model = AutoModelForImageClassification.from_config(config)
        except ValueError as err:  # a config of a model that classifies no images
            raise MintError(f"{self.folder}: not an image classifier ({str(err).splitlines()[0]})") from err
        net = HuggingFaceNetwork(model.eval(), self.image_size)
        dry_run(net, self.image_size, type(model).__name__)
        if not weights:
            return net, ""
        state: dict[str, Tensor] = {}
        hashes = []
        for file in self._files():
            part, sha256 = read_weights(file)
            state, hashes = state | part, [*hashes, sha256]
        load_weights(model, state, self.folder)
        # One file: its own sha256 (what `sha256sum` prints); shards: the sha256 of their sha256s, in order.
        return net, hashes[0] if len(hashes) == 1 else hashlib.sha256("".join(hashes).encode()).hexdigest()
