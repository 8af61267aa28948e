"""The import rules of docs/architecture.md, checked on the source (every import, also
those inside functions and ``importlib.import_module("...")`` calls).

Rules: ``core`` imports nothing else of or_assist but ``errors``; ``video`` and
``calibration`` import only ``core`` (``video`` also ``dicom``, the DICOM shot reader and receiver);
``dicom`` imports only ``core``; nothing outside ``app`` imports Qt; ``sim`` is
imported only by ``cli`` (the demo), tests and benchmarks; benchmarks never import ``tests``.

The test fails on any violation, naming each module and what it imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

QT = ("PyQt5", "PyQt6", "PySide2", "PySide6", "pyqtgraph")


def imports_of(path: Path, module: str) -> set[str]:
    """Absolute names of every module ``path`` imports (module-level or inside functions)."""
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            out.add(node.args[0].value)
    return out


def _modules(root: Path, folder: str):
    for path in sorted((root / folder).rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield path, ".".join(parts)


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(root: Path) -> set[tuple[str, str]]:
    """(module, imported name) pairs that break the rules, for the tree under ``root``."""
    found = set()
    for path, mod in _modules(root, "or_assist"):
        for name in imports_of(path, mod):
            own = lambda pkg: _in(mod, pkg) and _in(name, pkg)  # noqa: E731
            if not _in(name, "or_assist"):
                if name.split(".")[0] in QT and not _in(mod, "or_assist.app"):
                    found.add((mod, name))
                continue
            top = (name.split(".") + [""])[1]
            if top in ("", "errors") or top.startswith("__") or own("or_assist.core"):
                continue
            if _in(mod, "or_assist.core") and not own("or_assist.core"):
                found.add((mod, name))
            for low in ("or_assist.video", "or_assist.calibration", "or_assist.dicom"):
                allowed = ("or_assist.core", "or_assist.dicom") if low == "or_assist.video" else ("or_assist.core",)
                if _in(mod, low) and not own(low) and not any(_in(name, a) for a in allowed):
                    found.add((mod, name))
            if _in(name, "or_assist.sim") and not (_in(mod, "or_assist.sim") or _in(mod, "or_assist.cli")):
                found.add((mod, name))
    if (root / "benchmarks").is_dir():
        for path, mod in _modules(root, "benchmarks"):
            found.update((mod, n) for n in imports_of(path, mod) if _in(n, "tests"))
    # a "from X import name" adds both X and X.name: keep the module-level pair only
    return {(m, n) for m, n in found if not any(n.startswith(o + ".") for mm, o in found if mm == m)}


def test_the_package_keeps_its_layering():
    found = sorted(violations(REPO_ROOT))
    assert not found, "imports that break docs/architecture.md's rules:\n" + "\n".join(
        f"  {m} imports {n}" for m, n in found)


def test_the_checker_catches_planted_violations(tmp_path):
    pkg = tmp_path / "or_assist"
    for sub, text in {
        "core/geometry.py": "from or_assist.render.drr import DRRRenderer\n",
        "video/capture.py": "def f():\n    import or_assist.register.pipeline\n",
        "calibration/solve.py": "from or_assist.core import jsonio\nimport numpy\n",
        "video/sources/dicom.py": "from or_assist.dicom.receive import StorageServer\n",
        "dicom/shot.py": "from or_assist.video.shot_files import read_shot_image\n",
        "calibration/io.py": "def f():\n    from or_assist.video.preprocess.fov import detect_field_of_view\n",
        "video/sources/spec.py": "import importlib\nimportlib.import_module('or_assist.sim.scenario.player')\n",
        "sim/scenario/player.py": "from or_assist.video.sources.spec import register_source_kind\n",
        "render/display.py": "from PyQt5 import QtCore\n",
        "live/run.py": "import importlib\nm = importlib.import_module('or_assist.sim.sample')\n",
        "cli/demo.py": "from or_assist.sim.sample import demo_pin\n",
        "app/window.py": "from PyQt5 import QtWidgets\nfrom or_assist.live import run\n",
        "app/run.py": "from or_assist.sim.scenario.demo_case import open_demo_case\n",
    }.items():
        (pkg / sub).parent.mkdir(parents=True, exist_ok=True)
        (pkg / sub).write_text(text)
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "b.py").write_text("from tests.cases import make_case\n")
    assert violations(tmp_path) == {
        ("or_assist.core.geometry", "or_assist.render.drr"),
        ("or_assist.video.capture", "or_assist.register.pipeline"),
        ("or_assist.calibration.io", "or_assist.video.preprocess.fov"),
        ("or_assist.dicom.shot", "or_assist.video.shot_files"),
        ("or_assist.video.sources.spec", "or_assist.sim.scenario.player"),
        ("or_assist.app.run", "or_assist.sim.scenario.demo_case"),
        ("or_assist.render.display", "PyQt5"),
        ("or_assist.live.run", "or_assist.sim.sample"),
        ("benchmarks.b", "tests.cases"),
    }
