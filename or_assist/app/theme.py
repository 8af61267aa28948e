"""Dark, high-contrast theme of the OR display, for reading from 1-2 m.

Colours follow the guidance overlay (:mod:`or_assist.guidance.cues`): green / amber / red
cue levels, red for NOT REGISTERED. Sizes are font pixel sizes on the screen, chosen for
reading from 2 m on a 1080p screen: the deviation panel's numbers :data:`NUMBER_PX` (72),
every other cue, state and status text at least :data:`MIN_TEXT_PX` (32), the headline
:data:`TITLE_PX`.
"""

from __future__ import annotations

from PyQt5 import QtGui, QtWidgets

from or_assist.app.window_system import check_window_system

__all__ = ["BACKGROUND", "PANEL", "TEXT", "DIM", "RED", "AMBER", "GREEN", "BLUE", "NUMBER_PX", "TITLE_PX",
           "TEXT_PX", "STATUS_PX", "MIN_TEXT_PX", "level_colour", "apply_dark_theme", "font_px"]

BACKGROUND = "#101214"
PANEL = "#1c1f23"
TEXT = "#f2f2f2"
DIM = "#7d848c"
RED = "#f03c3c"
AMBER = "#ffb400"
GREEN = "#50d250"
BLUE = "#3ca0ff"

NUMBER_PX = 72   # deviation numbers (key numbers at 2 m)
MIN_TEXT_PX = 32  # no cue, state or status text is smaller (legible from 2 m on a 1080p screen)
TITLE_PX = 44    # the headline (ON PLAN, NOT REGISTERED, SAFETY WARNING, ...)
TEXT_PX = 32     # correction, reasons, warnings, positioning hint, selectors
STATUS_PX = 32   # status bar (it says when the panel is stale)

_LEVELS = {"green": GREEN, "amber": AMBER, "red": RED}


def level_colour(level: str | None) -> str:
    """Hex colour of a cue level ('green', 'amber', 'red'); dim grey for anything else."""
    return _LEVELS.get(level or "", DIM)


def font_px(size_px: int, bold: bool = True) -> QtGui.QFont:
    """A sans-serif font ``size_px`` pixels high."""
    font = QtGui.QFont("DejaVu Sans")
    font.setPixelSize(int(size_px))
    font.setBold(bold)
    return font


def apply_dark_theme(app: QtWidgets.QApplication) -> None:
    """Fusion style with a dark palette and a stylesheet for the panels."""
    app.setStyle("Fusion")
    pal = QtGui.QPalette()
    dark, panel, text = QtGui.QColor(BACKGROUND), QtGui.QColor(PANEL), QtGui.QColor(TEXT)
    for role, colour in ((QtGui.QPalette.Window, dark), (QtGui.QPalette.Base, panel),
                         (QtGui.QPalette.AlternateBase, dark), (QtGui.QPalette.Button, panel),
                         (QtGui.QPalette.WindowText, text), (QtGui.QPalette.Text, text),
                         (QtGui.QPalette.ButtonText, text), (QtGui.QPalette.ToolTipBase, panel),
                         (QtGui.QPalette.ToolTipText, text), (QtGui.QPalette.Highlight, QtGui.QColor(BLUE)),
                         (QtGui.QPalette.HighlightedText, dark)):
        pal.setColor(role, colour)
    app.setPalette(pal)
    app.setStyleSheet(
        f"QMainWindow, QWidget {{ background: {BACKGROUND}; color: {TEXT}; }}"
        f"QFrame#panel {{ background: {PANEL}; border-radius: 8px; }}"
        f"QStatusBar {{ background: {PANEL}; }}"
        f"QComboBox {{ background: {PANEL}; border: 1px solid {DIM}; padding: 4px 10px; }}")


def application(hint: str = "use --headless to run without a window") -> QtWidgets.QApplication:
    """The process's QApplication, created on first use.

    On Linux without a display (no ``DISPLAY``/``WAYLAND_DISPLAY`` and no
    ``QT_QPA_PLATFORM`` chosen), or without the system libraries of Qt's xcb platform
    (:func:`~or_assist.app.window_system.check_window_system`), Qt would abort the
    process; this raises a clear :class:`~or_assist.errors.InputError` instead.
    """
    import os
    import sys

    from or_assist.errors import InputError

    app = QtWidgets.QApplication.instance()
    if app is not None:
        return app
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                 or os.environ.get("QT_QPA_PLATFORM")):
        raise InputError(f"no display to open a window on (DISPLAY is not set); {hint}", "display")
    check_window_system(hint)
    return QtWidgets.QApplication(sys.argv[:1])
