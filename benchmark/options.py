"""Typed values of string options (``visrepro train --opt K=V``, ``--adapter-arg K=V``).

Options arrive as strings from the command line (or as Python values from code). A value that
does not parse is an :class:`~benchmark.errors.InputError` naming the option and the value
(exit 2), never a ``ValueError`` traceback, and a boolean typo is never read as ``True``.
"""

from __future__ import annotations

from typing import Any

from benchmark.errors import InputError

__all__ = ["opt_bool", "opt_float", "opt_int"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _name(key: str | None) -> str:
    return f"option {key}" if key else "option"


def opt_bool(value: Any, key: str | None = None) -> bool:
    """``True`` for 1/true/yes/on, ``False`` for 0/false/no/off (any case); else an input error."""
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise InputError(
        f"{_name(key)}={value!r}: expected a boolean (true/false, 1/0, yes/no, on/off)", entry="options"
    )


def opt_int(value: Any, key: str | None = None, *, minimum: int | None = None) -> int:
    """An integer (``"12"``, ``12``; not ``"1.5"`` nor ``True``), at least ``minimum`` if given."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise InputError(f"{_name(key)}={value!r}: expected an integer", entry="options")
    try:
        out = int(value) if not isinstance(value, str) else int(value.strip(), 10)
    except (TypeError, ValueError):
        raise InputError(f"{_name(key)}={value!r}: expected an integer", entry="options") from None
    if minimum is not None and out < minimum:
        raise InputError(f"{_name(key)}={value!r}: expected an integer >= {minimum}", entry="options")
    return out


def opt_float(
    value: Any, key: str | None = None, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    """A finite number in ``[minimum, maximum]`` (bounds optional)."""
    if isinstance(value, bool):
        raise InputError(f"{_name(key)}={value!r}: expected a number", entry="options")
    try:
        out = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InputError(f"{_name(key)}={value!r}: expected a number", entry="options") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise InputError(f"{_name(key)}={value!r}: expected a finite number", entry="options")
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        lo = "-inf" if minimum is None else f"{minimum:g}"
        hi = "inf" if maximum is None else f"{maximum:g}"
        raise InputError(f"{_name(key)}={value!r}: expected a number in [{lo}, {hi}]", entry="options")
    return out
