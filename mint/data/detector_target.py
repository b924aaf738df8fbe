"""The frozen target a detector's data module reads: built once from its file or kind, checked."""

from __future__ import annotations

import numpy as np
import torch

from mint.data.images import to_tensor
from mint.data.sources import Source
from mint.errors import MintError
from mint.models import ExternalTarget, Target
from mint.models.target import LOGITS


def build_target(
    target_ckpt: str | None,
    kind: ExternalTarget | None,
    layers: list[str],
    pooling: dict,
    source: Source | None,
) -> Target:
    """The frozen target (a mint checkpoint, or a kind trained elsewhere), checked against `source`."""
    if (target_ckpt is None) == (kind is None):
        raise MintError(
            "name the target once: `target_ckpt` (a mint classifier checkpoint) or `target` (a "
            "classifier trained elsewhere, e.g. class_path: mint.models.TorchvisionTarget)"
        )
    target = (
        Target.from_external(kind, layers, **pooling)
        if kind is not None
        else Target.load(target_ckpt, layers, **pooling)
    )
    for name in ("num_classes", "image_size") if source is not None else ():
        if getattr(source, name) != getattr(target, name):
            raise MintError(
                f"the data has {name}={getattr(source, name)} but the target {target.meta['path']} was "
                f"built for {name}={getattr(target, name)}: use the data it was trained on"
            )
    return target


@torch.no_grad()
def predicted_classes(target: Target, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The target's predicted class of uint8 images (N, S, S, 3), for known images without a label.

    Always on the CPU: every DDP rank must get the same labels (hence the same sets), and a GPU
    may break a near-tie another way.
    """
    home = next(target.buffers()).device
    out = []
    try:
        target.to("cpu")
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images[start : start + batch_size])
            out.append(target(to_tensor(batch), gradients=False)[LOGITS].argmax(1).numpy())
    finally:
        target.to(home)
    return np.concatenate(out)
