"""The target: the audited classifier, read from its checkpoint once, frozen, read layer by layer."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.feature_extraction import create_feature_extractor

from mint.errors import MintError, check_finite
from mint.files import file_sha256
from mint.models.build import build_classifier, readable_layers
from mint.models.external import ExternalTarget, preprocessing_record
from mint.models.gradients import GradientReader, is_gradient
from mint.models.kinds import external_from_config
from mint.models.paper_cnn import BLOCK_DROPOUT, IMAGE_SIZE, WIDTH
from mint.records.checkpoint import TargetRecord, load_target_checkpoint

LOGITS = "logits"  # key under which the target's output is returned beside the requested layers


def build_network(hparams: dict) -> nn.Module:
    """The untrained classifier a target checkpoint's hyperparameters describe."""
    hparams = {"width": WIDTH, "block_dropout": BLOCK_DROPOUT, "image_size": IMAGE_SIZE} | hparams
    return build_classifier(
        hparams["arch"],
        hparams["num_classes"],
        width=hparams["width"],
        block_dropout=hparams["block_dropout"],
        image_size=hparams["image_size"],
        dp_compatible=hparams.get("dp_epsilon") is not None,  # trained with DP-SGD: GroupNorm for BatchNorm
    )


class _GraphReader:
    """The extractor of an exported program: {output name: activation} for the requested nodes."""

    def __init__(self, net: nn.Module, nodes: dict[str, str]) -> None:
        self.net, self.nodes = net, nodes

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        values = self.net.read(images, list(self.nodes))
        return {self.nodes[name]: value for name, value in values.items()}


Pool = Literal["none", "avg", "max"]
NAN_HINT = (
    "check the target's preprocessing (mean and std: std must be > 0), its weights (NaN after a "
    "diverged training) and the images (NaN pixels); mint scores nothing made of NaN"
)


