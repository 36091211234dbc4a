"""A reproducible environment: every imported package declared, every declared package pinned in constraints.txt."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "datamodules", "callbacks", "experiments", "benchmarks")


def requirement_name(requirement: str) -> str:
    """The normalised distribution name of a requirement (``jsonargparse[signatures]>=4.32`` -> ``jsonargparse``)."""
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared() -> dict[str, set[str]]:
    """Requirements of the project by extra (``""`` for the main dependencies)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {name: {requirement_name(r) for r in reqs} for name, reqs in project["optional-dependencies"].items()}
    return {"": {requirement_name(r) for r in project["dependencies"]}, **extras}


def imported_modules() -> dict[str, list[str]]:
    """Top-level modules imported by the project's packages, with the files importing them."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                         else [])
                for name in names:
                    found.setdefault(name.split(".")[0], []).append(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared() -> None:
    """A third-party import resolves to a distribution that pyproject.toml declares (main or an extra)."""
    distributions = importlib.metadata.packages_distributions()
    requirements = set().union(*declared().values())
    missing = {}
    for module, files in imported_modules().items():
        if module in sys.stdlib_module_names or module in PACKAGES or module == "__future__":
            continue
        names = {name.lower().replace("_", "-") for name in distributions.get(module, [module])}
        if not names & requirements:
            missing[module] = sorted(set(files))[:3]
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_every_declared_package_is_pinned() -> None:
    """constraints.txt pins each declared distribution to one version (what `make setup` installs)."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    unpinned = sorted(name for name in set().union(*declared().values()) if not pins.get(name))
    assert not unpinned, f"declared but not pinned in constraints.txt: {unpinned}"
