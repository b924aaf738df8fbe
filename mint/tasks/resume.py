"""Exact, guarded resumes: a fit continued from its checkpoint ends where an uninterrupted fit ends.

Lightning restores weights, optimizer, schedulers and loop counters, but not the random number
generators. The next epoch's shuffle order (a `RandomSampler` draws its seed from torch's global
generator when the loader is iterated) and its dropout masks then come from a freshly seeded
generator instead of the one the killed run had reached, so a resumed run drifts. `ResumeGuard`
stores the torch (CPU and the process's CUDA device), numpy and Python generator states in every
checkpoint and puts them back just before the first resumed epoch starts.

It also refuses to resume from a checkpoint made with another configuration: the module's
hyperparameters and the optimizer's settings are compared with the checkpoint's (a resumed
optimizer would otherwise silently keep the checkpoint's learning rate).
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from mint.errors import MintError
from mint.records.checkpoint import ADDED_DEFAULTS, DetectorRecord, recorded_target_sha256
from mint.records.removed import REMOVED_OPTIONS

# Recorded by LightningCLI beside the init arguments (`_instantiator`), or speed options that do not
# change results (a run may resume on another machine with or without them).
IGNORED_HPARAMS = {
    "_instantiator",
    "channels_last",
    "compile",
    "references",
    "reference_count",
    "rmia_offline_a",
    "reference_queries",
}  # (references: test only)
# The detector data module's sets (which images train, validate and test the detector). The target's
# own member / non-member split is checked by `TargetDataModule.load_state_dict`.
DATA_KEYS = ("sets", "sets_sha256", "balance", "seed")
# Schedulers move `lr` during training; `initial_lr` (set by any scheduler) is what was configured.
MOVING_OPTIMIZER_KEYS = {"lr", "initial_lr", "params"}


def rng_states() -> dict[str, Any]:
    """The global generators' states, as tensors and plain values (loadable with `weights_only=True`)."""
    # The legacy global generator is the one `seed_everything` seeds and user code may draw from.
    name, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002
    states = {
        "torch": torch.get_rng_state(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # This process's device only: reading the others would open a CUDA context on each of them.
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back the states of `rng_states()`."""
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))  # noqa: NPY002
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def differences(saved: dict, now: dict, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """{key: (checkpoint value, current value)} for every key whose values differ; nested dicts by leaf."""
    diff = {}
    for key in sorted(set(saved) | set(now), key=str):
        if key in IGNORED_HPARAMS:
            continue
        old, new = saved.get(key, "<absent>"), now.get(key, "<absent>")
        if key in ADDED_DEFAULTS and "<absent>" in (old, new):  # a checkpoint of an earlier mint
            old, new = (ADDED_DEFAULTS[key] if v == "<absent>" else v for v in (old, new))
        if key in REMOVED_OPTIONS and new == "<absent>" and old == REMOVED_OPTIONS[key][0]:
            continue  # an option mint removed, at the value whose behaviour it kept
        if isinstance(old, dict) and isinstance(new, dict):
            diff |= differences(old, new, f"{prefix}{key}.")
            continue
        if isinstance(old, tuple | list) and isinstance(new, tuple | list):
            old, new = list(old), list(new)  # YAML gives lists where Python gave tuples
        if old != new:
            diff[f"{prefix}{key}"] = (old, new)
    return diff


def data_record(datamodule: L.LightningDataModule | None) -> dict[str, Any]:
    """The `DATA_KEYS` of a data module's manifest (empty when it has none)."""
    manifest = getattr(datamodule, "manifest", None)
    manifest = manifest() if callable(manifest) else manifest
    return {k: manifest[k] for k in DATA_KEYS if k in manifest} if isinstance(manifest, dict) else {}


def optimizer_settings(param_groups: list[dict]) -> dict[str, Any]:
    """{`optimizer.<group>.<name>`: value} of an optimizer state's groups, learning rate as configured."""
    settings = {}
    for i, group in enumerate(param_groups):
        settings |= {f"{i}.{k}": v for k, v in group.items() if k not in MOVING_OPTIMIZER_KEYS}
        settings[f"{i}.lr"] = group.get("initial_lr", group.get("lr"))
    return settings


def refuse(diff: dict[str, tuple[Any, Any]], what: str) -> None:
    """Raise an error that lists each difference as `key: checkpoint -> now`."""
    if diff:
        lines = "\n".join(
            f"  {key}: {old!r} (checkpoint) != {new!r} (now)"
            for key, old, new in ((k, *v) for k, v in diff.items())
        )
        raise MintError(
            f"cannot resume: the checkpoint was made with different {what}:\n{lines}\n"
            f"Resume with the configuration of the interrupted run (its config.yaml), or start a new "
            f"run without --ckpt_path."
        )


def refuse_other_hparams(module: L.LightningModule, checkpoint: dict) -> None:
    """Refuse to resume a fit from a checkpoint whose module hyperparameters differ from `module`'s.

    Called from the modules' `on_load_checkpoint`, which Lightning runs before loading the weights:
    a changed width would otherwise fail there with a bare tensor size mismatch.
    """
    try:
        fitting = module.trainer.state.fn == TrainerFn.FITTING
    except (RuntimeError, AttributeError):  # loaded outside a Trainer (`load_from_checkpoint`, Fabric)
        return
    if not fitting:  # testing or auditing with another configuration is fine
        return
    saved, now = dict(checkpoint.get("hyper_parameters", {})), dict(module.hparams)
    # A target read by a detector is identified by its content: a moved or re-linked checkpoint
    # file is the same target, a retrained one behind the same path is not.
    saved_target = recorded_target_sha256(checkpoint)
    now_target = getattr(module, "target_meta", {}).get("sha256")
    if saved_target and now_target:
        saved.pop("target_ckpt", None), now.pop("target_ckpt", None)
        saved["target_sha256"], now["target_sha256"] = saved_target, now_target
    record, target = DetectorRecord.read(checkpoint), getattr(module, "target", None)
    if record is not None and record.layers is not None and target is not None:  # read by the data module
        saved["layers"], now["layers"] = record.layers, target.layers
        saved["pooling"], now["pooling"] = record.pooling or target.pooling, target.pooling
    refuse(differences(saved, now), "model hyperparameters")


class ResumeGuard(Callback):
    """Make resumed fits exact; refuse checkpoints of other data or optimizer settings.

    The generator states saved are the ones at the moment the checkpoint is written (the end of an
    epoch's validation); nothing draws random numbers between then and the next epoch except its
    loader iteration, so restoring them before the resumed loader is iterated replays the same
    stream. Exact with `num_workers: 0` or non-persistent workers: persistent workers keep their
    own generators, which a checkpoint cannot hold.
    Under DDP every rank restores rank 0's states; seeded ranks hold identical states anyway.
    """

    def __init__(self) -> None:
        self._rng: dict[str, Any] | None = None
        self._optimizer: dict[str, Any] | None = None
        self._data: dict[str, Any] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._data = data_record(trainer.datamodule)  # the data module is set up before callbacks

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_states(), "data": self._data}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._rng = state_dict.get("rng")  # applied at `on_fit_start`, after Lightning's own setup

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        state = checkpoint.get("callbacks", {}).get(self.state_key, {})
        if state.get("data") and self._data:
            refuse(differences(state["data"], self._data, "data."), "data")
        groups = [state["param_groups"] for state in checkpoint.get("optimizer_states", [])]
        self._optimizer = {
            f"optimizer{i}.{k}": v for i, g in enumerate(groups) for k, v in optimizer_settings(g).items()
        }

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The optimizers exist now and still hold the current settings (Lightning loads the
        # checkpoint's optimizer states after this hook).
        if self._optimizer is not None:
            now = {
                f"optimizer{i}.{k}": v
                for i, opt in enumerate(trainer.optimizers)
                for k, v in optimizer_settings(opt.param_groups).items()
            }
            saved, self._optimizer = self._optimizer, None
            refuse(differences(saved, now), "optimizer settings")
        # Restored here, not at `on_train_start`: Lightning creates the first epoch's loader
        # iterator (which draws a base seed) between the two hooks, and the uninterrupted run drew
        # that seed right after saving. The sanity check in between runs with isolated generators.
        if self._rng is not None:
            set_rng_states(self._rng)
            self._rng = None
