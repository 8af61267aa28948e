"""Range checks for numbers given by a user (CLI arguments, file fields).

Each check raises one :class:`~or_assist.errors.InputError` naming the argument or
field, the accepted range with its unit, the reason for the range, and the value given,
e.g. ``--size: must be 16..4096 px (the detector grid side), got 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from or_assist.errors import InputError

__all__ = ["Limit", "check_finite", "check_range"]


def _fmt(value) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_finite(value, name: str) -> float:
    """Return ``value`` as a float if it is a finite number, else raise.

    Parameters
    ----------
    value : int or float
        Anything else (a string, a bool, None) is refused.
    name : str
        The argument or field, for the message.

    Returns
    -------
    float

    Raises
    ------
    InputError
        ``value`` is not a number, or is NaN or infinite.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"must be a finite number, got {value!r}", name)
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise InputError(f"must be a finite number, got {value!r}", name)
    return out


def check_range(value, lo: float, hi: float, name: str, unit: str = "", why: str = "", *,
                integer: bool = False):
    """Return ``value`` if it is a finite number in ``lo..hi`` (inclusive), else raise.

    Parameters
    ----------
    value : int or float
    lo, hi : float
        The accepted range, inclusive.
    name : str
        The argument or field, e.g. ``"--size"``.
    unit : str
        Unit shown after the range, e.g. ``"px"`` or ``"mm"``.
    why : str
        What the number is, shown in parentheses (the reason for the range).
    integer : bool
        Also require a whole number.

    Returns
    -------
    int or float
        ``value`` unchanged.

    Raises
    ------
    InputError
        ``must be LO..HI UNIT (WHY), got VALUE``.
    """
    rng = f"{_fmt(lo)}..{_fmt(hi)}" + (f" {unit}" if unit else "")
    if integer:
        rng = "a whole number " + rng
    text = f"must be {rng}" + (f" ({why})" if why else "")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{text}, got {value!r}", name)
    try:
        x = float(value)
    except OverflowError:
        x = math.inf
    ok = math.isfinite(x) and lo <= x <= hi
    if ok and integer and not x.is_integer():
        ok = False
    if not ok:
        raise InputError(f"{text}, got {_fmt(value) if abs(x) < 1e300 else f'{x:g}'}", name)
    return value


@dataclass(frozen=True)
class Limit:
    """A named range, checked by :meth:`check` (see :func:`check_range`)."""

    name: str
    lo: float
    hi: float
    unit: str = ""
    why: str = ""
    integer: bool = False

    def check(self, value):
        """``check_range(value, ...)`` with this limit's settings; None passes."""
        if value is None:
            return None
        return check_range(value, self.lo, self.hi, self.name, self.unit, self.why, integer=self.integer)
