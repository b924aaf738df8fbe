"""Options mint removed, and how what an earlier mint wrote naming them is read (docs/options.md).

A run's `config.yaml` names every option at its value, defaults included, and a detector checkpoint
records its module's options: both name an option after mint removed it. An option at the value
whose behaviour mint kept is read as if absent (`older_config_loader`, `without_removed`), saying so
once; at another value it would need code mint no longer has, and is refused in one line that says
why the option went.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

from mint.errors import MintError

# name -> (the value whose behaviour mint kept, why the option went)
REMOVED_OPTIONS = {
    "class_standardize": (False, "it measured no gain on four targets (docs/results.md, section 13)"),
    "verify_cache": (True, "the cache is always checked: it costs less than one epoch's read of it"),
}


def refuse_removed_options(options: dict, where: str) -> None:
    """Refuse options naming a removed one at a value other than the kept one (it needs removed code)."""
    for name, (kept, why) in REMOVED_OPTIONS.items():
        if name in options and options[name] != kept:
            raise MintError(
                f"{where} sets {name}={options[name]}, which mint no longer has: {why}. "
                "Train again without it (a config: delete it)"
            )


def without_removed(options: dict, said: set[str] | None = None) -> dict:
    """`options` less the removed ones at their kept value, each said (unless already in `said`).

    A removed option at another value is left in, to be refused by whatever reads it.
    """
    found = [n for n, (kept, _) in REMOVED_OPTIONS.items() if n in options and options[n] == kept]
    for name in set(found) - (said if said is not None else set()):
        why = REMOVED_OPTIONS[name][1]
        print(f"mint: `{name}` is no longer an option, read without it: {why}", file=sys.stderr)
        if said is not None:
            said.add(name)
    return {k: v for k, v in options.items() if k not in found}


def removed_hint(text: str) -> str:
    """A parser's error about an option mint removed, with why it went."""
    for name, (_, why) in REMOVED_OPTIONS.items():
        if re.search(rf"--(?:model|data)\.(?:init_args\.)?{name}\b", text):
            return f"{text}. mint removed `{name}`: {why}. Delete it from the config"
    return text


def older_config_loader(load: Callable[[str], Any]) -> Callable[[str], Any]:
    """The YAML loader `load` (jsonargparse's), reading model and data options without removed ones."""
    said: set[str] = set()  # a config file may be read more than once

    def loader(text: str) -> Any:
        value = load(text)
        for section in ("model", "data") if isinstance(value, dict) else ():
            args = value[section].get("init_args") if isinstance(value.get(section), dict) else None
            if isinstance(args, dict):
                value[section]["init_args"] = without_removed(args, said)
        return value

    return loader


def refuse_unknown_options(options: dict, cls: type, but: tuple[str, ...] = ()) -> None:
    """Refuse keyword options `cls` does not take (or takes in `but` only from mint) in one line."""
    known = set(inspect.signature(cls).parameters) - set(but)
    unknown = sorted(set(options) - known)
    if unknown:
        removed = [f"; mint removed `{n}`: {REMOVED_OPTIONS[n][1]}" for n in unknown if n in REMOVED_OPTIONS]
        listed = ", ".join(sorted(known))
        raise MintError(
            f"{cls.__name__} has no option {', '.join(unknown)}{''.join(removed)}. Its options: {listed}"
        )
