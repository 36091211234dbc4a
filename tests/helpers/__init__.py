"""Helpers shared by the test modules (``from tests.helpers.<module> import ...``; pytest fixtures are in the
``conftest.py`` files). Modules here are also importable by class path from a fit's config
(``tests.helpers.tiny_data.TinyData``), in-process and in the subprocesses the tests start from the repository."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository root
# The project's packages (pyproject.toml installs and type-checks the same five)
PACKAGES: tuple[str, ...] = ("models", "datamodules", "callbacks", "experiments", "benchmarks")
