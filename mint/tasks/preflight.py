"""Checks of a parsed command line, made before anything is built or any process is launched.

Lightning's own errors for these cases come late and say little ("No supported gpu backend
found!"), or there is none (64 CPU processes on a 2-core machine). Each error here says what the
machine has and what to type instead. `fit --ckpt_path last` is also resolved here: Lightning looks
for `last.ckpt` only in the new run's own folder, so without this it would start from scratch.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info

from mint.data.activation_cache import unwritable
from mint.errors import MintError, UnwritableError
from mint.files import file_sha256, read_checkpoint
from mint.records.checkpoint import DetectorRecord, recorded_target_sha256
from mint.records.removed import refuse_removed_options
from mint.records.trusted import refuse_foreign_classes
from mint.tasks.resume import IGNORED_HPARAMS, differences, refuse

# Below this a run cannot even write its first checkpoints (a PaperCNN checkpoint is ~2 MB, an
# activation cache hundreds of MB): refused before work rather than failing halfway.
MIN_FREE_BYTES = 64 * 2**20
CPU_DDP = "--trainer.accelerator=cpu --trainer.devices=2 --trainer.strategy=ddp"


def preflight(config: Any, subcommand: str | None, requested: Any = None) -> None:
    """Check the subcommand's config (a jsonargparse namespace); may fill in a logger version.

    Args:
        config: the subcommand's config, as about to be instantiated.
        subcommand: `fit`, `test`, ...
        requested: the same config as parsed, before LightningCLI put a `--ckpt_path` file's
            hyperparameters in place of the model's arguments.
    """
    trainer = (config.get(f"trainer.{k}") for k in ("accelerator", "devices", "strategy"))
    check_devices(*trainer)
    if config.get("data.init_args.cache_dir"):
        check_cache_dir(config.get("data.init_args.cache_dir"))
    if subcommand in ("fit", "test", "validate") and config.get("trainer.logger.init_args.save_dir"):
        check_save_dir(config.get("trainer.logger.init_args.save_dir"))
    ckpt_path = config.get("ckpt_path")
    if subcommand == "fit" and ckpt_path == "last":
        resolve_last(config.get("trainer.logger"))
    elif ckpt_path and requested is not None and Path(ckpt_path).is_file():
        for key, value in model_args(requested).items():  # speed options as asked, not as checkpointed
            if key in IGNORED_HPARAMS:
                config[f"model.init_args.{key}"] = value
        refuse_checkpoint_extras(config, ckpt_path)
        if subcommand == "fit":
            refuse_changed_model(requested, ckpt_path)


def check_ckpt_path(config: Any, subcommand: str | None) -> DetectorRecord | None:
    """Refuse a `--ckpt_path` that is missing, unsafe, damaged or of the other kind of model.

    Runs before LightningCLI reads the file's hyperparameters: a target checkpoint given to a
    detector config would otherwise swap the model class and fail deep inside Lightning, and
    `test` without a checkpoint would evaluate untrained weights. Returns the record of a detector
    checkpoint (what it reads of its target: `read_as_trained`), else None.
    """
    ckpt_path = config.get("ckpt_path")
    if subcommand in ("test", "validate", "predict") and ckpt_path in (None, "best", "last"):
        raise MintError(
            f"`mint {subcommand}` needs --ckpt_path=FILE, the checkpoint to evaluate (e.g. "
            "lightning_logs/<name>/latest/checkpoints/best.ckpt); without one it would evaluate "
            "untrained weights"
        )
    if ckpt_path in (None, "best", "last", "hpc") or "://" in ckpt_path or ckpt_path.startswith("registry"):
        return None  # Lightning's own names and remote paths: Lightning reads them
    path = Path(ckpt_path)
    ckpt, _ = read_checkpoint(path)  # a folder, an empty or damaged file, or one holding code: refused
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    refuse_foreign_classes(hparams or {}, ckpt_path)
    refuse_older_detector(hparams or {}, ckpt_path)
    refuse_removed_options(hparams or {}, ckpt_path)
    saved = (hparams or {}).get("_class_path")
    asked = config.get("model.class_path")
    if saved and asked and saved.rsplit(".", 1)[-1] != str(asked).rsplit(".", 1)[-1]:
        run_config = path.parent.parent / "config.yaml"
        hint = f" ({run_config})" if run_config.is_file() else ""
        raise MintError(
            f"{ckpt_path} is a checkpoint of {saved}, but this config is for {asked}. Use the config "
            f"that trained it{hint}, or the checkpoint this config's model wrote"
        )
    return DetectorRecord.read(ckpt)


def read_as_trained(config: Any, record: DetectorRecord, ckpt_path: str) -> None:
    """Make `test`, `validate` and `predict` of a detector read its target as it was trained.

    LightningCLI restores a checkpoint's module arguments, not its data module's; the detector's
    data module reads the target, so the target it carries (never the file `target_ckpt` names now,
    which may be a retrained target behind a `latest` link), its layers and its pooling come from
    the checkpoint's record here.
    """
    if "data.init_args.layers" not in config:  # not a detector's data module
        return
    layers, pooling = record.layers, record.pooling or {}
    # A file says these: only what they may be is taken (never a target, a folder or a source).
    if layers is not None and not (isinstance(layers, list) and all(isinstance(n, str) for n in layers)):
        raise MintError(f"{ckpt_path}: its record of the layers it reads is damaged ({str(layers)[:80]})")
    if (
        set(pooling) - {"pool", "pool_size"}
        or pooling.get("pool", "none") not in ("none", "avg", "max")
        or not (isinstance(pooling.get("pool_size", 4), int) and pooling.get("pool_size", 4) >= 1)
    ):
        raise MintError(f"{ckpt_path}: its record of the pooling it reads is damaged ({str(pooling)[:80]})")
    if config.get("data.init_args.target_ckpt") is not None:
        config["data.init_args.target_ckpt"] = ckpt_path
    if layers is not None:
        config["data.init_args.layers"] = list(layers)
    for key, value in pooling.items():
        config[f"data.init_args.{key}"] = value


# What a detector module's hyperparameters named before its data module read the target.
MOVED_TO_DATA = ("target_ckpt", "target", "layers", "pool", "pool_size")


def refuse_older_detector(hparams: dict, ckpt_path: str) -> None:
    """Refuse a detector checkpoint whose module hyperparameters still name its target (older mint).

    LightningCLI puts a `--ckpt_path` file's hyperparameters in place of the model's arguments;
    an older detector's name the target (which the data module reads now), and one naming code or
    a program must not get to run it.
    """
    moved = [k for k in MOVED_TO_DATA if k in hparams]
    if moved:
        raise MintError(
            f"{ckpt_path} is a detector written by an older mint: its module records {', '.join(moved)}, "
            f"which the data module reads now. `mint audit --ckpt {ckpt_path}` reads it as it is; to "
            "test it, train the detector again (target_ckpt or target, layers and pool go under data:)"
        )


def refuse_checkpoint_extras(config: Any, ckpt_path: str) -> None:
    """Refuse module options a checkpoint records that its module does not have, in one line.

    LightningCLI passes them on as extra keyword arguments (`dict_kwargs`), which end in a TypeError
    traceback; those mint removed were dropped already (`MintCLI._parse_ckpt_path`).
    """
    extra = config.get("model.dict_kwargs")
    if extra:
        raise MintError(
            f"{ckpt_path} records options its module does not have ({', '.join(map(str, extra))}): a "
            "checkpoint of another mint version or another program. Train it again with this mint"
        )


def model_args(config: Any) -> dict[str, Any]:
    """The model's init arguments in a config, as a dict."""
    args = config.get("model.init_args")
    return args.as_dict() if hasattr(args, "as_dict") else {}


