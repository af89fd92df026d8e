"""The package's floors: every import between its packages runs down, none runs back up.

Each stage package may import the floors below it and nothing beside or above it, so that a
stage can be read (and tested) with only what is under it, and no import cycle can form
between stages. The floors are the ones docs/extending.md draws.
"""

from __future__ import annotations

import ast
from pathlib import Path

import biomedquant

PACKAGE = Path(biomedquant.__file__).parent

# Lowest first; the packages on one floor do not import each other.
FLOORS = (
    ("common",),
    ("datasets", "models"),
    ("tasks", "methods"),
    ("inference",),
    ("quantization", "evaluation", "planning"),
    ("analysis",),
    ("exports", "report"),
    ("study",),
    ("cli",),
)
FLOOR = {package: level for level, floor in enumerate(FLOORS) for package in floor}


def package_of(module: str) -> str:
    """The top-level package of ``biomedquant.<package>...``."""
    return module.split(".")[1]


def imports_between_packages() -> list[tuple[str, str, str]]:
    """(importing module, imported module, its line) for every import of another package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        if module.count(".") == 0 or module == "biomedquant.__main__":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
                if node.module == "biomedquant":  # from biomedquant import <package>
                    targets = [
                        f"biomedquant.{alias.name}"
                        for alias in node.names
                        if (PACKAGE / alias.name).is_dir()
                    ]
            else:
                continue
            for target in targets:
                if target.startswith("biomedquant.") and package_of(target) != package_of(module):
                    found.append((module, target, f"{rel}.py:{node.lineno}"))
    return found


def upward(imports: list[tuple[str, str, str]]) -> list[str]:
    """The imports of a package on the same floor or above the importing module's."""
    return [
        f"{where}: {module} imports {target}"
        for module, target, where in imports
        if FLOOR[package_of(target)] >= FLOOR[package_of(module)]
    ]


def test_every_package_has_a_floor_and_no_flat_module_is_left():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(FLOOR)
    flat = {p.name for p in PACKAGE.glob("*.py")}
    assert flat == {"__init__.py"}


def test_imports_run_down_the_floors_only():
    imports = imports_between_packages()
    assert len(imports) > 100  # the walk sees the package's imports
    assert upward(imports) == []


def test_an_import_back_up_is_caught(tmp_path, monkeypatch):
    """The check itself: a module of a low floor importing a high one is reported."""
    fake = tmp_path / "biomedquant"
    (fake / "common").mkdir(parents=True)
    (fake / "report").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "common" / "__init__.py").write_text("")
    (fake / "report" / "__init__.py").write_text("")
    (fake / "common" / "bad.py").write_text("from biomedquant.report import pages\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    found = imports_between_packages()
    assert found == [
        ("biomedquant.common.bad", "biomedquant.report", "biomedquant/common/bad.py:1")
    ]
    assert FLOOR["common"] < FLOOR["report"]
