"""Held-out means unseen: a detector is never tested on images it was trained, validated or calibrated on.

A detector checkpoint records which images (indices into the target's train split) each of its sets
held. A later `test` or `validate` may be run with other data settings (another `data.seed`, other
sizes); its held-out set is then compared with those records, and any overlap is refused: scores of
images the detector has seen would inflate every number of the report.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import Tensor

from mint.errors import MintError

# Which recorded sets a held-out set must not share an image with.
SEEN_BY = {"test": ("train", "val", "calibration"), "val": ("train",)}


def image_digests(images: np.ndarray) -> Tensor:
    """(N, 16) uint8 digests of uint8 images (N, H, W, 3): equal digests mean identical pixels.

    Stored in a detector checkpoint for the images it learned from, so that `mint audit` can refuse
    to count them as evidence (their scores reflect the detector's training, not the target's).
    """
    digests = [hashlib.blake2b(np.ascontiguousarray(im).data, digest_size=16).digest() for im in images]
    return torch.frombuffer(bytearray(b"".join(digests)), dtype=torch.uint8).reshape(len(images), 16)


def set_indices(pool: np.ndarray, portions: dict[str, np.ndarray]) -> dict[str, Tensor]:
    """{set name: int64 tensor of image indices}, for the checkpoint (tensors load with weights_only)."""
    return {name: torch.from_numpy(np.asarray(pool[rows], dtype=np.int64)) for name, rows in portions.items()}


def refuse_seen(held_out: str, images: np.ndarray, recorded: dict[str, Tensor] | None) -> None:
    """Raise if any image of the `held_out` set was in a set the detector learned from.

    Args:
        held_out: `test` or `val`.
        images: indices of the held-out set now.
        recorded: the restored detector checkpoint's `set_indices`; None when no checkpoint was
            restored (a detector tested in the process that trained it, on the same data module); an
            empty dict for a checkpoint written before sets were recorded, which cannot be checked.
    """
    if recorded is None:
        return
    if not recorded:
        raise MintError(
            "this detector checkpoint does not record which images it was trained on (written by an "
            "older mint), so its test set cannot be proven unseen: retrain the detector"
        )
    images = np.asarray(images, dtype=np.int64)
    overlaps = {
        name: int(np.isin(images, recorded[name].numpy()).sum())
        for name in SEEN_BY[held_out]
        if name in recorded
    }
    seen = np.concatenate([recorded[n].numpy() for n in SEEN_BY[held_out] if n in recorded])
    total = int(np.isin(images, seen).sum())
    if total:
        where = ", ".join(f"{n} {k}" for n, k in overlaps.items() if k)
        raise MintError(
            f"{total} of the {len(images)} {held_out} images ({100 * total / len(images):.1f}%) were in the "
            f"detector's own sets ({where}): the data settings differ from the ones it was trained with "
            "(e.g. data.seed or the set sizes). Use the detector's config.yaml (beside its checkpoint) "
            "for test and validate, or retrain the detector."
        )
