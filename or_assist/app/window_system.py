"""What a window needs from the system before Qt is asked to open one.

Qt's ``xcb`` platform plugin (the X11 window system on Linux) loads a dozen system
libraries that a minimal Linux installation lacks. Without them Qt prints "could not load
the Qt platform plugin xcb" and aborts the process. :func:`missing_window_libraries` asks
the dynamic loader (``ldd``) which of the plugin's libraries are missing, and
:func:`check_window_system` turns that into one clear error that names the Debian
packages to install, before any case is opened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from or_assist.errors import InputError

__all__ = ["XCB_DEBIAN_PACKAGES", "parse_ldd_missing", "missing_window_libraries", "check_window_system"]

#: System libraries of Qt's xcb platform plugin and the Debian packages that hold them.
XCB_DEBIAN_PACKAGES: dict[str, str] = {
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libXext.so.6": "libxext6",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
}


def parse_ldd_missing(ldd_output: str) -> list[str]:
    """The libraries ``ldd`` reports as ``not found``, in the order it lists them.

    Parameters
    ----------
    ldd_output : str
        What ``ldd FILE`` printed.

    Returns
    -------
    list of str
        Library names (``libxcb-icccm.so.4``), without duplicates.
    """
    missing: list[str] = []
    for line in ldd_output.splitlines():
        name, sep, where = line.strip().partition("=>")
        if sep and where.strip() == "not found" and name.strip() not in missing:
            missing.append(name.strip())
    return missing


def _xcb_plugin_files() -> list[Path]:
    import PyQt5

    qt = Path(PyQt5.__file__).resolve().parent / "Qt5"
    files = [qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib" / "libQt5XcbQpa.so.5"]
    return [f for f in files if f.is_file()]


def missing_window_libraries(files=None, *, timeout_s: float = 20.0) -> list[str]:
    """System libraries that Qt's xcb plugin needs and the loader cannot find.

    Parameters
    ----------
    files : sequence of path-like, optional
        Shared objects to check (default: PyQt5's ``libqxcb.so`` and ``libQt5XcbQpa.so.5``).
    timeout_s : float
        Limit for each ``ldd`` call.

    Returns
    -------
    list of str
        Missing library names; empty when nothing is missing, off Linux, or when ``ldd``
        is not available (then Qt's own message is all there is).
    """
    if not sys.platform.startswith("linux"):
        return []
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    missing: list[str] = []
    for f in (_xcb_plugin_files() if files is None else files):
        try:
            out = subprocess.run([ldd, os.fspath(f)], capture_output=True, text=True, timeout=timeout_s,
                                 check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        missing += [name for name in parse_ldd_missing(out) if name not in missing]
    return missing


def check_window_system(hint: str = "use --headless to run without a window") -> None:
    """Raise a clear error when Qt's xcb platform would abort for missing system libraries.

    Checked only where Qt would use xcb: on Linux with ``DISPLAY`` set and
    ``QT_QPA_PLATFORM`` unset or ``xcb``.

    Raises
    ------
    InputError
        Naming the missing libraries and the Debian packages that hold them.
    """
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY"):
        return
    if platform and not platform.startswith("xcb"):
        return
    missing = missing_window_libraries()
    if not missing:
        return
    packages = sorted({XCB_DEBIAN_PACKAGES.get(name, "?") for name in missing} - {"?"})
    unknown = [name for name in missing if name not in XCB_DEBIAN_PACKAGES]
    install = f"; on Debian/Ubuntu: sudo apt-get install {' '.join(packages)}" if packages else ""
    extra = f" (and find the package for {', '.join(unknown)})" if unknown and packages else ""
    raise InputError(f"cannot open a window: Qt's xcb platform needs system libraries that are missing "
                     f"({', '.join(missing)}){install}{extra}; or {hint}", "display")
