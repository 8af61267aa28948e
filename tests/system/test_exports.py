"""Each package's ``__init__`` is the map of its modules (scikit-image manner, lazy).

Every module and subpackage is listed, every public name a module defines (its ``__all__``)
is exported by its package, and every exported name resolves to the object of that module.
"""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import or_assist

PACKAGES = sorted(m.name for m in pkgutil.walk_packages(or_assist.__path__, "or_assist.")
                  if m.ispkg and m.name != "or_assist.cli")


def _defined_public_names(path: Path) -> list[str]:
    """Names in a module's ``__all__`` that the module itself defines (not re-exports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Assign):
            own.update(n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            own.add(node.target.id)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            return [n for n in ast.literal_eval(node.value) if n in own and not n.startswith("_")]
    return []


def test_packages_found():
    assert {"or_assist.core", "or_assist.video", "or_assist.sim", "or_assist.live"} <= set(PACKAGES)


@pytest.mark.parametrize("name", PACKAGES)
def test_package_lists_its_modules_and_exports_their_public_names(name):
    pkg = importlib.import_module(name)
    folder = Path(pkg.__file__).parent
    exported = set(pkg.__all__)
    assert len(exported) == len(pkg.__all__), f"{name}.__all__ has duplicates"
    modules = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    modules |= {d.name for d in folder.iterdir() if (d / "__init__.py").is_file()}
    missing_modules = modules - exported
    assert not missing_modules, f"{name}/__init__.py does not list {sorted(missing_modules)}"
    for path in folder.glob("*.py"):
        if path.stem.startswith("_"):
            continue
        missing = [n for n in _defined_public_names(path) if n not in exported and n not in modules]
        assert not missing, f"{name}.{path.stem} defines {missing}, which {name}/__init__.py does not export"


@pytest.mark.parametrize("name", [p for p in PACKAGES if not p.startswith("or_assist.app")])
def test_exported_names_resolve_to_their_defining_module(name):
    pkg = importlib.import_module(name)
    for attr in pkg.__all__:
        obj = getattr(pkg, attr)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__.startswith(name + "."), f"{name}.{attr} comes from {obj.__module__}"
        elif inspect.ismodule(obj):
            assert obj.__name__ == f"{name}.{attr}"
    with pytest.raises(AttributeError):
        getattr(pkg, "no_such_name")
