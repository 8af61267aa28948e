"""Per-user settings of the OR display (no Qt): last source, geometry, plan, screen.

A JSON file, ``settings.json``, in ``$OR_ASSIST_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/or_assist``, else ``~/.config/or_assist``. A missing file gives the
defaults; an unreadable or malformed one too, with a warning (the display must start in
theatre even when the file was damaged), and it is rewritten on the next save.

The file is private: written ``0o600`` (the mode set before any data is written) in a
folder made ``0o700``, atomically. A source's password is never stored: ``last_source``
keeps ``rtsp://user@host/stream`` (:func:`~or_assist.video.credentials.strip_password`)
and ``or-assist run`` takes the password from ``$OR_ASSIST_SOURCE_PASSWORD`` or from a
``--source`` given in full.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from or_assist.core.jsonio import read_json
from or_assist.core.validate import check_number, check_positive
from or_assist.register.settings import DEFAULT_TIME_BUDGET_S, MAX_TIME_BUDGET_S
from or_assist.errors import InputError
from or_assist.video.credentials import PASSWORD_ENV, has_password, strip_password

__all__ = ["SETTINGS_SCHEMA", "AppSettings", "settings_path", "load_settings", "save_settings",
           "SETTINGS_FILE_MODE", "SETTINGS_FOLDER_MODE"]

SETTINGS_SCHEMA = "or_assist.app_settings/1"
SETTINGS_FILE_MODE = 0o600
SETTINGS_FOLDER_MODE = 0o700


@dataclass
class AppSettings:
    """What the display remembers between cases.

    Attributes
    ----------
    last_source : str or None
        The video source spec of the last case (device, URL, file or ``sim:...``).
    geometry : str or None
        Path of the last ``or_assist.geometry/1`` file.
    dewarp : str or None
        Path of the ``or_assist.dewarp/1`` used with that geometry (an image intensifier's),
        or None.
    plan, library : str or None
        Paths of the last plan and view library.
    screen : int
        Index of the screen the display goes full screen on.
    overlay_opacity : float
        0-1.
    source_timeout_s : float
        ``or-assist run``: how long a file or folder may take to deliver its first frame,
        and how long a headless run waits for a stream or device that sends nothing,
        before giving up (seconds, > 0).
    no_signal_report_s : float
        While a source sends nothing: "no signal ... retrying" every this many seconds.
    time_budget_s : float
        ``or-assist run``: the registration's time budget per shot (seconds; 0: no limit);
        raise it on a computer slower than the 2-core machine the default was set on.
    """

    last_source: str | None = None
    geometry: str | None = None
    dewarp: str | None = None
    plan: str | None = None
    library: str | None = None
    screen: int = 0
    overlay_opacity: float = 0.85
    source_timeout_s: float = 30.0
    no_signal_report_s: float = 5.0
    time_budget_s: float = DEFAULT_TIME_BUDGET_S

    def __post_init__(self):
        for name in ("last_source", "geometry", "dewarp", "plan", "library"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise InputError(f"must be a string or null, got {v!r}", name)
        if isinstance(self.screen, bool) or not isinstance(self.screen, int) or self.screen < 0:
            raise InputError(f"must be a screen index >= 0, got {self.screen!r}", "screen")
        self.overlay_opacity = check_number(self.overlay_opacity, "overlay_opacity", 0.0, 1.0,
                                            expected="a number from 0 to 1")
        for name in ("source_timeout_s", "no_signal_report_s"):
            setattr(self, name, check_positive(getattr(self, name), name, expected="a number of seconds > 0"))
        self.time_budget_s = check_number(self.time_budget_s, "time_budget_s", 0.0, MAX_TIME_BUDGET_S,
                                          expected=f"seconds 0-{MAX_TIME_BUDGET_S:.0f} (0: no limit)")


def settings_path() -> Path:
    """Where the settings file lives (module doc)."""
    env = os.environ.get("OR_ASSIST_CONFIG_DIR")
    if env:
        return Path(env).expanduser() / "settings.json"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "or_assist" / "settings.json"


def load_settings(path: str | os.PathLike | None = None) -> tuple[AppSettings, str | None]:
    """Read the settings.

    Returns
    -------
    (AppSettings, str or None)
        The settings and a warning when the file could not be used (then the defaults).
    """
    p = Path(path) if path is not None else settings_path()
    if not p.is_file():
        return AppSettings(), None
    try:
        doc = read_json(p)
    except InputError as exc:
        reason = str(exc)[len(exc.source) + 2:] if exc.source else str(exc)
        return AppSettings(), f"{p}: not readable JSON ({reason}); using the defaults"
    if not isinstance(doc, dict) or doc.get("schema") != SETTINGS_SCHEMA:
        return AppSettings(), f"{p}: expected schema {SETTINGS_SCHEMA!r}; using the defaults"
    known = {f.name for f in fields(AppSettings)}
    try:
        settings = AppSettings(**{k: v for k, v in doc.items() if k in known})
    except InputError as exc:
        return AppSettings(), f"{p}: {exc}; using the defaults"
    if has_password(settings.last_source):
        return settings, (f"{p}: last_source holds a password in clear (written by an older version); it is "
                          f"removed at the next save: set ${PASSWORD_ENV} or give --source in full")
    return settings, None


def _private_folder(folder: Path) -> None:
    """Make the settings folder (``0o700``), or restrict it when it already exists."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=SETTINGS_FOLDER_MODE)
    except FileExistsError:
        if not folder.is_dir():
            raise InputError("exists and is not a folder", str(folder)) from None
    if (folder.stat().st_mode & 0o777) != SETTINGS_FOLDER_MODE:
        try:
            os.chmod(folder, SETTINGS_FOLDER_MODE)
        except PermissionError:  # someone else's folder: the file itself is still 0o600
            pass


def save_settings(settings: AppSettings, path: str | os.PathLike | None = None) -> Path:
    """Write the settings; returns the path.

    Private and atomic: the folder is made (or restricted to) ``0o700``; a temporary file
    in it is created ``0o600`` before any byte is written, flushed, ``fsync``-ed and
    renamed over the file. The source's password is left out (module doc).
    """
    if not isinstance(settings, AppSettings):
        raise InputError(f"expected AppSettings, got {type(settings).__name__}", "settings")
    p = Path(path) if path is not None else settings_path()
    doc = {"schema": SETTINGS_SCHEMA, **asdict(settings)}
    doc["last_source"] = strip_password(doc["last_source"])
    data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    _private_folder(p.parent)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SETTINGS_FILE_MODE)
    try:
        os.fchmod(fd, SETTINGS_FILE_MODE)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p
