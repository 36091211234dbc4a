"""A reproducible environment: every imported package declared, every declared package pinned in constraints.txt."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from tests.helpers import PACKAGES, REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def requirement_name(requirement: str) -> str:
    """The normalised distribution name of a requirement (``jsonargparse[signatures]>=4.32`` -> ``jsonargparse``)."""
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared() -> dict[str, set[str]]:
    """Requirements of the project by extra (``""`` for the main dependencies)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = {name: {requirement_name(r) for r in reqs} for name, reqs in project["optional-dependencies"].items()}
    return {"": {requirement_name(r) for r in project["dependencies"]}, **extras}


def imported_modules() -> dict[str, list[str]]:
    """Top-level modules imported by the project's packages, with the files importing them."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module]
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level
                    else []
                )
                for name in names:
                    found.setdefault(name.split(".")[0], []).append(str(path.relative_to(REPO)))
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
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    unpinned = sorted(name for name in set().union(*declared().values()) if not pins.get(name))
    assert not unpinned, f"declared but not pinned in constraints.txt: {unpinned}"


def test_constraints_pin_only_what_the_project_needs() -> None:
    """constraints.txt is what `make lock` writes: the closure of the declared requirements, no torch-build wheels."""
    from experiments import lock

    pins = {
        line.partition("==")[0]
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert not {name for name in pins if lock.TORCH_BUILD.match(name)}, "a torch-build package is pinned"
    needed = lock.closure(lock.project_requirements())
    assert pins <= set(needed), f"pinned but not required by the project: {sorted(pins - set(needed))}"
    assert set(lock.portable(needed)) <= pins, f"required but not pinned: {sorted(set(lock.portable(needed)) - pins)}"


def test_lock_refuses_an_uninstalled_requirement(tmp_path: Path) -> None:
    """A requirement the venv lacks stops `lock` with a message naming it and `make setup`."""
    from experiments import lock

    with pytest.raises(SystemExit, match="no-such-distribution-xyz.*make setup"):
        lock.closure(["no-such-distribution-xyz>=1"])
