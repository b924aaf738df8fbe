"""The detector: the small network that reads a frozen target's activations and says "member?".

One path per layer (a CNN over activation maps, an MLP over vectors), and optionally one over the
float64 output features of the image's label (`mint.signals`), concatenated, then a
head; by default its score is added to the class-calibrated loss attack's (`calibrated_base`).
The defaults below are the only ones: the detector's LightningModule exposes the same options.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from mint.errors import MintError
from mint.models.calibrated_loss import CalibratedLossBase
from mint.models.target import LOGITS
from mint.signals import OUTPUT_FEATURES, output_features

PathKind = Literal["auto", "cnn", "mlp"]
ClassConditioning = Literal["none", "embedding", "per_class"]
PATH_KIND: PathKind = "auto"
CLASS_CONDITIONING: ClassConditioning = "per_class"
CNN_FILTERS = 64
CNN_KERNEL = 5
MLP_HIDDEN = 128
DROPOUT = 0.5
# Read the float64 output features beside the layers: on every target measured (docs/results.md,
# section 13) they raised the AUROC of layer 7 + class, by 0.012 to 0.108. False: the paper's MINT.
READ_OUTPUT = True
# Start from the class-calibrated loss attack's score and learn only what the inputs add to it.
CALIBRATED_BASE = True
# The detector's options, as its LightningModule records them among its hyperparameters.
OPTIONS = ("path_kind", "class_conditioning", "cnn_filters", "cnn_kernel", "mlp_hidden", "dropout",
           "output_features", "calibrated_base")  # fmt: skip
OUTPUT = "output:features"  # the output features' path (no layer or gradient request has this name)
REFERENCE = "reference:scores"  # the reference attacks' scores of the image (`reference_inputs`)


class CNNPath(nn.Module):
    """CNN over one activation map, after the MINT group's recipe (DeAlcala et al., IEEE Access 2025).

    Standardize the map (BatchNorm without affine), Conv `filters` x `kernel` + ReLU, 2x2 max-pool,
    Flatten, Dense `hidden` (default: the map's channels C, as in the recipe) + BatchNorm + ReLU,
    dropout. The BatchNorm before the dense ReLU is ours: without it, on CIFAR-10 layer-2 maps all
    hidden units died in the first epoch and the detector output a constant (AUROC exactly 0.5).

    Args:
        in_shape: (C, H, W) of the activation map.
        filters: convolution filters.
        kernel: convolution kernel size (padding keeps H x W).
        hidden: dense units; default C.
        dropout: dropout rate after the dense layer.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        filters: int = CNN_FILTERS,
        kernel: int = CNN_KERNEL,
        hidden: int | None = None,
        dropout: float = DROPOUT,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.out_features = hidden or c
        self.net = nn.Sequential(
            nn.BatchNorm2d(c, affine=False),
            nn.Conv2d(c, filters, kernel, padding=kernel // 2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2) if min(h, w) >= 2 else nn.Identity(),
            nn.Flatten(),  # (B, filters, H/2, W/2) -> (B, filters*H/2*W/2)
            nn.Linear(filters * max(h // 2, 1) * max(w // 2, 1), self.out_features),
            nn.BatchNorm1d(self.out_features),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Features (B, hidden) for maps (B, C, H, W)."""
        return self.net(x)


class MLPPath(nn.Module):
    """MLP over an activation vector (the group's "vanilla" MINT): Dense, ReLU, BatchNorm, dropout.

    Args:
        in_features: length of the (flattened) activation.
        hidden: dense units.
        dropout: dropout rate.
    """

    def __init__(self, in_features: int, hidden: int = MLP_HIDDEN, dropout: float = DROPOUT) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, hidden
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.BatchNorm1d(in_features, affine=False),  # standardize activations of any scale
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(hidden),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Features (B, hidden) for activations (B, ...)."""
        return self.net(x)


def path_key(layer: str) -> str:
    """`nn.ModuleDict` keys cannot hold dots (torchvision node names do)."""
    return layer.replace(".", "__")


def path_kind_of(layer: str, shape: tuple[int, ...], path_kind: PathKind) -> str:
    """`cnn` or `mlp`: the path over a layer of this shape (`auto`: a CNN for maps larger than 1 x 1)."""
    is_map = len(shape) == 3 and shape[1] * shape[2] > 1
    use_cnn = path_kind == "cnn" or (path_kind == "auto" and is_map)
    if use_cnn and len(shape) != 3:
        raise MintError(f"a CNN path needs a (C, H, W) map; layer {layer!r} has shape {shape}")
    return "cnn" if use_cnn else "mlp"


class Detector(nn.Module):
    """One path per layer (CNN for maps, MLP for vectors), concatenated, then a membership head.

    Args:
        layer_shapes: {layer: activation shape without batch}, from a dry forward pass of the target.
        num_classes: classes of the target (for class conditioning).
        path_kind: `cnn`, `mlp`, or `auto` (CNN for maps larger than 1x1, MLP for vectors).
        class_conditioning: `none`; `embedding` (a learned class embedding joins the features);
            `per_class` (one output unit per class, the true class's unit is read: the paper's
            class-specific MINT as one network).
        cnn_filters: filters of each CNN path.
        cnn_kernel: kernel size of each CNN path.
        cnn_hidden: dense units of each CNN path (default: the map's channels).
        mlp_hidden: dense units of each MLP path.
        dropout: dropout rate of every path.
        output_features: add a path over the float64 output features of the label
            (`OUTPUT_FEATURES`, from `acts["logits"]`); with no layer, the detector reads only them.
        embedding_dim: size of the class embedding.
        reference_inputs: length of `acts["reference:scores"]`, the reference attacks' scores of
            each image (`mint.attacks.reference_set.reference_inputs`); 0: not read.
        calibrated_base: score base + scale * residual, where the base is the class-calibrated loss
            (`CalibratedLossBase`: a per-class Gaussian likelihood ratio of the float64 logit-scaled
            confidence, fitted once on the detector's training set before it trains; pooled over
            classes when `class_conditioning` is `none`) and the residual is what the paths and the
            head score, the head starting at 0: the untrained detector is that black-box attack,
            training learns only what the layers and features add to it (gradient boosting's
            initial score), and the scale in [0, 1] is chosen on the validation set.
    """

    def __init__(
        self,
        layer_shapes: dict[str, tuple[int, ...]],
        num_classes: int,
        path_kind: PathKind = PATH_KIND,
        class_conditioning: ClassConditioning = CLASS_CONDITIONING,
        cnn_filters: int = CNN_FILTERS,
        cnn_kernel: int = CNN_KERNEL,
        cnn_hidden: int | None = None,
        mlp_hidden: int = MLP_HIDDEN,
        dropout: float = DROPOUT,
        output_features: bool = READ_OUTPUT,
        embedding_dim: int = 16,
        reference_inputs: int = 0,
        calibrated_base: bool = CALIBRATED_BASE,
    ) -> None:
        super().__init__()
        self.paths = nn.ModuleDict()
        self.kinds: dict[str, str] = {}  # layer -> "cnn" | "mlp", `auto` resolved
        for layer, shape in layer_shapes.items():
            self.kinds[layer] = path_kind_of(layer, shape, path_kind)
            self.paths[path_key(layer)] = (
                CNNPath(shape, cnn_filters, cnn_kernel, cnn_hidden, dropout)
                if self.kinds[layer] == "cnn"
                else MLPPath(math.prod(shape), mlp_hidden, dropout)
            )
        if output_features:
            self.paths[OUTPUT] = MLPPath(len(OUTPUT_FEATURES), mlp_hidden, dropout)
        if reference_inputs:
            self.paths[REFERENCE] = MLPPath(reference_inputs, mlp_hidden, dropout)
        if not self.paths:
            raise MintError("the detector has nothing to read: give it a layer, or output_features: true")
        self.layers, self.output_features = list(layer_shapes), output_features
        self.class_conditioning = class_conditioning
        features = sum(p.out_features for p in self.paths.values())
        if class_conditioning == "embedding":
            self.embedding = nn.Embedding(num_classes, embedding_dim)
            features += embedding_dim
        self.head = nn.Linear(features, num_classes if class_conditioning == "per_class" else 1)
        self.base = None
        if calibrated_base:
            self.base = CalibratedLossBase(num_classes, per_class=class_conditioning != "none")
            nn.init.zeros_(self.head.weight)  # the untrained detector scores exactly as the base does
            nn.init.zeros_(self.head.bias)

    def forward(self, acts: dict[str, Tensor], labels: Tensor) -> Tensor:
        """Membership logits (B,) from activations {layer: (B, ...), "logits": (B, C)} and labels (B,).

        With a calibrated base: base + scale * residual, in float64 (the base's order is kept where
        float32 would tie it).
        """
        out = self.residual(acts, labels)
        return out if self.base is None else self.base(acts[LOGITS], labels, out)

    def residual(self, acts: dict[str, Tensor], labels: Tensor) -> Tensor:
        """What the paths and the head score (B,): the whole detector, less its calibrated base."""
        inputs = {path_key(layer): acts[layer] for layer in self.layers}
        if self.output_features:  # float64 from the logits (standardized in the path)
            inputs[OUTPUT] = output_features(acts[LOGITS], labels)
        if REFERENCE in self.paths:  # float64 attack scores from the reference models (standardized)
            inputs[REFERENCE] = acts[REFERENCE]
        feats = [self.paths[key](x.float()) for key, x in inputs.items()]
        if self.class_conditioning == "embedding":
            feats.append(self.embedding(labels))
        out = self.head(torch.cat(feats, dim=1))  # (B, sum of path features) -> (B, 1 | classes)
        out = out.gather(1, labels[:, None]) if self.class_conditioning == "per_class" else out
        return out.squeeze(1)
