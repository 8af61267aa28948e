"""Credentials in video source specs: masked in every message, never stored in clear.

A stream address may carry a user name and password (``rtsp://user:pass@host/stream``);
a mistyped one may lack its scheme (``user:pass@host/stream``). :func:`mask_credentials`
is the one function every message, log line, case-log field and report passes a source
through: it replaces the password by ``***`` wherever ``user:password@`` appears in a
text. The settings file keeps a source without its password
(:func:`strip_password`); the password is then taken from the environment variable
:data:`PASSWORD_ENV` (:func:`with_password`) or from ``--source`` given in full again.

No OpenCV, no Qt: safe to import from anywhere.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote

__all__ = ["PASSWORD_ENV", "mask_credentials", "strip_password", "with_password", "has_password"]

PASSWORD_ENV = "OR_ASSIST_SOURCE_PASSWORD"
"""Environment variable holding the password of a saved (or given) source that has a
user name but no password."""

_MASK = "***"

# [scheme://] user : password @ -- the user part has no separator; the password does not
# start with "/" (so "rtsp://user@host" is not read as user "rtsp") and runs up to the
# last "@" of the whitespace- or quote-delimited token (over-masking is the safe side).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?(?P<user>[^\s:/@'\"\\]*):(?!/)(?P<password>[^\s'\"]*)@")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def mask_credentials(text) -> str:
    """The text with every ``user:password@`` turned into ``user:***@``.

    Works on a bare source spec (with or without a scheme) and on whole messages that
    contain one or several.

    Parameters
    ----------
    text : str or object
        Converted with ``str()`` first.

    Returns
    -------
    str

    Examples
    --------
    >>> mask_credentials("rtsp://admin:secret@10.0.0.5:554/s")
    'rtsp://admin:***@10.0.0.5:554/s'
    >>> mask_credentials("cannot open user:pw@host/stream: refused")
    'cannot open user:***@host/stream: refused'
    """
    text = str(text)
    if "@" not in text:
        return text

    def repl(m: re.Match) -> str:
        if not m.group("password") and not m.group("user"):
            return m.group(0)
        return f"{m.group('scheme') or ''}{m.group('user')}:{_MASK}@"

    return _USERINFO.sub(repl, text)


def _split(spec: str):
    """(prefix up to the user, user, password or None, rest after '@') or None."""
    scheme = _SCHEME.match(spec)
    start = scheme.end() if scheme else 0
    end = len(spec)
    for sep in "/?#":
        k = spec.find(sep, start)
        if k != -1:
            end = min(end, k)
    authority = spec[start:end]
    at = authority.rfind("@")
    if at == -1:
        return None
    userinfo = authority[:at]
    user, colon, password = userinfo.partition(":")
    return spec[:start], user, (password if colon else None), spec[start + at + 1:]


def has_password(spec) -> bool:
    """True when the source spec carries a password (``user:password@``)."""
    if not isinstance(spec, str):
        return False
    parts = _split(spec)
    return parts is not None and parts[2] is not None


def strip_password(spec: str | None) -> str | None:
    """The source spec without its password (``rtsp://user:pw@h/s`` -> ``rtsp://user@h/s``).

    What is safe to keep in the settings file; specs without a password come back as
    they are.
    """
    if not isinstance(spec, str):
        return spec
    parts = _split(spec)
    if parts is None or parts[2] is None:
        return spec
    prefix, user, _password, rest = parts
    return f"{prefix}{user}@{rest}" if user else f"{prefix}{rest}"


def with_password(spec: str | None, environ=None) -> str | None:
    """The source spec with the password of :data:`PASSWORD_ENV` filled in, when the
    spec names a user but no password and the variable is set; otherwise unchanged."""
    if not isinstance(spec, str):
        return spec
    env = os.environ if environ is None else environ
    password = env.get(PASSWORD_ENV)
    parts = _split(spec)
    if not password or parts is None or parts[2] is not None or not parts[1]:
        return spec
    prefix, user, _none, rest = parts
    if prefix:  # a URL: characters that would end the user-info are percent-encoded
        password = quote(password, safe="!$&'()*+,;=:")
    return f"{prefix}{user}:{password}@{rest}"
