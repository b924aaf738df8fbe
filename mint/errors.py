"""Mistakes a user can make, and the one place where numeric settings are checked.

Every check names the setting, the value given and the range allowed, so the message alone says
what to change.
"""

from __future__ import annotations


class MintError(ValueError):
    """A user's mistake (a setting, a file, data): the message says what is wrong and what to do."""


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
