"""pyproject.toml lists exactly the third-party packages that ``or_assist`` imports.

Every import in the package (module level or inside functions) is read from the source;
its top-level name is mapped to the distribution that provides it. A dependency that no
module imports, or an import of a package the project does not declare, fails the test
with its name.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib

from tests.conftest import REPO_ROOT

#: Import name -> distribution name, where they differ.
DISTRIBUTION_OF = {
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
}


def imported_distributions(root=REPO_ROOT) -> set[str]:
    """Distributions (lower case) of the third-party modules ``or_assist`` imports."""
    names = set()
    for path in (root / "or_assist").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    third_party = {n for n in names if n not in sys.stdlib_module_names and n != "or_assist" and n != "__future__"}
    return {DISTRIBUTION_OF.get(n, n).lower() for n in third_party}


def _names(deps) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].strip().lower() for d in deps}


def declared_distributions(root=REPO_ROOT) -> tuple[set[str], set[str]]:
    """(runtime dependencies, optional extras' packages) of pyproject.toml, names in lower case."""
    with open(root / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    extras = set().union(*map(_names, project.get("optional-dependencies", {}).values()))
    return _names(project["dependencies"]), extras


def test_pyproject_lists_exactly_what_the_package_imports():
    """Every import is declared (a runtime dependency, or an optional extra for a module that
    says so when it is missing), and every runtime dependency is imported."""
    imported = imported_distributions()
    runtime, extras = declared_distributions()
    assert not imported - runtime - extras, \
        f"imported but not declared in pyproject.toml: {sorted(imported - runtime - extras)}"
    assert not runtime - imported, f"declared in pyproject.toml but imported by no module: {sorted(runtime - imported)}"


def test_the_check_sees_a_planted_import(tmp_path):
    pkg = tmp_path / "or_assist"
    pkg.mkdir()
    (pkg / "m.py").write_text("import os\nfrom skimage.measure import ransac\ndef f():\n    import cv2.aruco\n")
    assert imported_distributions(tmp_path) == {"scikit-image", "opencv-python-headless"}
