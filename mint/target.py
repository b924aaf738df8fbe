"""The frozen audited classifier ("target"): loaded safely from its checkpoint, read layer by layer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models.feature_extraction import create_feature_extractor

from mint.models import build_classifier, readable_layers

LOGITS = "logits"  # key under which the target's output is returned beside the requested layers
CLASSIFIER_COMMAND = "python -m mint.cli fit --config configs/classifier_cifar10.yaml"


def file_sha256(path: str | Path) -> str:
    """Sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class TargetRecord:
    """What a classifier checkpoint holds that the MINT stage needs: architecture, weights, split."""

    hparams: dict
    state_dict: dict[str, Tensor]
    manifest: dict
    sha256: str
    path: str

    def meta(self) -> dict:
        """Everything but the weights, for the MINT checkpoint (the weights travel in its state_dict)."""
        return {"hparams": self.hparams, "manifest": self.manifest, "sha256": self.sha256, "path": self.path}


def load_target_checkpoint(path: str | Path) -> TargetRecord:
    """Read a classifier checkpoint with `weights_only=True`, with errors that say what to do.

    A MINT detector checkpoint is accepted too: it holds its classifier's weights, architecture,
    split and sha256, so a detector can be tested or used for audits from its checkpoint alone.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"classifier checkpoint not found: {str(path)!r}. Train the classifier first, e.g. "
            f"`{CLASSIFIER_COMMAND}`, or pass `--model.init_args.target_ckpt PATH`."
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (loaded with weights_only=True): {err}"
        ) from err
    if isinstance(ckpt, dict) and "mint_target" in ckpt:  # a MINT checkpoint carries its classifier
        meta = ckpt["mint_target"]
        weights = {k[len("target.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("target.")}
        return TargetRecord(meta["hparams"], weights, meta["manifest"], meta["sha256"], meta["path"])
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    manifest = (ckpt.get("ClassifierDataModule") or {}).get("manifest") if isinstance(ckpt, dict) else None
    if "arch" not in hparams or manifest is None or "state_dict" not in ckpt:
        kind = hparams.get("_class_path", "no LightningModule") if hparams else "not a Lightning checkpoint"
        raise ValueError(
            f"{path} is not a mint classifier checkpoint ({kind}; it lacks the classifier's architecture "
            f"or its membership split). Use a checkpoint written by `{CLASSIFIER_COMMAND}`."
        )
    return TargetRecord(hparams, ckpt["state_dict"], manifest, file_sha256(path), str(path.resolve()))


class FrozenTarget(nn.Module):
    """The audited classifier, frozen, returning the activations of the requested layers and its logits.

    Images go in as floats in [0, 1]; the classifier's own normalization (stored in its checkpoint)
    is applied here. All layers come from one forward pass of a `create_feature_extractor` graph
    that stops at the deepest layer needed.

    Args:
        hparams: the classifier's hyperparameters (`arch`, `num_classes`, `width`, ...).
        layers: layer names to read (`layer1`...`layer8` for `paper_cnn`, node names otherwise).
        state_dict: the classifier LightningModule's weights (`net.*`, `mean`, `std`), if any.
    """

    def __init__(self, hparams: dict, layers: list[str], state_dict: dict[str, Tensor] | None = None) -> None:
        super().__init__()
        self.net = build_classifier(
            hparams["arch"],
            hparams["num_classes"],
            hparams.get("width", 1.0),
            hparams.get("block_dropout", 0.25),
            hparams.get("image_size", 32),
        )
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("std", torch.ones(3))
        if state_dict is not None:
            self.load_state_dict(state_dict)
        self.requires_grad_(False).eval()
        valid = readable_layers(self.net)
        unknown = [name for name in layers if name not in valid]
        if unknown or not layers:
            raise ValueError(
                f"unknown layer(s) {unknown or layers} for {hparams['arch']}; valid names: {valid}"
            )
        self.layers = list(layers)
        self.num_classes = hparams["num_classes"]
        self.image_size = hparams.get("image_size", 32)
        self._output_node = valid[-1]
        nodes = {name: name for name in self.layers}
        nodes.setdefault(self._output_node, LOGITS)
        # Not registered as a submodule: it shares the net's modules, so state_dict keys stay `net.*`.
        self.__dict__["extractor"] = create_feature_extractor(self.net, return_nodes=nodes)
        with torch.no_grad():  # dry forward pass: shapes of the activations, never typed by hand
            out = self(torch.zeros(2, 3, self.image_size, self.image_size))
        self.shapes = {name: tuple(out[name].shape[1:]) for name in self.layers}

    @classmethod
    def from_record(cls, record: TargetRecord, layers: list[str]) -> FrozenTarget:
        """Build from a loaded classifier checkpoint."""
        return cls(record.hparams, layers, record.state_dict)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load weights, saying clearly when they belong to another model."""
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as err:
            raise ValueError(f"the checkpoint's weights do not fit this classifier: {err}") from err

    def train(self, mode: bool = True) -> FrozenTarget:
        """Always stay in eval mode: activations must be those the audited model produces."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Activations {layer: (B, ...)} and {"logits": (B, classes)} for images (B, 3, H, W) in [0, 1]."""
        x = (images - self.mean[:, None, None]) / self.std[:, None, None]
        out = self.extractor(x)
        out.setdefault(LOGITS, out.get(self._output_node))
        return out
