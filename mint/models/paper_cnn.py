"""The audited classifier of the MINT object-classification paper, as a plain `nn.Module`."""

from __future__ import annotations

from torch import Tensor, nn

from mint.errors import MintError

# The paper's numbering of the layers a MINT detector may read ("layer 7" = penultimate).
PAPER_LAYERS = tuple(f"layer{i}" for i in range(1, 9))
# Defaults of the options the target's LightningModule exposes too (set here only).
WIDTH = 1.0
BLOCK_DROPOUT = 0.25
IMAGE_SIZE = 32


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class PaperCNN(nn.Module):
    """CNN of Mancera et al. (arXiv 2601.12929): three blocks of two 3x3 convs, Dense 128, Dense out.

    Each block is conv-BN-ReLU, conv-BN-ReLU (32, 64, 128 filters, padding "same"), then 2x2
    max-pool and dropout; then Flatten, Dense 128 + ReLU, and a Dense output over the classes
    (logits; the paper's softmax is applied by the loss). Submodules `layer1`...`layer8` are the
    paper's layers: the six conv outputs (after BN and ReLU, before pooling), the Dense-128 output
    (after ReLU) and the logits, so `create_feature_extractor(net, {"layer7": ...})` reads them.

    Choices the paper leaves open, fixed here: padding 1 ("same"), conv without bias (BN follows),
    BN after every conv, 2x2 max-pool, `block_dropout` after each block's pool, `dense_dropout`
    between Dense 128 and the output (0 by default: the paper mentions dropout only after blocks),
    and no dropout or BN inside the dense part otherwise. Dropout lowers memorization and thus the
    membership signal; a lower `block_dropout` makes a stronger audit target.

    Args:
        num_classes: number of output classes.
        width: multiplier of every layer's width (filters and dense units), e.g. 0.25 for quick CPU runs.
        in_channels: image channels.
        image_size: side of the square input images (sets the size of the flattened features).
        block_dropout: dropout rate after each block.
        dense_dropout: dropout rate before the output layer.
    """

    def __init__(
        self,
        num_classes: int = 10,
        width: float = WIDTH,
        in_channels: int = 3,
        image_size: int = IMAGE_SIZE,
        block_dropout: float = BLOCK_DROPOUT,
        dense_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c1, c2, c3, dense = (max(1, round(c * width)) for c in (32, 64, 128, 128))
        if image_size % 8:
            raise MintError(f"image_size must be a multiple of 8 (three 2x2 pools), got {image_size}")
        self.layer1, self.layer2 = _conv(in_channels, c1), _conv(c1, c1)
        self.pool1 = nn.Sequential(nn.MaxPool2d(2), nn.Dropout(block_dropout))
        self.layer3, self.layer4 = _conv(c1, c2), _conv(c2, c2)
        self.pool2 = nn.Sequential(nn.MaxPool2d(2), nn.Dropout(block_dropout))
        self.layer5, self.layer6 = _conv(c2, c3), _conv(c3, c3)
        self.pool3 = nn.Sequential(nn.MaxPool2d(2), nn.Dropout(block_dropout))
        side = image_size // 8
        self.layer7 = nn.Sequential(nn.Flatten(), nn.Linear(c3 * side * side, dense), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dense_dropout)
        self.layer8 = nn.Linear(dense, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Return logits (B, num_classes) for images (B, C, H, W)."""
        x = self.pool1(self.layer2(self.layer1(x)))
        x = self.pool2(self.layer4(self.layer3(x)))
        x = self.pool3(self.layer6(self.layer5(x)))
        return self.layer8(self.dropout(self.layer7(x)))  # (B, C*H/8*W/8) -> (B, 128) -> (B, classes)
