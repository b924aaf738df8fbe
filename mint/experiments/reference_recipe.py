"""The recipe a target was trained with, which its reference models copy: read, compared, changes named.

The target run's `config.yaml` is a file, perhaps from someone else: it may name only mint's,
torch.optim's and Lightning's classes (checked here, before LightningCLI imports anything it names).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from mint.errors import MintError
from mint.files import read_yaml
from mint.records import load_target_checkpoint
from mint.records.trusted import IMPORT_NAME, refuse_foreign_config

# Trainer settings that change how a model trains (the rest, e.g. devices or logging, do not).
RECIPE_TRAINER_KEYS = ("max_epochs", "max_steps", "precision", "accumulate_grad_batches", "gradient_clip_val")
# Extra arguments that decide where and how fast a run goes, not what it learns: left out of the key.
NOT_RECIPE = ("--trainer.devices", "--trainer.accelerator", "--trainer.strategy", "--trainer.num_nodes",
              "--trainer.enable_", "--trainer.logger", "--data.num_workers", "--data.persistent_workers",
              "--data.pin_memory", "--trainer.callbacks")  # fmt: skip
_MISSING = object()


def typed_names(extra: list[str]) -> list[str]:
    """Import paths given as values after `--` (`--trainer.callbacks+=pkg.Cb`): the user's own choice."""
    return [m.group(0) for _, value in _options(extra) if value for m in IMPORT_NAME.finditer(value)]


def target_recipe(run: Path) -> tuple[dict, Path, dict]:
    """The target run's config (as saved by LightningCLI), its checkpoint, and its split record."""
    config_path = run / "config.yaml"
    ckpt = run / "checkpoints" / "last.ckpt"
    if not os.path.lexists(config_path) or not os.path.lexists(ckpt):
        raise MintError(
            f"{run} is not a finished target run: it needs config.yaml and checkpoints/last.ckpt "
            "(give a folder like lightning_logs/target_cifar10/version_0)"
        )
    config = read_yaml(config_path, "the target run's config")  # a list, binary, a bomb, a FIFO: refused
    model = config.get("model")
    class_path = str(model.get("class_path", "")) if isinstance(model, dict) else ""
    if not (class_path.startswith("mint.") and class_path.endswith(".TargetModule")):
        raise MintError(f"{run} is not a target run (its model is {class_path or model!r})"[:300])
    refuse_foreign_config(config, config_path)  # before anything hands the file to LightningCLI
    return config, ckpt, load_target_checkpoint(ckpt).manifest


def recipe_of(config: dict) -> dict:
    """The parts of a config that decide how a model trains: model, data, seed, training length."""
    trainer = config.get("trainer") or {}
    return {
        "model": config.get("model"),
        "data": config.get("data"),
        "seed_everything": config.get("seed_everything"),
        "trainer": {k: trainer.get(k) for k in RECIPE_TRAINER_KEYS},
    }


def _options(extra: list[str]) -> list[tuple[str, str | None]]:
    """(--name, value) of each option in `extra` (`--a=1` or `--a 1`; None for a bare flag)."""
    options, i = [], 0
    while i < len(extra):
        name, eq, value = extra[i].partition("=")
        i += 1
        if not name.startswith("--"):
            continue
        if not eq and i < len(extra) and not extra[i].startswith("--"):
            value, eq, i = extra[i], "=", i + 1
        options.append((name, value if eq else None))
    return options


def _lookup(tree: object, key: str) -> object:
    """The value at a dotted key of a config, `init_args` optional (`model.width`); _MISSING if unset."""
    for part in key.split("."):
        if isinstance(tree, dict) and part in tree:
            tree = tree[part]
        elif isinstance(tree, dict) and isinstance(tree.get("init_args"), dict) and part in tree["init_args"]:
            tree = tree["init_args"][part]
        else:
            return _MISSING
    return tree


def recipe_changes(config: dict, extra: list[str]) -> list[str]:
    """Arguments after `--` that train otherwise than the target: ["trainer.max_epochs=1 (target: 10)"]."""
    changes = []
    for name, value in _options(extra):
        if name.startswith(NOT_RECIPE):
            continue
        try:
            asked = True if value is None else yaml.safe_load(value)
        except yaml.YAMLError:
            asked = value
        found = _lookup(config, name[2:])
        if found is _MISSING or found != asked:
            was = "not set" if found is _MISSING else f"target: {found!r}"[:80]
            changes.append(f"{name[2:]}={value if value is not None else 'true'} ({was})")
    return changes
