"""Every record mint keeps in a Lightning checkpoint: written and read here only, old ones migrated here.

A target checkpoint (`TargetModule`) holds Lightning's keys, its data module's state (the membership
split, under the data module's class name) and, after DP-SGD, `dp_sgd` (the accountant's state). A
detector checkpoint (`DetectorModule`) also carries its target (the `mint_target` record beside the
`target.*` weights) and what it learned from (`DetectorRecord`). No other module names these keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from torch import Tensor

from mint.errors import MintError
from mint.files import check_input_file, read_checkpoint

TARGET_COMMAND = "python -m mint.cli fit --config configs/target_cifar10.yaml"
TARGET_KEY = "mint_target"  # a detector checkpoint: the record of the target it carries
DP_KEY = "dp_sgd"  # a DP-SGD target: the accountant's state (its claim: epsilon spent, delta, noise)
# Lightning stores a data module's state under its class name; `ClassifierDataModule` is the name
# the target's data module had before mint 0.2, kept so earlier targets still load.
DATA_STATE_KEYS = ("TargetDataModule", "ClassifierDataModule", "ReferenceDataModule")
# Options added to the detector (and the target) after checkpoints were written without them, and
# their defaults: an older checkpoint lacks them, which is no difference when a run leaves them at
# the default (resume's comparison of hyperparameters).
ADDED_DEFAULTS = {"pool": "none", "pool_size": 4, "target": None, "output_features": False,
                  "early_stopping": None, "dp_epsilon": None, "dp_delta": None, "dp_max_grad_norm": 1.0,
                  "dp_accountant": "rdp", "reference_features": False, "calibrated_base": False}  # fmt: skip
# What a detector checkpoint written before these options was trained with (read by audits).
OLDER_DETECTOR_OPTIONS = {"output_features": False, "calibrated_base": False}


@dataclass
class TargetRecord:
    """What a target checkpoint holds that a detector needs: architecture, weights, split, identity."""

    hparams: dict
    state_dict: dict[str, Tensor]
    manifest: dict
    sha256: str
    path: str
    extra: dict = field(default_factory=dict)  # a target trained elsewhere: kind, config, preprocessing

    def meta(self) -> dict:
        """Everything but the weights (which travel in the detector checkpoint's `state_dict`)."""
        base = {"hparams": self.hparams, "manifest": self.manifest, "sha256": self.sha256, "path": self.path}
        return self.extra | base


def carried_target(ckpt: dict) -> TargetRecord:
    """The target record a detector checkpoint carries: its `mint_target` meta and `target.*` weights."""
    meta = dict(ckpt[TARGET_KEY])
    weights = {k[len("target.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("target.")}
    base = [meta.pop(k) for k in ("hparams", "manifest", "sha256", "path")]
    return TargetRecord(*base[:1], weights, *base[1:], extra=meta)


def carries_target(ckpt: object) -> bool:
    """Whether a checkpoint is a detector's, which carries its target's record and weights."""
    state = ckpt.get("state_dict", {}) if isinstance(ckpt, dict) else {}
    return isinstance(ckpt, dict) and TARGET_KEY in ckpt and any(k.startswith("target.") for k in state)


def load_target_checkpoint(path: str | Path) -> TargetRecord:
    """Read a target checkpoint once (`weights_only=True`), with errors that say what to do.

    A detector checkpoint is accepted too: it carries its target's weights, architecture, split
    and sha256, so a detector can be tested or used for audits from its checkpoint alone.
    """
    hint = f"train the target first, e.g. `{TARGET_COMMAND}`, or pass `--data.init_args.target_ckpt PATH`"
    path = check_input_file(path, "target checkpoint", hint)
    ckpt, sha256 = read_checkpoint(path)
    if isinstance(ckpt, dict) and TARGET_KEY in ckpt:  # a detector checkpoint carries its target
        return carried_target(ckpt)
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    state = next((ckpt[k] for k in DATA_STATE_KEYS if k in ckpt), {}) if isinstance(ckpt, dict) else {}
    manifest = state.get("manifest")
    if "arch" not in hparams or manifest is None or "state_dict" not in ckpt:
        kind = hparams.get("_class_path", "no LightningModule") if hparams else "not a Lightning checkpoint"
        raise MintError(
            f"{path} is not a mint target checkpoint ({kind}; it lacks the target's architecture "
            f"or its membership split). Use a checkpoint written by `{TARGET_COMMAND}`."
        )
    # A DP-SGD target's claim (epsilon spent, delta, noise), which audits test against what they find.
    claim = {k: v for k, v in ckpt[DP_KEY].items() if k != "history"} if DP_KEY in ckpt else None
    extra = {DP_KEY: claim} if claim else {}
    return TargetRecord(hparams, ckpt["state_dict"], manifest, sha256, str(path.resolve()), extra)


def recorded_target_sha256(ckpt: dict) -> str | None:
    """The sha256 of the target a detector checkpoint was trained on (None in a target checkpoint)."""
    return ckpt.get(TARGET_KEY, {}).get("sha256")


def write_dp_state(checkpoint: dict, state: dict) -> None:
    """Keep a DP-SGD target's accountant state (steps, epsilon spent) in its checkpoint."""
    checkpoint[DP_KEY] = state


def read_dp_state(checkpoint: dict) -> dict | None:
    """The accountant state `write_dp_state` kept (None: trained without DP-SGD)."""
    return checkpoint.get(DP_KEY)


# The detector's data module records its sets in its own state (Lightning stores it under the class
# name); checkpoints written before that kept them beside the module's record, under `LEGACY_DATA_KEYS`.
DATA_STATE_KEY = "DetectorDataModule"
LEGACY_DATA_KEYS = {"data": "mint_data", "sets": "mint_sets", "seen_digests": "mint_seen_digests"}
DATA_STATE_NAMES = {"data": "manifest", "sets": "sets", "seen_digests": "seen_digests"}


def data_module_state(
    manifest: dict, sets: dict[str, Tensor], seen_digests: Tensor, layers: list[str], pooling: dict
) -> dict:
    """The detector data module's `state_dict()`: what it read and drew (`DetectorRecord.read`)."""
    return {
        "manifest": manifest,
        "sets": sets,
        "seen_digests": seen_digests,
        "layers": layers,
        "pooling": pooling,
    }


@dataclass
class DetectorRecord:
    """What a detector checkpoint records beside its weights and hyperparameters.

    The module writes `target` and `seconds`, its `CalibrationScores` callback `calibration`; the
    data module's own state holds `data`, `sets`, `seen_digests`, `layers` and `pooling`
    (`data_module_state`). Both layouts are read.

    Attributes:
        target: the record of its target (`TargetRecord.meta()`; the weights are in `state_dict`).
        seconds: wall time of the run until this checkpoint: extraction and training.
        data: what it was trained and tested on (`DetectorDataModule.manifest()`).
        sets: image indices of every set; later tests and audits must use other images.
        seen_digests: (N, 32) uint8 digests of the images it learned from (train, val, calibration).
        calibration: its scores of the calibration set's known members and non-members (`mint audit`).
        layers: the layers of the target it reads.
        pooling: how their maps were pooled (`pool`, `pool_size`; empty: older checkpoints, none).
    """

    target: dict
    seconds: float | None = None
    data: dict | None = None
    sets: dict[str, Tensor] | None = None
    seen_digests: Tensor | None = None
    calibration: dict[str, Tensor] | None = None
    layers: list[str] | None = None
    pooling: dict | None = None

    KEYS: ClassVar[dict[str, str]] = {  # what the module writes
        "target": TARGET_KEY,
        "seconds": "mint_seconds",
        "calibration": "mint_calibration",
    }

    def write(self, checkpoint: dict) -> None:
        """Put the module's part of the record into a checkpoint being saved (None fields left out)."""
        for name, key in self.KEYS.items():
            if getattr(self, name) is not None:
                checkpoint[key] = getattr(self, name)

    @classmethod
    def write_calibration(cls, checkpoint: dict, scores: dict[str, Tensor]) -> None:
        """Put the calibration scores (`CalibrationScores`, a callback) into a checkpoint being saved."""
        checkpoint[cls.KEYS["calibration"]] = scores

    @classmethod
    def read(cls, checkpoint: object) -> DetectorRecord | None:
        """The record of a detector checkpoint (either layout); None for any other checkpoint."""
        if not isinstance(checkpoint, dict) or TARGET_KEY not in checkpoint:
            return None
        state = checkpoint.get(DATA_STATE_KEY)
        state = state if isinstance(state, dict) else {}
        drawn = {
            name: state.get(DATA_STATE_NAMES[name], checkpoint.get(legacy))
            for name, legacy in LEGACY_DATA_KEYS.items()
        }
        # Checkpoints written before the data module read the target kept these in the module's
        # hyperparameters (`DetectorModule(layers=..., pool=..., pool_size=...)`).
        hparams = checkpoint.get("hyper_parameters") or {}
        layers = state.get("layers", hparams.get("layers"))
        pooling = state.get("pooling", {k: hparams[k] for k in ("pool", "pool_size") if k in hparams})
        module = {name: checkpoint.get(key) for name, key in cls.KEYS.items()}
        return cls(**module, **drawn, layers=layers, pooling=pooling)

    @property
    def seen(self) -> set[bytes] | None:
        """The digests of the images it learned from, as a set (None: not recorded)."""
        return None if self.seen_digests is None else {bytes(d.tolist()) for d in self.seen_digests}


def detector_options(hparams: dict, names: tuple[str, ...]) -> dict:
    """The detector options `names` of a checkpoint's hyperparameters; older ones get their then-defaults."""
    return OLDER_DETECTOR_OPTIONS | {k: hparams[k] for k in names if k in hparams}
