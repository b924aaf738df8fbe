"""The one allow-list of classes a checkpoint or a run's config may make LightningCLI import, enforced.

A config handed to LightningCLI imports every `class_path` in it (and plain strings naming a class,
inline YAML, nested config files): a run folder given to `mint references` must name nothing but
mint's, torch.optim's and Lightning's classes. Two layers: a walk of the config as jsonargparse reads
it, and jsonargparse's own import policy while the fit runs.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from mint.errors import MintError
from mint.files import MAX_YAML_BYTES, read_yaml

# What a checkpoint's hyperparameters may name: LightningCLI imports every class path in them (the
# model's, its optimizer's) when it reads `--ckpt_path`, so a file naming another module would have it run.
MODULE_CLASSES = ("TargetModule", "DetectorModule")
IMPORTABLE = ("mint.", "torch.optim.", "lightning.pytorch.cli.")


def _import_paths(value: Any, key: str = ""):
    """Every import path named in hyperparameters: class paths, and callables given by name."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("class_path", "_class_path") and isinstance(v, str):
                yield k, v
            else:
                yield from _import_paths(v, k)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _import_paths(v, key)
    elif isinstance(value, str) and key in ("optimizer", "lr_scheduler"):
        yield key, value


def refuse_foreign_classes(hparams: dict, ckpt_path: str) -> None:
    """Refuse a checkpoint whose hyperparameters name a class outside mint, torch.optim and Lightning."""
    for key, path in _import_paths(hparams):
        name = path.rsplit(".", 1)[-1]  # mint.DetectorModule, mint.tasks.detector.DetectorModule, ...
        if key == "_class_path" and not (name in MODULE_CLASSES and path.startswith("mint.")):
            bad = path
        elif key != "_class_path" and not path.startswith(IMPORTABLE):
            bad = path
        else:
            continue
        raise MintError(
            f"{ckpt_path} names the class {bad[:200]!r}, which is not mint's, torch.optim's or Lightning's; "
            "mint does not import classes named by a file. Use a checkpoint written by mint"
        )


# What a run's config may make LightningCLI import: mint's classes, torch's optimizers and schedulers,
# Lightning's callbacks, loggers, plugins and strategies (`--ckpt_path`'s allow-list, and Lightning).
CONFIG_IMPORTABLE = tuple(p.rstrip(".") for p in (*IMPORTABLE, "lightning."))
# A value jsonargparse may import: `package.module.Class`, or `package.module:function` (mint's own).
IMPORT_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\.[A-Za-z_]\w*|:[A-Za-z_][\w.]*)")
MAX_CONFIG_VALUES = 100_000  # values walked, nested configs included (a config has hundreds)


def _allowed(name: str) -> bool:
    """Whether an import path is under one of `CONFIG_IMPORTABLE`."""
    path = name.replace(":", ".")
    return any(path == p or path.startswith(p + ".") for p in CONFIG_IMPORTABLE)


def _importable(name: str) -> bool:
    """Whether the top-level module of an import path exists (found without importing anything)."""
    try:
        return importlib.util.find_spec(re.split(r"[.:]", name)[0]) is not None
    except (ImportError, ValueError):
        return False


def _nested(value: str, base: Path) -> Any:
    """What jsonargparse reads in place of a string: the config file it names, or inline YAML; else None."""
    for path in (Path(value), base.parent / value):  # relative to the working folder or to the config
        try:
            info = path.stat()
        except (OSError, ValueError):
            continue
        if stat.S_ISDIR(info.st_mode) or (stat.S_ISREG(info.st_mode) and info.st_size > MAX_YAML_BYTES):
            return None  # a folder or a large file: data, not a config
        try:
            return read_yaml(path, "a file named by the config", mapping=False), path
        except MintError:
            if not stat.S_ISREG(info.st_mode):
                raise  # a FIFO or device, which jsonargparse would read forever
            return None  # binary or not YAML: data (jsonargparse cannot read it as a config either)
    if value.lstrip()[:1] in ("{", "[") or ": " in value:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return None
        return (parsed, base) if isinstance(parsed, dict | list) else None
    return None


def _foreign_names(config: Any, where: Path) -> Iterator[tuple[str, str, Path]]:
    """(setting, name, file) of every import path in a config outside `CONFIG_IMPORTABLE`.

    Read as jsonargparse reads it: `class_path` values, names given as plain strings (a callback
    `evilcb.Evil`), inline YAML in a string, and config files a string names, walked in turn.
    """
    stack, seen, files = [("", config, where)], 0, {where.resolve()}
    while stack:
        key, value, base = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES:
            raise MintError(f"{where} holds more than {MAX_CONFIG_VALUES:,} values with its nested configs")
        if isinstance(value, dict):
            stack += [(f"{key}.{k}" if key else str(k), v, base) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(key, v, base) for v in value]
        elif isinstance(value, str) and key.rsplit(".", 1)[-1] in ("class_path", "_class_path"):
            if IMPORT_NAME.fullmatch(value.strip()) is None or not _allowed(value.strip()):
                if "." in value or ":" in value:  # a bare class name resolves among imported classes
                    yield key, value, base
        elif isinstance(value, str):
            nested = _nested(value, base)
            if nested is not None and nested[1] != base and nested[1].resolve() in files:
                continue  # a config file already walked (one that names itself, or a loop)
            if nested is not None:
                files.add(nested[1].resolve())
                stack.append((key, *nested))
            elif IMPORT_NAME.fullmatch(value) and not _allowed(value) and _importable(value):
                yield key, value, base


def refuse_foreign_config(config: Any, where: Path) -> None:
    """Refuse a config that names a class or function outside mint, torch.optim and Lightning.

    LightningCLI imports every class a config names (running its module's code) before it checks
    its type, so a run folder from elsewhere could otherwise run any module on `sys.path`.
    """
    for key, name, base in _foreign_names(config, where):
        via = f", in {base}" if base != where else ""  # a config file the config names
        raise MintError(
            f"{where} names {name[:200]!r} (at {key}{via}), which is not mint's, torch.optim's or "
            "Lightning's; mint does not import classes a run's files name. Use a target run trained by mint"
        )


@contextmanager
def importing_only(also: list[str]) -> Iterator[None]:
    """Have jsonargparse import only `CONFIG_IMPORTABLE` (and `also`) while the block runs.

    The same allow-list as `refuse_foreign_config`, enforced where jsonargparse imports (every
    path, however a config spells it), where jsonargparse has an import policy (older versions
    have none: the walk of the config stands alone). The policy is global: the one before returns.
    """
    import jsonargparse

    settings = getattr(getattr(jsonargparse, "_common", None), "parsing_settings", None)
    if "import_path_allowlist" not in inspect.signature(jsonargparse.set_parsing_settings).parameters or (
        not isinstance(settings, dict) or "import_path_verdicts" not in settings
    ):
        yield  # an older jsonargparse: `refuse_foreign_config` alone
        return
    before = {k: settings[k] for k in ("import_path_verdicts", "import_paths_enforced")}
    allow = [*CONFIG_IMPORTABLE, *(n.split(":")[0] for n in also)]
    jsonargparse.set_parsing_settings(import_path_denylist=["*"], import_path_allowlist=allow)
    try:
        yield
    finally:
        settings.update(before)
