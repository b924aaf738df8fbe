"""Mistakes a user can make, and the one place where numeric settings are checked.

Every check names the setting, the value given and the range allowed, so the message alone says
what to change.
"""

from __future__ import annotations

import math
import re
from typing import Any


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


def check_float(
    name: str,
    value: float | None,
    minimum: float | None = None,
    maximum: float | None = None,
    open_minimum: bool = False,
) -> float | None:
    """Refuse NaN, infinity and a float outside [minimum, maximum] (or (minimum, ...] if `open_minimum`).

    None passes (it means "default"). NaN compares false with everything, so without this a NaN
    setting slips through every `<` check and reaches the arithmetic.
    """
    if value is None:
        return value
    if not math.isfinite(value):
        raise MintError(f"{name} must be a finite number, got {value}")
    low = minimum is not None and (value <= minimum if open_minimum else value < minimum)
    if low or (maximum is not None and value > maximum):
        lo = "-inf" if minimum is None else f"{minimum:g}"
        hi = "inf" if maximum is None else f"{maximum:g}"
        raise MintError(f"{name} must be in {'(' if open_minimum else '['}{lo}, {hi}], got {value:g}")
    return value


def check_finite(name: str, values: Any, hint: str = "") -> Any:
    """Refuse a tensor or array holding NaN or infinity (scores, activations, calibration data).

    A NaN score compares false with every threshold and ranks anywhere: an AUROC, a p-value or a
    verdict computed from it is silently wrong. `hint` says what to do (e.g. check `std`).
    """
    if hasattr(values, "isfinite"):  # a torch tensor
        bad = int((~values.isfinite()).sum()) if values.is_floating_point() else 0
    else:
        import numpy as np

        array = np.asarray(values)
        bad = int((~np.isfinite(array)).sum()) if np.issubdtype(array.dtype, np.floating) else 0
    if bad:
        size = math.prod(values.shape) if hasattr(values, "shape") else len(values)
        raise MintError(
            f"{name}: {bad:,} of {size:,} values are NaN or infinite" + (f"; {hint}" if hint else "")
        )
    return values


def _config_error_text(message: str) -> str:
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
        union = re.search(
            r'Parser key "([\w.]+)":\s*Does not validate against any of the Union subtypes\s*'
            r"Subtypes: \[(.*?)\].*?Given value: ([^\n]*)",
            message[inner.start() :],
            re.S,
        )
        if union:
            key, subtypes, value = union.groups()
            kinds = [
                t.replace("NoneType", "null") for t in re.findall(r"<class '(?:[\w.]+\.)?(\w+)'>", subtypes)
            ]
            return f"{prefix}.{key}={value.strip()}: expected a value of type {' or '.join(kinds)}"
        option = re.search(r"Option '([\w.]+)' is not accepted", text)
        if option:
            return f"{prefix}.{option.group(1)} is not an option of {cls}"
        return f"{prefix} ({cls}): " + " ".join(text.split())
    given = re.search(r"Given value: (.*)", message)
    types = [t.replace("NoneType", "null") for t in re.findall(r"Expected a <class '(\w+)'>", message)]
    if outer and given and types:
        return f"{prefix}={given.group(1).strip()}: expected a value of type {' or '.join(types)}"
    return " ".join(message.split())


def config_error_text(message: str) -> str:
    """The report jsonargparse gives of a bad command line or config, in one line naming the setting."""
    return _moved_hint(_finite_hint(_config_error_text(message)))


MOVED = re.compile(r"--model\.(?:init_args\.)?(target_ckpt|target|layers|pool_size|pool)\b")


def _moved_hint(text: str) -> str:
    """Say where a detector's target options went: a config written for mint before 2026-12-06."""
    moved = MOVED.search(text)
    if moved:
        return (
            f"{text}. The target, its layers and pooling are the detector data module's options: write "
            f"`{moved.group(1)}` under data: init_args: (--data.init_args.{moved.group(1)})"
        )
    return text


NOT_FINITE = re.compile(r"=\s*[+-]?(nan|inf|infinity)\b", re.I)


def _finite_hint(text: str) -> str:
    """Say why `--x=nan` is refused: jsonargparse's "expected a float" reads as if nan were no float."""
    if NOT_FINITE.search(text) and "float" in text:
        option = text.split("=", 1)[0]
        value = NOT_FINITE.search(text).group(0).lstrip("= ")
        return f"{option}={value}: expected a finite number (nan and inf are refused)"
    return text
