"""A tiny study for the study tests: its fit config (``tests.helpers.study_data.StudyData``), written next to a
study config over it, and the study runner run on it in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from experiments.study.runner import main

TINY_FIT = {
    "seed_everything": 0,
    "trainer": {
        "max_steps": 4,
        "val_check_interval": 2,
        "check_val_every_n_epoch": None,
        "log_every_n_steps": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    },
    "model": {
        "num_outputs": 6,
        "in_channels": 1,
        "input_size": 28,
        "widths": [4, 8, 8, 8, 8, 16, 16],
        "conv1_kernel": 5,
        "conv1_stride": 1,
        "init": "kaiming",
    },
    "data": {"class_path": "tests.helpers.study_data.StudyData"},
}


def write_study(folder: Path, output: Path, grid: dict[str, Any], **settings: Any) -> Path:
    """A study config over the tiny fit config, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    fit = folder / "fit.yaml"
    fit.write_text(yaml.safe_dump(TINY_FIT))
    study = {
        "name": "tiny",
        "fit_configs": [str(fit)],
        "output_dir": str(output),
        "checkpoint_every_n_steps": 2,
        "grid": grid,
        **settings,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def run_study(config: Path, *extra: str) -> None:
    main(["--config", str(config), *extra])
