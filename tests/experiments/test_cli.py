"""The Lightning CLI end to end: a YAML fit on real Fashion-MNIST files, W&B offline, --print_config."""

from __future__ import annotations

import glob
import os

import pytest
import torch
import yaml

from experiments.cli import main, run_cli
from tests.helpers import REPO
from tests.helpers.run_dirs import run_dir

CONFIG = REPO / "experiments" / "configs" / "fmnist" / "base.yaml"
FAST = [
    "--trainer.max_steps",
    "4",
    "--trainer.val_check_interval",
    "2",
    "--trainer.log_every_n_steps",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--data.init_args.images_per_class",
    "20",
    "--data.init_args.batch_size",
    "8",
    "--trainer.limit_val_batches",
    "3",
]


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)


def test_fit_from_repository_config_with_wandb_offline(tmp_path):
    """A fit with the shipped YAML trains, checkpoints best and last, and leaves an offline W&B run."""
    root = tmp_path / "run"
    cli = run_cli(["fit", "--config", str(CONFIG), "--trainer.default_root_dir", str(root), *FAST])
    root = run_dir(root)  # the fit's run folder
    assert cli.trainer.global_step == 4
    assert cli.model.hparams.num_classes == 5 == cli.datamodule.num_classes  # linked, not stated twice
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert glob.glob(str(root / "checkpoints" / "best-*.ckpt"))
    assert (root / "config.yaml").is_file()
    runs = glob.glob(str(root / "wandb" / "offline-run-*"))
    assert len(runs) == 1, "the W&B offline run folder is left for `wandb sync`"
    assert glob.glob(os.path.join(runs[0], "*.wandb"))
    metrics = cli.trainer.callback_metrics
    assert {"val/top1", "val/top5", "val/loss", "val/top1_best10_mean"} <= set(metrics)
    checkpoint = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert len(checkpoint["val_top1_history"]) == 2


def test_print_config_reruns(tmp_path, capsys):
    """`--print_config` prints a complete config that runs the same fit when given back."""
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIG), *FAST, "--print_config"])
    printed = capsys.readouterr().out
    config = yaml.safe_load(printed)
    assert config["model"]["class_path"] == "models.CaffeNetClassifier"
    assert config["model"]["init_args"]["widths"] == [16, 32, 48, 48, 32, 128, 128]
    assert config["transfer"]["n"] == 0 and "checkpoint" in config and "lr_monitor" in config
    saved = tmp_path / "printed.yaml"
    saved.write_text(printed)
    root = tmp_path / "rerun"
    cli = run_cli(["fit", "--config", str(saved), "--trainer.default_root_dir", str(root)])
    assert cli.trainer.global_step == 4
    assert (run_dir(root) / "checkpoints" / "last.ckpt").is_file()


def test_resume_from_last(tmp_path):
    """`fit --ckpt_path last` resumes where the killed run stopped."""
    root = tmp_path / "run"
    args = ["fit", "--config", str(CONFIG), "--trainer.default_root_dir", str(root), *FAST, "--trainer.logger", "false"]
    main(args)
    cli = run_cli([*args, "--trainer.max_steps", "6", "--ckpt_path", str(run_dir(root) / "checkpoints" / "last.ckpt")])
    assert cli.trainer.global_step == 6
    assert len(cli.model.val_top1_history) == 3


@pytest.mark.parametrize(
    "override, match",
    [
        (["--model.widths", "[16, 0, 48, 48, 32, 128, 128]"], "conv2 width must be positive"),
        (["--model.num_outputs", "3"], "narrower than the task's 5 classes"),
        (["--model.conv1_kernel", "27"], "input_size=28 is too small"),
    ],
)
def test_bad_settings_fail_before_training(override, match, tmp_path):
    """Bad model settings are named before any training step."""
    with pytest.raises(ValueError, match=match):
        main(["fit", "--config", str(CONFIG), *FAST, "--trainer.logger", "false", *override])


def test_unknown_key_is_rejected(capsys):
    """An unknown config key stops the CLI with a message that names it."""
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIG), "--model.widht", "3"])
    assert "widht" in capsys.readouterr().err
