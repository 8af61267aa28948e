"""Checks for parameters and fields given by a user (CLI arguments, settings, file fields).

The one home of parameter validation: a settings class or public function calls these
instead of writing its own ``isinstance(...) and math.isfinite(...)`` test. Each check
raises one :class:`~or_assist.errors.InputError` naming the argument or field, what was
expected (with its unit) and the value given, e.g.
``--size: must be 16..4096 px (the detector grid side), got 0`` or
``step_mm: must be a finite number > 0 (mm), got nan``.

These check single parameters; array *data* (an image with NaN pixels) is checked where
it is read. The named choices the checks compare against live in
:mod:`or_assist.core.vocabulary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from or_assist.errors import InputError

__all__ = ["Limit", "is_finite_number", "is_integer", "check_integer", "check_bool", "check_finite", "check_number", "check_positive", "check_vector",
           "check_choice", "check_range"]

_REAL_TYPES = (int, float, np.integer, np.floating)


def _fmt(value) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def is_finite_number(value) -> bool:
    """True if ``value`` is a real number (Python or NumPy int or float, not a bool) and finite.

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
        False for a string, a bool, None, NaN, an infinity or an int beyond the float range.
    """
    if isinstance(value, bool) or not isinstance(value, _REAL_TYPES):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        return False


def is_integer(value) -> bool:
    """True if ``value`` is a Python or NumPy integer and not a bool.

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
    """
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def check_integer(value, name: str, lo: int, hi: int) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) in ``lo..hi``, else raise.

    Parameters
    ----------
    value : object
    name : str
        The argument or field, for the message.
    lo, hi : int
        Inclusive bounds.

    Returns
    -------
    int

    Raises
    ------
    InputError
        ``name: must be an integer from lo to hi, got value``.
    """
    if not is_integer(value) or not lo <= value <= hi:
        raise InputError(f"must be an integer from {lo} to {hi}, got {value!r}", name)
    return int(value)


def check_bool(value, name: str) -> bool:
    """Return ``value`` as a bool if it is a Python or NumPy bool, else raise ("must be true or false")."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"must be true or false, got {value!r}", name)
    return bool(value)


def check_finite(value, name: str, expected: str = "a finite number") -> float:
    """Return ``value`` as a float if it is a finite number, else raise.

    Parameters
    ----------
    value : int or float
        Anything else (a string, a bool, None) is refused.
    name : str
        The argument or field, for the message.
    expected : str
        What a good value is, for the message (``must be EXPECTED, got VALUE``).

    Returns
    -------
    float

    Raises
    ------
    InputError
        ``value`` is not a number, or is NaN or infinite.
    """
    if not is_finite_number(value):
        raise InputError(f"must be {expected}, got {value!r}", name)
    return float(value)


def check_number(value, name: str, lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False,
                 unit: str = "", expected: str | None = None) -> float:
    """Return ``value`` as a float if it is a finite number within the bounds, else raise.

    Parameters
    ----------
    value : int or float
    name : str
        The argument or field, for the message.
    lo, hi : float
        Bounds, inclusive (``lo`` exclusive with ``lo_open``); infinite means none.
    lo_open : bool
        Require ``value > lo`` instead of ``value >= lo``.
    unit : str
        Unit shown in parentheses after the bounds, e.g. ``"mm"``.
    expected : str, optional
        What a good value is, for the message; by default built from the bounds, e.g.
        ``a finite number >= 0 and <= 1.2`` or ``a finite number > 0 (mm)``.

    Returns
    -------
    float

    Raises
    ------
    InputError
        ``must be EXPECTED, got VALUE``.
    """
    ok = is_finite_number(value) and (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        if expected is None:
            bounds = []
            if lo > -math.inf:
                bounds.append(f"{'>' if lo_open else '>='} {lo:g}")
            if hi < math.inf:
                bounds.append(f"<= {hi:g}")
            expected = " ".join(["a finite number", " and ".join(bounds)]).strip() + (f" ({unit})" if unit else "")
        raise InputError(f"must be {expected}, got {value!r}", name)
    return float(value)


def check_positive(value, name: str, unit: str = "", *, allow_zero: bool = False,
                   expected: str | None = None) -> float:
    """:func:`check_number` with ``value > 0`` (``>= 0`` with ``allow_zero``).

    The default message reads ``must be a finite number > 0 (UNIT), got VALUE``.
    """
    return check_number(value, name, 0.0, lo_open=not allow_zero, unit=unit, expected=expected)


def check_vector(value, length: int, name: str, *, unit: str = "", nonzero: bool = False, positive: bool = False,
                 expected: str | None = None) -> np.ndarray:
    """Return ``value`` as a new float64 array of ``length`` finite numbers, else raise.

    Parameters
    ----------
    value : array_like
        Any sequence of numbers; it is flattened, so a (1, 3) array passes as 3 numbers.
    length : int
        How many numbers, e.g. 3 for a point or direction in the patient frame.
    name : str
        The argument or field, for the message.
    unit : str
        Unit or frame shown in parentheses, e.g. ``"LPS mm"``.
    nonzero : bool
        Also refuse the zero vector (a direction).
    positive : bool
        Also require every number > 0 (a spacing).
    expected : str, optional
        What a good value is, for the message; by default e.g.
        ``3 finite numbers (LPS mm)`` or ``a finite non-zero 3-vector``.

    Returns
    -------
    (length,) float64 ndarray

    Raises
    ------
    InputError
        ``must be EXPECTED, got VALUE``.
    """
    if expected is None:
        if nonzero:
            expected = f"a finite non-zero {length}-vector"
        else:
            expected = f"{length} finite {'positive ' if positive else ''}numbers"
        expected += f" ({unit})" if unit else ""
    try:
        arr = np.array(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"must be {expected}, got {value!r}", name) from None
    ok = arr.shape == (length,) and bool(np.all(np.isfinite(arr)))
    if ok and nonzero:
        ok = bool(np.any(arr != 0))
    if ok and positive:
        ok = bool(np.all(arr > 0))
    if not ok:
        raise InputError(f"must be {expected}, got {value!r}", name)
    return arr


def check_choice(value, choices: tuple, name: str):
    """Return ``value`` if it is one of ``choices`` (a tuple from :mod:`or_assist.core.vocabulary`), else raise.

    Parameters
    ----------
    value : object
    choices : tuple
        The accepted values (strings, possibly None), listed in the message in this order.
    name : str
        The argument or field, for the message.

    Returns
    -------
    object
        ``value`` unchanged.

    Raises
    ------
    InputError
        ``must be one of A, B, C, got VALUE``.
    """
    if isinstance(value, np.ndarray) or value not in choices:
        raise InputError(f"must be one of {', '.join(str(c) for c in choices)}, got {value!r}", name)
    return value


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