class Target(nn.Module):
    """The audited classifier, frozen, returning the activations of the requested layers and its logits.

    Images go in as floats in [0, 1]; the target's own normalization (stored in its checkpoint, or
    its preprocessing record) is applied here. All layers come from one forward pass of a
    `create_feature_extractor` graph (or of the saved graph of an exported / TorchScript program).

    Args:
        hparams: the target's hyperparameters (`arch`, `num_classes`, `width`, ...).
        layers: layer names to read (`layer1`...`layer8` for `paper_cnn`, node names otherwise).
        state_dict: the target's weights (`net.*`, `mean`, `std`), if any.
        meta: the record of where the target came from (`TargetRecord.meta()`).
        network: the classifier itself, for a target trained elsewhere (see `from_external`);
            by default it is built from `hparams`.
        pool: spatial maps (B, C, H, W) larger than `pool_size` x `pool_size` are pooled to that
            size (`avg` or `max`) before they are cached or read by the detector; `none` keeps them.
        pool_size: the side of pooled maps.
    """

    def __init__(
        self,
        hparams: dict,
        layers: list[str],
        state_dict: dict[str, Tensor] | None = None,
        meta: dict | None = None,
        network: nn.Module | None = None,
        pool: Pool = "none",
        pool_size: int = 4,
    ) -> None:
        super().__init__()
        hparams = {"width": WIDTH, "block_dropout": BLOCK_DROPOUT, "image_size": IMAGE_SIZE} | hparams
        self.net = network if network is not None else build_network(hparams)
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("std", torch.ones(3))
        if state_dict is not None:
            self.load_state_dict(state_dict)
        self.requires_grad_(False).eval()
        if pool not in ("none", "avg", "max") or pool_size < 1:
            raise MintError(f"pool must be none, avg or max and pool_size >= 1; got {pool!r}, {pool_size}")
        self.pooling = {"pool": pool, "pool_size": pool_size}
        valid = self.net.layer_names() if hasattr(self.net, "read") else readable_layers(self.net)
        gradients = [name for name in layers if is_gradient(name)]
        self.gradients = GradientReader(self.net, gradients) if gradients else None  # (reads self.net)
        unknown = [name for name in layers if name not in valid and not is_gradient(name)]
        if unknown:
            raise MintError(
                f"unknown layer(s) {unknown or layers} for {hparams['arch']}; valid names (shape per "
                f"image): {self._listing(hparams['image_size'])}. `mint layers --all` lists nested ones too"
            )
        self.layers = list(layers)
        self.image_size = hparams["image_size"]
        self.crop_size = hparams.get("crop_size") or self.image_size
        self.meta = meta or {"hparams": hparams}
        self._output_node = valid[-1]
        nodes = {name: name for name in self.layers if not is_gradient(name)}
        nodes.setdefault(self._output_node, LOGITS)
        # Not registered as a submodule: it shares the net's modules, so state_dict keys stay `net.*`.
        self.__dict__["extractor"] = (
            _GraphReader(self.net, nodes)
            if hasattr(self.net, "read")  # an exported or TorchScript program: read from its graph
            else create_feature_extractor(self.net, return_nodes=nodes)
        )
        with torch.no_grad():  # dry forward pass: shapes of the activations, never typed by hand
            out = self(torch.zeros(2, 3, self.image_size, self.image_size), torch.zeros(2, dtype=torch.long))
        self.shapes = {name: tuple(out[name].shape[1:]) for name in self.layers}
        self.output_shape = tuple(out[LOGITS].shape[1:])  # (classes,) for a classifier
        self.num_classes = hparams.get("num_classes") or out[LOGITS].shape[1]

    def _listing(self, image_size: int) -> str:
        """The top-level layers with their shapes, for a message (one dry forward pass)."""
        from mint.models.layers import layer_table  # (layers.py builds targets: imported when needed)

        try:
            rows = layer_table(self.net, image_size)
        except Exception:  # the listing only helps the message; the names alone will do
            return ", ".join(
                readable_layers(self.net) if not hasattr(self.net, "read") else self.net.layer_names()
            )
        return ", ".join(f"{r['layer']} {'x'.join(map(str, r['shape']))}" for r in rows)

    @classmethod
    def from_external(
        cls, kind: ExternalTarget, layers: list[str], weights: bool = True, **options
    ) -> Target:
        """A target trained elsewhere (`TorchvisionTarget`, `TimmTarget`, `FactoryTarget`, ...).

        Its normalization comes from the kind's preprocessing; `meta` records the kind, its config,
        the file's sha256 and the preprocessing, so a result names exactly what was audited.
        `weights=False` skips reading the weights file (a detector checkpoint carries them);
        `options` are `pool` and `pool_size`.
        """
        net, sha256 = kind.network(weights)
        preprocessing = kind.preprocessing()
        config = kind.config()
        name = type(kind).__name__
        args = config["init_args"]
        named = next(
            (args[k] for k in ("arch", "program", "factory", "module", "folder") if args.get(k)), None
        )
        hparams = {"arch": f"{name}:{named}",
                   "image_size": preprocessing["image_size"], "crop_size": preprocessing.get("crop_size"),
                   "num_classes": None}  # fmt: skip
        path = args.get("weights") or args.get("program") or args.get("folder") or None
        path = str(Path(path).resolve()) if path else None
        meta = {"kind": name, "config": config, "sha256": sha256, "preprocessing": preprocessing,
                "hparams": hparams, "manifest": {}, "path": path}  # fmt: skip
        target = cls(hparams, layers, None, meta, network=net, **options)
        target.mean.copy_(torch.tensor(preprocessing["mean"]))
        target.std.copy_(torch.tensor(preprocessing["std"]))
        return target

    @classmethod
    def from_record(
        cls,
        record: TargetRecord,
        layers: list[str],
        trust_factory: str | None = None,
        trust_factory_args: dict | None = None,
        module: nn.Module | None = None,
        **options,
    ) -> Target:
        """Build from a loaded target checkpoint, or from the target record of a detector checkpoint.

        A target trained elsewhere is rebuilt from its recorded config by mint's own classes; its
        weights come from the record. A program file (`.pt2`, TorchScript) is read again and must
        have the recorded sha256. A `FactoryTarget` runs the user's code: it is rebuilt only when the
        caller names the same factory in `trust_factory` and its recorded `factory_args` in
        `trust_factory_args` (mint never runs code a file names, nor with arguments a file gives).
        A model given in Python (`ModuleTarget`) is rebuilt from `module`, the model given again.
        """
        if "kind" not in record.extra:
            return cls(record.hparams, layers, record.state_dict, record.meta(), **options)
        if "config" not in record.extra:
            raise MintError(f"the target record of {record.path} names no config to rebuild it from: refit")
        config = record.extra["config"]
        program = "program" in config.get("init_args", {})
        if program:  # the file must be the audited one before anything of it is loaded (or run)
            path = Path(record.path or config["init_args"]["program"])
            found = file_sha256(path) if path.is_file() else "missing"
            if found != record.sha256:
                raise MintError(
                    f"the program {path} is missing or has changed since the detector was trained (sha256 "
                    f"{found[:12]}..., recorded {record.sha256[:12]}...): use the audited file"
                )
            config = {**config, "init_args": {**config["init_args"], "program": str(path)}}
        if "folder" in config.get("init_args", {}) and record.path:  # (a folder named relative to elsewhere)
            config = {**config, "init_args": {**config["init_args"], "folder": record.path}}
        kind = external_from_config(config, record.path, trust_factory, trust_factory_args, module)
        target = cls.from_external(kind, layers, weights=program, **options)
        target.load_state_dict(record.state_dict)
        target.meta = record.meta()
        return target

    @classmethod
    def load(cls, path: str | Path, layers: list[str], **options) -> Target:
        """Read a target (or detector) checkpoint and build the frozen target reading `layers`."""
        return cls.from_record(load_target_checkpoint(path), layers, **options)

    def record(self) -> dict:
        """What a result names about this target: kind, file, sha256, preprocessing, pooling."""
        meta = self.meta
        preprocessing = meta.get("preprocessing") or preprocessing_record(
            self.image_size, tuple(self.mean.tolist()), tuple(self.std.tolist())
        )
        return {
            "kind": meta.get("kind", "mint checkpoint"),
            "arch": meta["hparams"].get("arch"),
            "path": meta.get("path"),
            "sha256": meta.get("sha256"),
            "config": meta.get("config"),
            "preprocessing": preprocessing,
            "pooling": self.pooling,
            "num_classes": self.num_classes,
        }

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load weights, saying clearly when they belong to another model."""
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as err:
            raise MintError(f"the checkpoint's weights do not fit this target: {err}") from err

    def _run(self, x: Tensor) -> dict[str, Tensor]:
        """The extractor's outputs for normalized images x, with the logits under "logits"."""
        out = self.extractor(x)
        out.setdefault(LOGITS, out.get(self._output_node))
        return out

    def train(self, mode: bool = True) -> Target:
        """Always stay in eval mode: activations must be those the audited model produces."""
        return super().train(False)

    @torch.no_grad()
    def forward(
        self, images: Tensor, labels: Tensor | None = None, gradients: bool = True
    ) -> dict[str, Tensor]:
        """Activations {layer: (B, ...)} and {"logits": (B, classes)} for images (B, 3, H, W) in [0, 1].

        Gradient features (`grad:...`, `gradnorm:...`) are of the loss of `labels` (B,), or of the
        predicted class when none are given; `gradients=False` leaves them out (for the logits alone).
        """
        if self.crop_size < images.shape[-1]:  # center crop (the weights' transforms() resize, then crop)
            top = (images.shape[-2] - self.crop_size) // 2
            left = (images.shape[-1] - self.crop_size) // 2
            images = images[..., top : top + self.crop_size, left : left + self.crop_size]
        x = (images - self.mean[:, None, None]) / self.std[:, None, None]
        if self.gradients is not None and gradients:  # one pass for both where the layers allow
            out, grads = self.gradients.read(self._run, x, labels)
            out |= grads
        else:
            out = self._run(x)
        for name, value in out.items():  # a NaN activation ranks anywhere: every score made of it is wrong
            check_finite(f"the target's {name} for {len(images)} images", value, NAN_HINT)
        if self.pooling["pool"] != "none":
            size = self.pooling["pool_size"]
            pool = F.adaptive_avg_pool2d if self.pooling["pool"] == "avg" else F.adaptive_max_pool2d
            for name in self.layers:  # (B, C, H, W) -> (B, C, min(H, size), min(W, size))
                value = out[name]
                if value.dim() == 4 and max(value.shape[-2:]) > size:
                    out[name] = pool(value, (min(value.shape[-2], size), min(value.shape[-1], size)))
        return out
