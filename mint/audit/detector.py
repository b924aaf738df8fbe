"""A trained detector read for an audit: its frozen target, its network and its calibration scores.

The checkpoint is read once, without unpickling anything; the target and the detector are built as
the plain networks they are (no LightningModule, no Trainer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mint.errors import MintError
from mint.files import read_checkpoint
from mint.models import Detector, Target
from mint.models.detector import OPTIONS
from mint.models.gradients import is_gradient
from mint.models.target import carried_target

DETECTOR_COMMAND = "mint fit --config configs/mint_layer7.yaml"


class AuditError(MintError):
    """A problem that stops an audit (printed as one line by the `mint` entry point)."""


@dataclass
class TrainedDetector:
    """What an audit needs from a detector checkpoint."""

    target: Target
    detector: Detector
    hparams: dict
    calibration: dict[str, Tensor]
    data: dict
    seen: set[bytes] | None  # digests of the images the detector learned from (None: not recorded)
    path: str
    sha256: str


def reads_label(hparams: dict) -> bool:
    """Whether a detector's score depends on the class it is given.

    Class conditioning reads it, and so do output and gradient features (the loss of that class).
    """
    return (
        hparams["class_conditioning"] != "none"
        or bool(hparams.get("output_features"))
        or any(is_gradient(layer) for layer in hparams["layers"])
    )


def _strip(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_detector(
    path: str | Path, device: torch.device, trust_factory: str | None = None
) -> TrainedDetector:
    """Read a detector checkpoint (with its target and calibration scores), in eval mode on `device`.

    `trust_factory`: the `package.module:function` that may run to rebuild a `FactoryTarget`.
    """
    path = Path(path)
    if not path.exists():
        raise AuditError(f"detector checkpoint not found: {str(path)!r} (train one: {DETECTOR_COMMAND})")
    ckpt, sha256 = read_checkpoint(path)
    state = ckpt.get("state_dict", {}) if isinstance(ckpt, dict) else {}
    if (
        not isinstance(ckpt, dict)
        or "mint_target" not in ckpt
        or not any(k.startswith("target.") for k in state)
    ):
        if any(k.startswith("net.") for k in state):
            raise AuditError(
                f"{path} is a target checkpoint, not a detector. Train a detector on it first: "
                f"{DETECTOR_COMMAND} --model.init_args.target_ckpt {path}"
            )
        raise AuditError(
            f"{path} is not a detector checkpoint carrying its target "
            "(no `mint_target` record or no target weights)"
        )
    if "mint_calibration" not in ckpt:
        raise AuditError(
            f"{path} holds no calibration scores, so an audited set has nothing to be compared with. "
            "Train the detector with known members / non-members held out: --data.calibration_size=1000 "
            "(the shipped mint_*_layer7 configs do)."
        )
    hparams = ckpt["hyper_parameters"]
    if hparams.get("reference_features"):
        raise AuditError(
            f"{path} reads the reference attacks' scores of each image (reference_features), which exist "
            "only for the images of its target's pool, not for audited files. For audits, train a detector "
            "without reference_features."
        )
    pooling = {k: hparams[k] for k in ("pool", "pool_size") if k in hparams}  # (older checkpoints: none)
    target = Target.from_record(carried_target(ckpt), hparams["layers"], trust_factory, **pooling)
    options = {"output_features": False} | {k: hparams[k] for k in OPTIONS if k in hparams}  # (older: none)
    detector = Detector(target.shapes, target.num_classes, **options)
    detector.load_state_dict(_strip(state, "detector."))
    return TrainedDetector(
        target.to(device),
        detector.to(device).eval(),
        hparams,
        ckpt["mint_calibration"],
        ckpt.get("mint_data", {}),
        {bytes(d.tolist()) for d in ckpt["mint_seen_digests"]} if "mint_seen_digests" in ckpt else None,
        str(path.resolve()),
        sha256,
    )
