"""Package-level contracts: Qt only in or_assist.app, fast CLI help, module sizes."""

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


MAX_MODULE_LINES = 400
LONG_REASON = "Longer than 400 lines because"


def long_modules_without_reason(package_dir) -> list[str]:
    """Modules of ``package_dir`` over MAX_MODULE_LINES whose docstring gives no reason."""
    import ast

    out = []
    for path in sorted(package_dir.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") + (not text.endswith("\n")) > MAX_MODULE_LINES:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if LONG_REASON not in doc:
                out.append(path.relative_to(package_dir).as_posix())
    return out


def test_no_module_over_400_lines_without_a_reason():
    assert long_modules_without_reason(REPO_ROOT / "or_assist") == []


def test_the_size_rule_catches_a_long_module(tmp_path):
    body = "\n".join(f"x{k} = {k}" for k in range(MAX_MODULE_LINES + 1)) + "\n"
    (tmp_path / "long.py").write_text('"""A long module."""\n' + body)
    (tmp_path / "why.py").write_text(f'"""A long module.\n\n{LONG_REASON} it must be."""\n' + body)
    (tmp_path / "short.py").write_text('"""Short."""\nx = 1\n')
    assert long_modules_without_reason(tmp_path) == ["long.py"]
