"""The installed console scripts exit 0 on success and non-zero on failure (run as a shell runs them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.helpers.run_dirs import run_dir

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent  # the venv's bin/, where `pip install -e .` put the scripts
CONFIG = REPO / "experiments" / "configs" / "fmnist" / "base.yaml"
TINY_FIT = [
    "fit",
    "--config",
    str(CONFIG),
    "--trainer.max_steps",
    "2",
    "--trainer.val_check_interval",
    "2",
    "--trainer.limit_val_batches",
    "1",
    "--data.init_args.images_per_class",
    "20",
    "--data.init_args.batch_size",
    "8",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.default_root_dir",
    "run",
]


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run an installed console script in ``cwd`` with W&B offline; its status and output."""
    path = BIN / script
    assert path.is_file(), f"{path} is not installed: run `make setup`"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.run([str(path), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_fit_exits_zero(tmp_path: Path) -> None:
    """A short successful fit exits 0 and prints no Python object (``main`` returns None)."""
    done = run("transferability", *TINY_FIT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "object at 0x" not in done.stdout + done.stderr
    assert (run_dir(tmp_path / "run") / "checkpoints" / "last.ckpt").is_file()


def test_missing_ckpt_path_exits_nonzero_before_any_wandb_run(tmp_path: Path) -> None:
    """A ``--ckpt_path`` that names no file stops the fit with its name, before W&B starts a run."""
    done = run("transferability", *TINY_FIT, "--ckpt_path", "runs/nope/last.ckpt", cwd=tmp_path)
    assert done.returncode != 0
    assert "runs/nope/last.ckpt" in done.stderr
    assert not list(tmp_path.glob("run/wandb/*run-*")), "no W&B run folder is left behind"


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("transferability", [*TINY_FIT, "--model.widht", "3"], "widht"),
        ("transferability-study", ["--config", "bad_study.yaml"], "nope"),
        ("transferability-prepare-imagenet", ["no/such/imagenet"], "no/such/imagenet does not exist"),
        ("transferability-compare", ["no/such/study", "."], "no/such/study' has no results.csv"),
        ("transferability-predict", ["--base", "no/such.ckpt", "--config", str(CONFIG)], "'no/such.ckpt' does not"),
    ],
    ids=[
        "fit-unknown-key",
        "study-unknown-key",
        "prepare-missing-root",
        "compare-missing-study",
        "predict-missing-base",
    ],
)
def test_bad_input_exits_nonzero(tmp_path: Path, script: str, args: list[str], message: str) -> None:
    """A bad config key or a missing folder is an error status with a message that names it."""
    (tmp_path / "bad_study.yaml").write_text("name: bad\nfit_configs: [fit.yaml]\nnope: 1\n")
    done = run(script, *args, cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr
