"""Errors the user caused are one short message naming the setting or file, exit status 2 and no traceback.

Each case runs the entry point (``experiments.entry.console``) in-process on the tiny network and data; one case
runs the installed script, as a shell does. Real bugs and ``--debug`` keep their tracebacks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from experiments import cli, entry
from experiments.errors import DEBUG_ENV, SettingError, UserError, tidy_parse_error
from experiments.study import runner
from tests.helpers import REPO
from tests.helpers.tiny_data import TinyData, tiny_model_args

TRAINER = [
    "--seed_everything",
    "0",
    "--trainer.max_steps",
    "1",
    "--trainer.accelerator",
    "cpu",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.num_sanity_val_steps",
    "0",
    "--trainer.default_root_dir",
    "run",
]
TINY = ["fit", *tiny_model_args(), "--data", "tests.helpers.tiny_data.TinyData", "--data.num_samples", "16", *TRAINER]
FMNIST = ["fit", *tiny_model_args(), "--data", "datamodules.FashionMNISTHalf", *TRAINER]  # refused before it loads


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh working folder, the CLI's own argv, no debugging asked for."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["transferability"])
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``transferability ARGS`` through its entry point; assert exit status 2 and a short message; return it."""
    try:
        status = entry.console("transferability", cli.main, list(args))
    except SystemExit as stop:  # a parse error exits from inside the parser, as argparse does
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error" in line or line.startswith(("(", "Run "))]
    assert len(lines) <= 2 and len(err.splitlines()) <= 6, err
    assert not list(Path("run").glob("wandb/*run-*")), "no W&B run was started"
    return err


@pytest.mark.parametrize(
    "args, names",
    [
        (["--transfer.mode", "frozn"], ["--transfer.mode", "'frozen', 'finetune'", "frozn", "--help"]),
        (["--model.widht", "3"], ["--model.widht", "not a setting of models.CaffeNetClassifier"]),
        (["--config", "missing.yaml"], ["--config", "missing.yaml", "does not exist"]),
    ],
    ids=["bad-choice", "unknown-key", "missing-config"],
)
def test_parse_errors_are_the_key_line_and_a_hint(capsys, args: list[str], names: list[str]) -> None:
    """A parse error prints the setting's line and where to look, not jsonargparse's 75-line usage text."""
    err = refused(capsys, *TINY, *args)
    for name in names:
        assert name in err
    assert "usage:" not in err


@pytest.mark.parametrize(
    "args, names",
    [
        (
            [*FMNIST, "--data.init_args.images_per_class", "0"],
            ["--data.init_args.images_per_class", "must be positive"],
        ),
        ([*FMNIST, "--data.init_args.batch_size", "0"], ["--data.init_args.batch_size", "must be positive"]),
        ([*TINY, "--model.widths", "[8, 0, 8, 8, 8, 16, 16]"], ["--model.init_args.widths", "conv2 width"]),
        (
            [*TINY, "--transfer.base_checkpoint", "nowhere/base.ckpt", "--transfer.n", "3"],
            ["--transfer.base_checkpoint", "nowhere/base.ckpt", "looked for in"],
        ),
        ([*TINY, "--transfer.n", "99"], ["--transfer.n", "0..7", "got 99", "CaffeNet"]),
    ],
    ids=["images_per_class-0", "batch_size-0", "width-0", "missing-base", "n-99"],
)
def test_setting_errors_name_the_setting(capsys, args: list[str], names: list[str]) -> None:
    """A refused setting is named by its dotted key, before W&B starts a run (``--transfer.n 99`` included)."""
    err = refused(capsys, *args)
    for name in names:
        assert name in err


def _vit_base(path: Path) -> Path:
    """A plain state dict of a small ViT (stages ``embed``, ``block1``.., ``head``): not a CaffeNet base."""
    from models.backbones import build_backbone

    net = build_backbone(
        "vit", num_outputs=4, in_channels=1, input_size=28, patch_size=7, num_layers=2, num_heads=2, hidden_dim=16
    )
    torch.save(net.state_dict(), path)
    return path


def test_other_architecture_as_base_is_named(capsys, tmp_path: Path) -> None:
    """A ViT's weights given as a CaffeNet base: the base, what it lacks, and what to give instead."""
    base = _vit_base(tmp_path / "vit.ckpt")
    err = refused(capsys, *TINY, "--transfer.base_checkpoint", str(base), "--transfer.n", "3")
    assert "--transfer.base_checkpoint" in err and "vit.ckpt" in err and "conv1" in err
    assert "same model class" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_config_on_a_cpu_says_how_to_run_there(capsys) -> None:
    """The paper's preset (accelerator gpu) on a CPU machine names the GPU, the CPU settings and the data root."""
    config = REPO / "experiments" / "configs" / "imagenet" / "paper.yaml"
    err = refused(capsys, "fit", "--config", str(config))
    assert "expects a GPU" in err and "--trainer.accelerator cpu" in err
    assert "--data.init_args.root" in err and "/data/ilsvrc2012" in err


def test_debug_keeps_the_traceback(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--debug`` (and so ``TRANSFERABILITY_DEBUG=1``) lets the user error through with its traceback."""
    monkeypatch.setenv(DEBUG_ENV, "")
    with pytest.raises(SettingError, match="images_per_class must be positive"):
        entry.console("transferability", cli.main, [*FMNIST, "--debug", "--data.init_args.images_per_class", "0"])
    assert os.environ[DEBUG_ENV] == "1"


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception that is not the user's (here a bug in a constructor) is not turned into a message."""

    def broken(self: TinyData, *args: object, **kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(TinyData, "__init__", broken)
    with pytest.raises(Exception) as raised:  # noqa: PT011 (jsonargparse's ValueError, caused by the bug: any type)
        entry.console("transferability", cli.main, TINY)
    assert not isinstance(raised.value, UserError)
    assert isinstance(raised.value, KeyError) or isinstance(raised.value.__cause__, KeyError)


def test_study_setting_error(capsys, tmp_path: Path) -> None:
    """A study setting out of range is the study's message and status 2."""
    (tmp_path / "study.yaml").write_text("name: s\nfit_configs: [fit.yaml]\nconvergence_tolerance: 2\n")
    status = entry.console("transferability-study", runner.main, ["--config", "study.yaml"])
    err = capsys.readouterr().err
    assert status == 2 and "transferability-study: error: convergence_tolerance" in err and "Traceback" not in err


def test_prepare_checks_every_input_first(capsys, tmp_path: Path) -> None:
    """Missing archives are all named with the folder they were looked for in, and nothing is created."""
    from datamodules import prepare

    status = entry.console(
        "transferability-prepare-imagenet",
        prepare.main,
        ["imagenet", "--train", "ILSVRC2012_img_train.tar", "--val", "val.tar"],
    )
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert f"--train ILSVRC2012_img_train.tar (looked for in {tmp_path})" in err and "--val val.tar" in err
    assert not (tmp_path / "imagenet").exists()


def test_tidy_parse_error_keeps_an_unknown_message() -> None:
    """A message of another shape is kept whole (its lines joined), so nothing the user needs is dropped."""
    assert tidy_parse_error("unrecognized arguments: --foo 1") == "unrecognized arguments: --foo 1"
    assert tidy_parse_error("Parser key \"trainer.max_steps\":\n  Expected a <class 'int'>. Got value: abc") == (
        "--trainer.max_steps: Expected a <class 'int'>. Got value: abc"
    )


@pytest.mark.slow
def test_installed_script_exits_2_in_a_few_lines(tmp_path: Path) -> None:
    """The installed ``transferability`` script: a missing base is two lines on stderr, status 2, no traceback."""
    script = Path(sys.executable).parent / "transferability"
    began = time.monotonic()
    done = subprocess.run(
        [str(script), *TINY, "--transfer.base_checkpoint", "no/base.ckpt", "--transfer.n", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "no/base.ckpt" in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 3, done.stderr
    assert time.monotonic() - began < 120
