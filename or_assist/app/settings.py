"""Per-user settings of the OR display (no Qt): last source, geometry, plan, screen.

A JSON file, ``settings.json``, in ``$OR_ASSIST_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/or_assist``, else ``~/.config/or_assist``. A missing file gives the
defaults; an unreadable or malformed one too, with a warning (the display must start in
theatre even when the file was damaged), and it is rewritten on the next save.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from or_assist.errors import InputError

__all__ = ["SETTINGS_SCHEMA", "AppSettings", "settings_path", "load_settings", "save_settings"]

SETTINGS_SCHEMA = "or_assist.app_settings/1"


@dataclass
class AppSettings:
    """What the display remembers between cases.

    Attributes
    ----------
    last_source : str or None
        The video source spec of the last case (device, URL, file or ``sim:...``).
    geometry : str or None
        Path of the last ``or_assist.geometry/1`` file.
    plan, library : str or None
        Paths of the last plan and view library.
    screen : int
        Index of the screen the display goes full screen on.
    overlay_opacity : float
        0-1.
    """

    last_source: str | None = None
    geometry: str | None = None
    plan: str | None = None
    library: str | None = None
    screen: int = 0
    overlay_opacity: float = 0.85

    def __post_init__(self):
        for name in ("last_source", "geometry", "plan", "library"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise InputError(f"must be a string or null, got {v!r}", name)
        if isinstance(self.screen, bool) or not isinstance(self.screen, int) or self.screen < 0:
            raise InputError(f"must be a screen index >= 0, got {self.screen!r}", "screen")
        o = self.overlay_opacity
        if isinstance(o, bool) or not isinstance(o, (int, float)) or not math.isfinite(o) or not 0 <= o <= 1:
            raise InputError(f"must be a number from 0 to 1, got {o!r}", "overlay_opacity")
        self.overlay_opacity = float(o)


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
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return AppSettings(), f"{p}: not readable JSON ({exc}); using the defaults"
    if not isinstance(doc, dict) or doc.get("schema") != SETTINGS_SCHEMA:
        return AppSettings(), f"{p}: expected schema {SETTINGS_SCHEMA!r}; using the defaults"
    known = {f.name for f in fields(AppSettings)}
    try:
        return AppSettings(**{k: v for k, v in doc.items() if k in known}), None
    except InputError as exc:
        return AppSettings(), f"{p}: {exc}; using the defaults"


def save_settings(settings: AppSettings, path: str | os.PathLike | None = None) -> Path:
    """Write the settings (atomically: a temporary file, then rename); returns the path."""
    if not isinstance(settings, AppSettings):
        raise InputError(f"expected AppSettings, got {type(settings).__name__}", "settings")
    p = Path(path) if path is not None else settings_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps({"schema": SETTINGS_SCHEMA, **asdict(settings)}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, p)
    return p
