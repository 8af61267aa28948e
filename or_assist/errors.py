"""Exceptions raised for bad input.

Every error a user can cause names the file, field or argument and says what was
expected, so the CLI can print it as one line instead of a traceback.
"""

from __future__ import annotations

__all__ = ["OrAssistError", "InputError", "SchemaError"]


class OrAssistError(Exception):
    """Base class of every error or_assist raises on purpose."""


class InputError(OrAssistError, ValueError):
    """Bad input: a missing or unreadable file, or an argument out of range.

    Parameters
    ----------
    message : str
        What was wrong and what was expected.
    source : str, optional
        The file, field or argument the message is about; prefixed to the message.
    """

    def __init__(self, message: str, source: str | None = None):
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class SchemaError(InputError):
    """A JSON interchange file with an unknown schema or a missing/malformed field."""
