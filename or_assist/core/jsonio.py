"""Reading and validating the JSON interchange files (see CONVENTIONS).

Every reader goes through :func:`read_json` and the ``field_*`` helpers so that an
unknown schema or a missing or malformed field always gives a :class:`SchemaError`
that names the file and the field.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from or_assist.core.validate import is_finite_number
from or_assist.errors import InputError, SchemaError

__all__ = [
    "read_json",
    "loads_json",
    "MAX_JSON_BYTES",
    "write_json",
    "check_schema",
    "field",
    "field_float",
    "field_bool",
    "field_str",
    "field_array",
    "to_jsonable",
]


#: Largest JSON file read (bytes): interchange files are kilobytes; a bigger one is a mistake.
MAX_JSON_BYTES = 64 * 2**20
#: Most digits in an integer literal: more cannot be a finite float (1.8e308).
_MAX_INT_DIGITS = 308


def _parse_int(text: str) -> int | float:
    """An integer literal; one too large for a float becomes ±inf (refused by the field checks,
    which name the field) instead of hitting Python's int-string limit."""
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        return -math.inf if text.startswith("-") else math.inf
    return int(text)


def loads_json(text: str, where: str) -> Any:
    """Parse JSON text, turning every parser failure into one :class:`InputError`.

    Invalid syntax and nesting too deep to parse are refused with a message naming
    ``where``. NaN / Infinity literals and numbers beyond the float range (integers with
    more than 308 digits included) are read as NaN / ±inf, which the ``field_*`` helpers
    refuse naming the field.

    Parameters
    ----------
    text : str
        The JSON text.
    where : str
        The file or field, for the message.

    Returns
    -------
    Any
        The parsed value.

    Raises
    ------
    InputError
    """
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc})", where) from None
    except RecursionError:
        raise InputError("not valid JSON: nested too deeply to parse", where) from None
    except (ValueError, OverflowError, MemoryError) as exc:
        raise InputError(f"not valid JSON ({type(exc).__name__}: {str(exc)[:120]})", where) from None


def read_json(path: str | os.PathLike, schema: str | None = None) -> dict:
    """Read a JSON file and (optionally) check its ``"schema"`` string.

    Parameters
    ----------
    path : path-like
        The file to read.
    schema : str, optional
        The expected schema, e.g. ``"or_assist.pose/1"``.

    Returns
    -------
    dict
        The parsed document.

    Raises
    ------
    InputError
        The file is missing, unreadable, larger than :data:`MAX_JSON_BYTES`, or not
        valid JSON (see :func:`loads_json`).
    SchemaError
        The document is not an object, or its schema is missing or different.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise InputError("file not found", where)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise InputError(f"{size / 2**20:.0f} MiB is too large for a JSON interchange file "
                             f"(at most {MAX_JSON_BYTES // 2**20} MiB; is it the right file?)", where)
        with open(path, "rb") as fh:
            raw = fh.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", where) from None
    if len(raw) > MAX_JSON_BYTES:
        raise InputError(f"too large for a JSON interchange file (at most {MAX_JSON_BYTES // 2**20} MiB)", where)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 JSON ({exc})", where) from None
    doc = loads_json(text.removeprefix("\ufeff"), where)
    if not isinstance(doc, dict):
        raise SchemaError(f"expected a JSON object {{...}} at the top level, got {type(doc).__name__}", where)
    if schema is not None:
        check_schema(doc, schema, str(path))
    return doc


def check_schema(doc: Any, schema: str, where: str) -> None:
    """Check that ``doc`` is an object whose ``"schema"`` equals ``schema``."""
    if not isinstance(doc, dict):
        raise SchemaError(f"expected a JSON object with schema {schema!r}", where)
    found = doc.get("schema")
    if found is None:
        raise SchemaError(f"missing field 'schema' (expected {schema!r})", where)
    if found != schema:
        raise SchemaError(f"unknown schema {found!r} (expected {schema!r})", where)


def write_json(path: str | os.PathLike, doc: dict) -> Path:
    """Write ``doc`` as indented UTF-8 JSON, atomically (write then rename).

    A failure (read-only, disk full, folder vanished) leaves no temporary file and is one
    :class:`~or_assist.errors.InputError` naming ``path``.
    """
    from or_assist.core.outputs import write_bytes_atomic

    path = Path(path)
    text = json.dumps(doc, indent=2, default=to_jsonable) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"), what="the JSON file")


def to_jsonable(obj: Any) -> Any:
    """``json.dumps(default=...)`` hook: numpy arrays and scalars, paths."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


_MISSING = object()


def field(doc: dict, name: str, where: str, default: Any = _MISSING) -> Any:
    """Return ``doc[name]``; a :class:`SchemaError` naming ``where.name`` if missing."""
    if name not in doc:
        if default is _MISSING:
            raise SchemaError(f"missing field '{name}'", where)
        return default
    return doc[name]


def field_float(doc: dict, name: str, where: str, *, positive: bool = False,
                default: Any = _MISSING) -> float:
    """A finite number field (optionally > 0)."""
    value = field(doc, name, where, default)
    if value is default and default is not _MISSING:
        return value
    if not is_finite_number(value):
        raise SchemaError(f"field '{name}' must be a finite number, got {value!r}", where)
    if positive and value <= 0:
        raise SchemaError(f"field '{name}' must be > 0, got {value!r}", where)
    return float(value)


def field_bool(doc: dict, name: str, where: str, default: Any = _MISSING) -> bool:
    """A boolean field."""
    value = field(doc, name, where, default)
    if not isinstance(value, bool):
        raise SchemaError(f"field '{name}' must be true or false, got {value!r}", where)
    return value


def field_str(doc: dict, name: str, where: str, *, choices: tuple[str, ...] | None = None,
              default: Any = _MISSING) -> str:
    """A string field, optionally one of ``choices``."""
    value = field(doc, name, where, default)
    if value is default and default is not _MISSING:
        return value
    if not isinstance(value, str):
        raise SchemaError(f"field '{name}' must be a string, got {value!r}", where)
    if choices is not None and value not in choices:
        raise SchemaError(f"field '{name}' must be one of {', '.join(choices)}; got {value!r}", where)
    return value


def field_array(doc: dict, name: str, where: str, shape: tuple[int | None, ...],
                default: Any = _MISSING) -> np.ndarray:
    """A numeric array field of the given shape (``None`` = any length), finite, float64."""
    value = field(doc, name, where, default)
    if value is default and default is not _MISSING:
        return value
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise SchemaError(f"field '{name}' must be a numeric array of shape {_fmt(shape)}", where) from None
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        raise SchemaError(
            f"field '{name}' must have shape {_fmt(shape)}, got {_fmt(arr.shape)}", where)
    if not np.all(np.isfinite(arr)):
        raise SchemaError(f"field '{name}' contains NaN or inf", where)
    return arr


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
