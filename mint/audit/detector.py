"""A trained detector read for an audit: its frozen target, its network and its calibration scores.

The checkpoint is read once, without unpickling anything; the target and the detector are built as
the plain networks they are (no LightningModule, no Trainer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mint.errors import MintError, check_finite
from mint.files import read_checkpoint
from mint.models import Detector, Target
from mint.models.detector import OPTIONS
from mint.models.gradients import is_gradient
from mint.records.checkpoint import DetectorRecord, carried_target, carries_target, detector_options
from mint.records.removed import refuse_removed_options

DETECTOR_COMMAND = "mint fit --config configs/mint_layer7.yaml"
# A config names its data: the hint names every shipped detector config, not only CIFAR-10's.
OTHER_CONFIGS = (
    "that config is CIFAR-10's; CIFAR-100: mint_cifar100_layer7.yaml, GTSRB: mint_gtsrb_layer7.yaml, "
    "a model trained elsewhere: mint_your_model.yaml"
)
# Known members and non-members each, at least: the Mann-Whitney test's normal approximation and
# DeLong's interval of the calibration AUROC hold from about 10 a side (the shipped configs keep 150+).
MIN_CALIBRATION = 10
SCORE_KEYS = ("true_label", "predicted_label")  # the detector's scores, fed the true / predicted class
# Optional: each calibration image's true class and the target's predicted class (its accuracy).
OPTIONAL_KEYS = ("labels", "predicted_class")


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


def reads_label(trained: TrainedDetector) -> bool:
    """Whether a detector's score depends on the class it is given.

    Class conditioning reads it, and so do output and gradient features (the loss of that class).
    """
    return (
        trained.hparams["class_conditioning"] != "none"
        or bool(trained.hparams.get("output_features"))
        or any(is_gradient(layer) for layer in trained.target.layers)
    )


def _strip(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def check_calibration(calibration: object, path: Path) -> dict[str, Tensor]:
    """The checkpoint's calibration record, if it is one an audit can rest on; else one line saying why.

    Expected (as `DetectorModule.calibration_scores` writes it): 1-D tensors of one length, the
    scores `true_label` and `predicted_label` (finite floats) and `members` (0 or 1, at least
    `MIN_CALIBRATION` of each). A NaN score ranks anywhere and an empty side leaves nothing to compare
    with: any verdict made of such a record would be wrong.
    """
    what = f"{path}: its calibration record (mint_calibration)"
    redo = f"retrain the detector with --data.calibration_size={10 * MIN_CALIBRATION} or more"
    if not isinstance(calibration, dict):
        raise AuditError(f"{what} is a {type(calibration).__name__}, not a dict of score tensors; {redo}")
    missing = [k for k in (*SCORE_KEYS, "members") if k not in calibration]
    if missing:
        held = ", ".join(map(str, calibration)) or "nothing"
        raise AuditError(f"{what} lacks {', '.join(missing)} (it holds {held}); {redo}")
    kept = {k: calibration[k] for k in (*SCORE_KEYS, "members", *OPTIONAL_KEYS) if k in calibration}
    for key, value in kept.items():
        if not isinstance(value, Tensor) or value.dim() != 1:
            shape = f"of shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
            raise AuditError(f"{what}: {key} is {shape}, not a 1-D tensor (one value per image); {redo}")
    lengths = {k: len(v) for k, v in kept.items()}
    if len(set(lengths.values())) > 1:
        raise AuditError(f"{what}: its arrays differ in length ({lengths}), not one value per image; {redo}")
    for key in SCORE_KEYS:
        if not kept[key].is_floating_point():
            raise AuditError(f"{what}: {key} holds {kept[key].dtype} values, not float scores; {redo}")
        check_finite(f"{what}: {key}", kept[key], redo)
    for key in (k for k in OPTIONAL_KEYS if k in kept):
        if kept[key].is_floating_point() or kept[key].is_complex():
            raise AuditError(f"{what}: {key} holds {kept[key].dtype} values, not class indices; {redo}")
    members = kept["members"]
    if not bool(((members == 0) | (members == 1)).all()):  # (NaN is neither)
        found = members.unique()[:6].tolist()
        raise AuditError(f"{what}: members must be 0 or 1, found the values {found}; {redo}")
    counts = int((members == 1).sum()), int((members == 0).sum())
    if min(counts) < MIN_CALIBRATION:
        raise AuditError(
            f"{what} holds {counts[0]} known members and {counts[1]} known non-members; an audit needs at "
            f"least {MIN_CALIBRATION} of each; {redo}"
        )
    return {k: v.double() if k in SCORE_KEYS else v.long() for k, v in kept.items()}


def load_detector(
    path: str | Path,
    device: torch.device,
    trust_factory: str | None = None,
    trust_factory_args: dict | None = None,
    module: nn.Module | None = None,
    calibrated: bool = True,
) -> TrainedDetector:
    """Read a detector checkpoint (with its target and calibration scores), in eval mode on `device`.

    `trust_factory`: the `package.module:function` that may run to rebuild a `FactoryTarget`, with
    `trust_factory_args` (they must be the recorded ones); `module`: the model of a target given in
    Python, given again; `calibrated`: refuse a detector without calibration scores (a set needs them).
    """
    path = Path(path)
    if not path.exists():
        raise AuditError(
            f"detector checkpoint not found: {str(path)!r} (train one: {DETECTOR_COMMAND}; {OTHER_CONFIGS})"
        )
    ckpt, sha256 = read_checkpoint(path)
    state = ckpt.get("state_dict", {}) if isinstance(ckpt, dict) else {}
    if not carries_target(ckpt):
        if any(k.startswith("net.") for k in state):
            raise AuditError(
                f"{path} is a target checkpoint, not a detector. Train a detector on it first: "
                f"{DETECTOR_COMMAND} --data.init_args.target_ckpt {path} ({OTHER_CONFIGS})"
            )
        raise AuditError(
            f"{path} is not a detector checkpoint carrying its target "
            "(no `mint_target` record or no target weights)"
        )
    detector_record = DetectorRecord.read(ckpt)
    if detector_record.calibration is None and calibrated:
        raise AuditError(
            f"{path} holds no calibration scores, so an audited set has nothing to be compared with. "
            "Train the detector with known members / non-members held out: --data.calibration_size=1000 "
            "(the shipped mint_*_layer7 configs do)."
        )
    calibration = check_calibration(detector_record.calibration, path) if calibrated else {}
    hparams = ckpt["hyper_parameters"]
    refuse_removed_options(hparams, str(path))
    if hparams.get("reference_features"):
        raise AuditError(
            f"{path} reads the reference attacks' scores of each image (reference_features), which exist "
            "only for the images of its target's pool, not for audited files. For audits, train a detector "
            "without reference_features."
        )
    record, pooling = carried_target(ckpt), detector_record.pooling or {}  # (older checkpoints: none)
    layers = detector_record.layers
    target = Target.from_record(record, layers, trust_factory, trust_factory_args, module, **pooling)
    detector = Detector(target.shapes, target.num_classes, **detector_options(hparams, OPTIONS))
    detector.load_state_dict(_strip(state, "detector."))
    return TrainedDetector(
        target.to(device), detector.to(device).eval(), hparams, calibration,
        detector_record.data or {}, detector_record.seen, str(path.resolve()), sha256,
    )  # fmt: skip
