"""W&B lineage and run records (``callbacks.lineage``), read back from the offline run's ``run-*.wandb`` log
(``tests/helpers/wandb_log.py``)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import wandb
import yaml

from experiments.cli import run_cli
from tests.helpers.run_dirs import run_dir
from tests.helpers.tiny_data import TINY_NETWORK, tiny_model_args
from tests.helpers.wandb_log import of_type, wandb_records

NETWORK = {**TINY_NETWORK, "widths": list(TINY_NETWORK["widths"])}
DATA_AND_TRAINER = [
    "--data",
    "tests.helpers.tiny_data.TinyData",
    "--data.num_samples",
    "32",
    "--trainer.max_steps",
    "4",
    "--trainer.val_check_interval",
    "2",
    "--trainer.log_every_n_steps",
    "1",
    "--trainer.accelerator",
    "cpu",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.num_sanity_val_steps",
    "0",
]
TINY = [*tiny_model_args(), *DATA_AND_TRAINER]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """W&B offline and quiet, no run left open, the CLI's own argv, and a fresh working folder."""
    wandb.finish()  # a run an earlier in-process fit left open would be reused by the next WandbLogger
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setattr(sys, "argv", ["transferability"])  # pytest's own arguments are not the CLI's
    monkeypatch.chdir(tmp_path)


def config_keys(records: list[Any]) -> set[str]:
    """The top-level keys the run's config records set."""
    return {item.key for config in of_type(records, "config") for item in config.update}


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fit(root: Path, *extra: str) -> Any:
    """A tiny CLI fit into ``root``, its W&B run closed (as the study closes each cell's) and written out."""
    try:
        return run_cli(["fit", *TINY, "--trainer.default_root_dir", str(root), *extra])
    finally:
        wandb.finish()
        wandb.teardown()  # waits for W&B's service to write the run's log: finish alone may return first


def test_transfer_declares_base_checkpoint_as_input_and_its_own_as_output(tmp_path: Path) -> None:
    """The base's output artifact and the transfer's input are one artifact (same name and digest): base -> transfer."""
    fit(tmp_path / "base")
    base_ckpt = run_dir(tmp_path / "base") / "checkpoints" / "last.ckpt"
    fit(tmp_path / "A3B", "--transfer.base_checkpoint", str(base_ckpt), "--transfer.n", "3")

    base_artifacts = of_type(wandb_records(run_dir(tmp_path / "base")), "artifact")
    assert [a.use_after_commit for a in base_artifacts] == [False], "the base declares its output only"
    (output,) = base_artifacts
    assert output.name == f"checkpoint-{sha256(base_ckpt)[:16]}" and output.type == "model"
    assert json.loads(output.metadata) == {"sha256": sha256(base_ckpt)}
    (entry,) = output.manifest.contents
    assert entry.path == "model.ckpt" and entry.ref == f"file://{base_ckpt}"

    transfer_artifacts = of_type(wandb_records(run_dir(tmp_path / "A3B")), "artifact")
    inputs = [a for a in transfer_artifacts if a.use_after_commit]
    outputs = [a for a in transfer_artifacts if not a.use_after_commit]
    assert [(a.name, a.digest) for a in inputs] == [(output.name, output.digest)]
    own = run_dir(tmp_path / "A3B") / "checkpoints" / "last.ckpt"
    assert [a.name for a in outputs] == [f"checkpoint-{sha256(own)[:16]}"]
    staged = [e.local_path for a in [*base_artifacts, *transfer_artifacts] for e in a.manifest.contents if e.local_path]
    assert not staged, "reference artifacts: nothing is staged for upload"


def test_fused_group_declares_its_base_once(tmp_path: Path) -> None:
    """A fused group (cells n = 3 and 7 of one base) declares the base's output artifact as its one input."""
    fit(tmp_path / "base")
    base_ckpt = run_dir(tmp_path / "base") / "checkpoints" / "last.ckpt"
    group = {
        "class_path": "models.fused.FusedTransfer",
        "init_args": {
            "base_checkpoint": str(base_ckpt),
            "network": NETWORK,
            "cells": [{"n": n, "root": str(tmp_path / f"AnB_n{n}")} for n in (3, 7)],
        },
    }
    try:
        run_cli(
            [
                "fit",
                *DATA_AND_TRAINER,
                "--model",
                json.dumps(group),
                "--checkpoint.monitor",
                "null",
                "--checkpoint.save_top_k",
                "0",
                "--trainer.default_root_dir",
                str(tmp_path / "group"),
            ]
        )
    finally:
        wandb.finish()
        wandb.teardown()
    (output,) = of_type(wandb_records(run_dir(tmp_path / "base")), "artifact")
    inputs = [a for a in of_type(wandb_records(run_dir(tmp_path / "group")), "artifact") if a.use_after_commit]
    assert [(a.name, a.digest) for a in inputs] == [(output.name, output.digest)]


def test_full_config_goes_to_every_logger(tmp_path: Path) -> None:
    """With a CSV logger first and W&B second (as in study cells), both receive the full CLI config."""
    loggers = [
        {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path / "run")}},
        {
            "class_path": "lightning.pytorch.loggers.WandbLogger",
            "init_args": {"save_dir": str(tmp_path / "run"), "offline": True, "project": "transferability"},
        },
    ]
    fit(tmp_path / "run", "--trainer.logger", json.dumps(loggers))
    assert {"cli", "transfer"} <= config_keys(wandb_records(run_dir(tmp_path / "run")))
    (hparams,) = (tmp_path / "run").glob("**/version_*/hparams.yaml")
    assert yaml.full_load(hparams.read_text())["cli"]["trainer"]["max_steps"] == 4


def test_failed_fit_closes_its_run_as_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fit that raises finishes its W&B run with exit code 1 at once, so the next fit does not reuse it."""
    from models.caffenet_classifier import CaffeNetClassifier

    def broken_step(self: Any, batch: Any, batch_idx: int) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(CaffeNetClassifier, "training_step", broken_step)
    with pytest.raises(RuntimeError, match="boom"):
        run_cli(["fit", *TINY, "--trainer.default_root_dir", str(tmp_path / "run")])
    assert wandb.run is None, "the failed run is closed"
    wandb.teardown()
    (exit_record,) = of_type(wandb_records(run_dir(tmp_path / "run")), "exit")
    assert exit_record.exit_code == 1


def test_wandb_trouble_does_not_fail_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error while declaring an artifact is a warning; the fit finishes and writes its checkpoint."""
    import callbacks.lineage

    def unavailable(path: str, sha256: str) -> None:
        raise ConnectionError("no W&B")

    monkeypatch.setattr(callbacks.lineage, "checkpoint_artifact", unavailable)
    with pytest.warns(UserWarning, match="W&B lineage: could not declare the final checkpoint.*no W&B"):
        cli = fit(tmp_path / "run")
    assert cli.trainer.global_step == 4
    assert (run_dir(tmp_path / "run") / "checkpoints" / "last.ckpt").is_file()
