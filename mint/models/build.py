"""Build the audited classifier by name and list the layers a MINT detector can read."""

from __future__ import annotations

import torchvision
from torch import nn
from torchvision.models.feature_extraction import get_graph_node_names

from mint.errors import MintError
from mint.models.dp_compatible import make_dp_compatible
from mint.models.paper_cnn import PAPER_LAYERS, PaperCNN


def build_classifier(
    arch: str,
    num_classes: int,
    *,
    width: float,
    block_dropout: float,
    image_size: int,
    dp_compatible: bool = False,
) -> nn.Module:
    """Return an untrained classifier: `paper_cnn` or any torchvision architecture name.

    torchvision ResNets are adapted to small (32 x 32) inputs as is usual for CIFAR: a 3x3
    stride-1 stem and no stem max-pool. `dp_compatible` swaps the layers DP-SGD cannot train
    (BatchNorm -> GroupNorm; `make_dp_compatible`).
    """
    net = _build(arch, num_classes, width=width, block_dropout=block_dropout, image_size=image_size)
    return make_dp_compatible(net) if dp_compatible else net


def _build(arch: str, num_classes: int, *, width: float, block_dropout: float, image_size: int) -> nn.Module:
    names = ["paper_cnn", *torchvision.models.list_models(module=torchvision.models)]
    if arch not in names:
        raise MintError(f"unknown architecture {arch!r}; choose 'paper_cnn' or a torchvision model: {names}")
    if arch == "paper_cnn":
        return PaperCNN(num_classes, width=width, block_dropout=block_dropout, image_size=image_size)
    if width != 1.0:
        raise MintError(f"width applies to paper_cnn only, not to {arch!r}")
    net = torchvision.models.get_model(arch, num_classes=num_classes, weights=None)
    if image_size <= 64 and isinstance(getattr(net, "conv1", None), nn.Conv2d) and hasattr(net, "maxpool"):
        net.conv1 = nn.Conv2d(3, net.conv1.out_channels, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    return net


def readable_layers(net: nn.Module) -> list[str]:
    """Names that `create_feature_extractor` accepts, in forward order; the last one is the output.

    The paper's `layer1..8` for `paper_cnn`; otherwise torchvision's graph node names plus the names
    of the modules that contain them (e.g. `layer4` of a ResNet reads that stage's output).
    """
    if all(hasattr(net, name) for name in PAPER_LAYERS):
        return list(PAPER_LAYERS)
    _, eval_nodes = get_graph_node_names(net)
    nodes = [n for n in eval_nodes if n != "x"]
    modules, names = dict(net.named_modules()), []
    for node in nodes:
        parts = node.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if prefix not in names and (depth == len(parts) or prefix in modules):
                names.append(prefix)
    names.remove(nodes[-1])
    return [*names, nodes[-1]]
