"""Where a CLI ``fit`` leaves its run (``experiments.runs``): ``version_N`` under ``trainer.default_root_dir``, with
the run's ``config.yaml``, ``checkpoints/`` and ``wandb/``. Spelled out here, not taken from the code under test."""

from __future__ import annotations

from pathlib import Path


def run_dir(root: str | Path, version: int = 0) -> Path:
    """The folder of run ``version`` of the fits into ``root`` (the first fit's by default)."""
    return Path(root) / f"version_{version}"


def run_checkpoints(root: str | Path, version: int = 0) -> Path:
    """The checkpoint folder of run ``version`` under ``root``."""
    return run_dir(root, version) / "checkpoints"
