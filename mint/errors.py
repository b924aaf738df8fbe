"""Mistakes a user can make, and the one place where numeric settings are checked.

Every check names the setting, the value given and the range allowed, so the message alone says
what to change.
"""

from __future__ import annotations

import re


class MintError(ValueError):
    """A user's mistake (a setting, a file, data): the message says what is wrong and what to do."""


class UnwritableError(MintError, PermissionError):
    """A folder mint must write into cannot be written (read-only, a file, another user's)."""


def check_fraction(name: str, value: float) -> float:
    """Refuse a fraction outside the open interval (0, 1) (both ends would leave one side empty)."""
    if not 0.0 < value < 1.0:
        raise MintError(f"{name} must be in (0, 1), got {value}")
    return value


def check_count(name: str, value: int | None, minimum: int = 1) -> int | None:
    """Refuse a count (size, batch size, ...) below `minimum`; None passes (it means "default")."""
    if value is not None and value < minimum:
        raise MintError(f"{name} must be >= {minimum}, got {value}")
    return value


def config_error_text(message: str) -> str:
    """The report jsonargparse gives of a bad command line or config, in one line naming the setting.

    jsonargparse explains a typo in a data-module key as a failed match against a union of class
    types, after ~50 lines of usage; what a person needs is the option, the value and what fits.
    """
    outer = re.match(r'Parser key "([\w.]+)"', message)
    prefix = f"--{outer.group(1)}" if outer else ""
    problem = r"Problem with given class_path '([\w.]+)':\s*(.*?)\n\s*- Expected a <class 'NoneType'>"
    inner = re.search(problem, message, re.S)
    if inner:
        cls, text = inner.groups()
        typed = re.search(r'Parser key "([\w.]+)":\s*Expected a <class \'(\w+)\'>\. Got value: (.*)', text)
        if typed:
            key, kind, value = typed.groups()
            return f"{prefix}.{key}={value.strip()}: expected a value of type {kind}"
        option = re.search(r"Option '([\w.]+)' is not accepted", text)
        if option:
            return f"{prefix}.{option.group(1)} is not an option of {cls}"
        return f"{prefix} ({cls}): " + " ".join(text.split())
    given = re.search(r"Given value: (.*)", message)
    types = [t.replace("NoneType", "null") for t in re.findall(r"Expected a <class '(\w+)'>", message)]
    if outer and given and types:
        return f"{prefix}={given.group(1).strip()}: expected a value of type {' or '.join(types)}"
    return " ".join(message.split())