def refuse_changed_model(requested: Any, ckpt_path: str) -> None:
    """Refuse `fit --ckpt_path FILE` with model arguments other than the checkpoint's, listing them."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    saved = dict(ckpt.get("hyper_parameters", {}))
    asked = model_args(requested)
    # Values left to links (num_classes, image_size) or defaults resolved in __init__ are None here.
    asked = {k: v for k, v in asked.items() if v is not None and k in saved}
    diff = {}
    if saved.get("_class_path") and requested.get("model.class_path") != saved["_class_path"]:
        diff["model"] = (saved["_class_path"], requested.get("model.class_path"))
    if "target_ckpt" in asked:  # a target is the same by content, whatever its path
        old, new = saved.pop("target_ckpt"), asked.pop("target_ckpt")
        old_sha = recorded_target_sha256(ckpt)
        if new != old and old_sha and Path(new).is_file() and file_sha256(new) != old_sha:
            diff["target_ckpt"] = (
                f"{old} (sha256 {old_sha[:12]})",
                f"{new} (sha256 {file_sha256(new)[:12]})",
            )
    refuse(diff | differences({k: saved[k] for k in asked}, asked), "model hyperparameters")


def accelerator_name(accelerator: Any) -> str:
    """`gpu` for any CUDA accelerator, else the lower-cased name (`cpu`, `auto`, ...)."""
    name = str(getattr(accelerator, "class_path", accelerator) or "auto").lower()
    if name in ("gpu", "cuda") or name.endswith("cudaaccelerator"):
        return "gpu"
    return "cpu" if name.endswith("cpuaccelerator") else name


def requested_devices(devices: Any) -> int | None:
    """How many devices `--trainer.devices` asks for; None for all there are (`auto`, -1)."""
    if isinstance(devices, list | tuple):
        return len(devices)
    if isinstance(devices, str):
        text = devices.strip()
        if "," in text:  # "0,1": device indices
            return len([d for d in text.split(",") if d.strip()])
        devices = int(text) if text.lstrip("-").isdigit() else None
    return devices if isinstance(devices, int) and devices > 0 else None


def cpu_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_devices(accelerator: Any, devices: Any, strategy: Any = None) -> None:
    """Refuse hardware the machine does not have, saying what it has and what to use."""
    name, count = accelerator_name(accelerator), requested_devices(devices)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    seen = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
    asked = f"accelerator={name}, devices={devices}, strategy={getattr(strategy, 'class_path', strategy)}"
    if name == "gpu" and gpus == 0:
        raise MintError(
            f"the trainer asks for GPUs ({asked}) but torch finds none on this machine{seen}. "
            f"configs/trainer/ddp.yaml is for GPU machines. Without GPUs, leave it out (one CPU process), "
            f"or test DDP on CPU with gloo: {CPU_DDP}"
        )
    if name in ("gpu", "auto") and gpus and count and count > gpus:
        raise MintError(
            f"--trainer.devices={devices} asks for {count} GPUs but this machine has {gpus}{seen}. Use "
            f"--trainer.devices={gpus} (or -1: all of them); GPUs of other machines join with "
            f"--trainer.num_nodes=N under torchrun or SLURM (README, Multi-node)."
        )
    if (name == "cpu" or (name == "auto" and not gpus)) and count and count > cpu_cores():
        # Oversubscribing cores works (only slowly), so it is a warning: a 1-core CI machine may still
        # run the 2-process DDP test.
        why = "no GPU was found, so accelerator=auto means CPU processes: " if name == "auto" else ""
        warnings.warn(
            f"--trainer.devices={devices} starts {count} CPU processes but this machine has "
            f"{cpu_cores()} CPU cores ({why}{asked}); they will share the cores. Several CPU processes "
            f"are only useful to test DDP: {CPU_DDP}",
            stacklevel=2,
        )


def check_writable(folder: str | Path, unwritable, min_free: int = 0) -> None:
    """Refuse a folder that cannot be created or written (or has under `min_free` bytes free)."""
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise unwritable(folder, f"{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise unwritable(folder, f"{existing} is not writable by this user")
    free = shutil.disk_usage(existing).free
    if free < min_free:
        raise unwritable(folder, f"only {free / 2**20:.0f} MiB free on its disk")


def check_cache_dir(cache_dir: str | Path) -> None:
    """Refuse an activation cache folder that cannot be created or written (before any extraction)."""
    check_writable(cache_dir, unwritable)


def check_save_dir(save_dir: str | Path) -> None:
    """Refuse a logger folder (runs, checkpoints) that cannot be written, before anything is built."""

    def refusal(folder, reason):
        return UnwritableError(
            f"cannot write the run folder {str(folder)!r} ({reason}); set "
            "--trainer.logger.init_args.save_dir to a writable folder"
        )

    check_writable(save_dir, refusal, MIN_FREE_BYTES)


def resolve_last(logger: Any) -> None:
    """Point the logger at the newest earlier run that has a `last.ckpt`, so `--ckpt_path last` resumes it.

    Only when the logger's `version` is not given (with it, Lightning already looks in that run).
    The resumed run keeps logging into the same `version_N` folder.
    """
    args = getattr(logger, "init_args", None)
    if args is None or getattr(args, "version", "given") is not None or not getattr(args, "save_dir", None):
        return
    root = Path(args.save_dir) / (getattr(args, "name", None) or "")
    runs = [run for run in root.glob("version_*") if (run / "checkpoints" / "last.ckpt").is_file()]
    if not runs:
        return  # Lightning warns and starts from scratch: `--ckpt_path last` can be set before a first run
    newest = max(runs, key=lambda run: (run / "checkpoints" / "last.ckpt").stat().st_mtime)
    args.version = newest.name
    rank_zero_info(f"mint: --ckpt_path last resumes {newest / 'checkpoints' / 'last.ckpt'}")
