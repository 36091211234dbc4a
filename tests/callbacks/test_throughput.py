"""ImageThroughput: training images a second, logged on the logger's steps only."""

from __future__ import annotations

import csv
import itertools
import sys
from pathlib import Path

import pytest

import callbacks.throughput
from experiments.cli import run_cli
from tests.helpers.tiny_data import tiny_model_args

TINY = [
    "fit",
    *tiny_model_args(),
    "--data",
    "tests.helpers.tiny_data.TinyData",
    "--data.num_samples",
    "32",
    "--data.batch_size",
    "8",
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
]


def test_images_per_second_on_logging_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a clock that advances one second a reading, each logged rate is its window's images: 2 steps x 8.

    Windows restart after a validation, so its time is not counted; only every second step is logged.
    """
    ticks = itertools.count()
    monkeypatch.setattr(callbacks.throughput, "perf_counter", lambda: float(next(ticks)))
    monkeypatch.setattr(sys, "argv", ["transferability"])
    run_cli(
        [
            *TINY,
            "--trainer.log_every_n_steps",
            "2",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.logger",
            "lightning.pytorch.loggers.CSVLogger",
            "--trainer.logger.save_dir",
            str(tmp_path),
        ]
    )
    (metrics,) = tmp_path.glob("**/metrics.csv")
    with metrics.open(newline="") as file:
        rates = [
            float(row[callbacks.throughput.METRIC])
            for row in csv.DictReader(file)
            if row.get(callbacks.throughput.METRIC)
        ]
    assert rates == [16.0, 16.0]
