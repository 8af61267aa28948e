"""Package-level contracts: Qt only in or_assist.app, fast CLI help."""

import subprocess
import sys

from tests.conftest import REPO_ROOT

BLOCK_QT = r"""
import importlib, importlib.abc, pkgutil, sys
class BlockQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'pyqtgraph'}:
            raise ImportError('Qt is blocked: ' + name)
sys.meta_path.insert(0, BlockQt())
import or_assist
names = []
for m in pkgutil.walk_packages(or_assist.__path__, 'or_assist.'):
    if m.name.startswith('or_assist.app'):
        continue
    importlib.import_module(m.name)
    names.append(m.name)
print(len(names), 'modules imported without Qt:', ' '.join(names))
"""


def test_every_non_gui_module_imports_without_qt():
    out = subprocess.run([sys.executable, "-c", BLOCK_QT], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    count = int(out.stdout.split()[0])
    assert count >= 8, out.stdout


def test_cli_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "or_assist.cli", "--help"], capture_output=True,
                         text=True, cwd=REPO_ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    for cmd in ("demo", "info", "plan-check", "geometry", "view-pose", "sample"):
        assert cmd in out.stdout
    # nothing heavy was imported to answer --help
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from or_assist.cli import build_parser; build_parser();"
         "print(sorted(m for m in ('numpy','SimpleITK','cv2','numba','PyQt5') if m in sys.modules))"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert probe.stdout.strip() == "[]", probe.stdout
