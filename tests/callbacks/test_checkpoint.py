"""BestAndLastCheckpoint: ``last.ckpt`` holds the latest validated state even when no top-k checkpoint is written."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from experiments.cli import run_cli
from models.caffenet_classifier import CaffeNetClassifier
from tests.helpers.run_dirs import run_dir
from tests.helpers.tiny_data import tiny_model_args

TINY = [
    "fit",
    *tiny_model_args(),
    "--data",
    "tests.helpers.tiny_data.TinyData",
    "--data.num_samples",
    "32",
    "--trainer.max_steps",
    "4",
    "--trainer.val_check_interval",
    "2",
    "--trainer.accelerator",
    "cpu",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.num_sanity_val_steps",
    "0",
    "--trainer.logger",
    "false",
    "--model.lr",
    "1e-30",
]


@pytest.mark.parametrize(
    "settings, killed_at, step, validations",
    [
        ([], None, 4, 2),  # val/top1 improves at the first validation only (lr too small to change a weight)
        (["--checkpoint.save_top_k", "0", "--checkpoint.monitor", "null"], 3, 2, 1),
    ],  # a fused group's settings
    ids=["best-and-last", "last-only-killed"],
)
def test_last_holds_the_latest_validated_step(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: list[str],
    killed_at: int | None,
    step: int,
    validations: int,
) -> None:
    """``last.ckpt`` is written after every validation: a complete run ends at step 4, and a run killed at step 3
    can resume from step 2, although Lightning wrote no top-k checkpoint then."""
    monkeypatch.setattr(sys, "argv", ["transferability"])
    training_step = CaffeNetClassifier.training_step

    def step_or_die(self: CaffeNetClassifier, batch: Any, batch_idx: int) -> Any:
        if self.global_step == killed_at:
            raise KeyError("killed")
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(CaffeNetClassifier, "training_step", step_or_die)
    try:
        run_cli([*TINY, "--trainer.default_root_dir", str(tmp_path), *settings])
    except KeyError:
        assert killed_at is not None
    last = torch.load(run_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == step
    assert len(last["val_top1_history"]) == validations
