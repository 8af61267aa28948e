"""The window-system check: Qt's xcb platform libraries, named with their Debian packages."""

from __future__ import annotations

import shutil
import sys

import pytest

from or_assist.app import window_system as ws
from or_assist.errors import InputError

LDD_WITH_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt5XcbQpa.so.5 => /opt/PyQt5/Qt5/lib/libQt5XcbQpa.so.5 (0x00007f73)
\tlibxcb-icccm.so.4 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibfontconfig.so.1 => /lib/x86_64-linux-gnu/libfontconfig.so.1 (0x00007f73)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f73)
"""


def test_ldd_output_gives_the_missing_libraries_once_in_order():
    assert ws.parse_ldd_missing(LDD_WITH_MISSING) == ["libxcb-icccm.so.4", "libxkbcommon-x11.so.0"]
    assert ws.parse_ldd_missing("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") == []


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("ldd") is None, reason="needs ldd (Linux)")
def test_the_real_plugin_needs_nothing_missing_here_and_a_missing_library_is_found(tmp_path):
    # This machine has the window libraries (the xvfb test opens a real window), so the
    # real plugin check finds none missing; a real shared object that names a library no
    # system has is reported by the same check.
    assert ws._xcb_plugin_files(), "PyQt5's xcb plugin not found"
    assert ws.missing_window_libraries() == []
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a shared object with a missing dependency")
    import subprocess

    (tmp_path / "dep.c").write_text("int dep(void) { return 1; }\n")
    (tmp_path / "top.c").write_text("int dep(void); int top(void) { return dep(); }\n")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(tmp_path / "libora_missing_dep.so.7"),
                    "-Wl,-soname,libora_missing_dep.so.7", str(tmp_path / "dep.c")], check=True)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(tmp_path / "top.so"), str(tmp_path / "top.c"),
                    str(tmp_path / "libora_missing_dep.so.7")], check=True)
    (tmp_path / "libora_missing_dep.so.7").unlink()
    assert ws.missing_window_libraries([tmp_path / "top.so"]) == ["libora_missing_dep.so.7"]


def test_check_names_the_debian_packages(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(ws, "missing_window_libraries", lambda: ["libxcb-icccm.so.4", "libxkbcommon-x11.so.0"])
    with pytest.raises(InputError) as err:
        ws.check_window_system()
    text = str(err.value)
    assert text.startswith("display: cannot open a window")
    assert "sudo apt-get install libxcb-icccm4 libxkbcommon-x11-0" in text and "--headless" in text
    assert "\n" not in text
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")   # offscreen does not need them
    ws.check_window_system()
