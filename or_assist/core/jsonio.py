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

from or_assist.errors import InputError, SchemaError

__all__ = [
    "read_json",
    "write_json",
    "check_schema",
    "field",
    "field_float",
    "field_bool",
    "field_str",
    "field_array",
    "to_jsonable",
]


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
        The file is missing or is not valid JSON.
    SchemaError
        The document is not an object, or its schema is missing or different.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", str(path))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not valid UTF-8 JSON ({exc})", str(path)) from None
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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
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
    except (TypeError, ValueError):
        raise SchemaError(f"field '{name}' must be a numeric array of shape {_fmt(shape)}", where) from None
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        raise SchemaError(
            f"field '{name}' must have shape {_fmt(shape)}, got {_fmt(arr.shape)}", where)
    if not np.all(np.isfinite(arr)):
        raise SchemaError(f"field '{name}' contains NaN or inf", where)
    return arr


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
