"""Run folders: each fit a version_N of its own; --ckpt_path last resumes the run named, as it was started."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments.runs import (
    RunFolderError,
    check_same_run,
    choose_run,
    new_wandb_id,
    saved_wandb_id,
    versions,
)
from tests.helpers import REPO


def make_run(root: Path, version: int, config: dict | None = None) -> Path:
    """A run folder as a fit leaves it: config.yaml and checkpoints/last.ckpt."""
    folder = root / f"version_{version}"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (folder / "config.yaml").write_text(yaml.safe_dump(config or {"seed_everything": version}))
    return folder


def test_fresh_fits_take_the_next_free_version(tmp_path: Path) -> None:
    """No run yet: version 0; then one past the highest, never reusing a folder."""
    assert choose_run(tmp_path / "none", None, None) == (0, False)
    make_run(tmp_path, 0)
    make_run(tmp_path, 3)
    (tmp_path / "version_x").mkdir()
    assert versions(tmp_path) == [0, 3]
    assert choose_run(tmp_path, None, None) == (4, False)


def test_last_resumes_the_only_run_or_the_named_one(tmp_path: Path) -> None:
    """`last` with one run resumes it; with several it needs --version; with none it starts version 0."""
    assert choose_run(tmp_path, None, "last") == (0, False)
    make_run(tmp_path, 0)
    assert choose_run(tmp_path, None, "last") == (0, True)
    make_run(tmp_path, 1)
    with pytest.raises(RunFolderError, match=r"2 runs \(version_0, version_1\).*--run_version N"):
        choose_run(tmp_path, None, "last")
    assert choose_run(tmp_path, 0, "last") == (0, True)
    with pytest.raises(RunFolderError, match="version_7 does not exist"):
        choose_run(tmp_path, 7, "last")


def test_a_checkpoint_file_resumes_the_run_that_holds_it(tmp_path: Path) -> None:
    """A --ckpt_path inside version_1 continues version_1; one from elsewhere starts a new run."""
    make_run(tmp_path, 0)
    run = make_run(tmp_path, 1)
    assert choose_run(tmp_path, None, str(run / "checkpoints" / "last.ckpt")) == (1, True)
    elsewhere = tmp_path.parent / "other.ckpt"
    assert choose_run(tmp_path, None, str(elsewhere)) == (2, False)


def test_a_named_version_that_holds_a_run_is_not_started_again(tmp_path: Path) -> None:
    """--version 0 without --ckpt_path would overwrite run 0: refused, naming both ways out."""
    make_run(tmp_path, 0)
    with pytest.raises(RunFolderError, match="already holds a run.*--ckpt_path last.*leave --run_version unset"):
        choose_run(tmp_path, 0, None)
    assert choose_run(tmp_path, 5, None) == (5, False)


def test_a_resume_with_another_seed_is_refused() -> None:
    """Resuming run 1 (seed 1) from a config with seed 0 names the setting and the run's own config."""
    saved = {"seed_everything": 1, "model": {"lr": 0.01}}
    check_same_run(saved, {"seed_everything": 1, "model": {"lr": 0.01}, "trainer": {"max_steps": 9}}, "r/version_1")
    with pytest.raises(RunFolderError, match=r"seed_everything 1, this command gives 0.*r/version_1/config.yaml"):
        check_same_run(saved, {"seed_everything": 0, "model": {"lr": 0.01}}, "r/version_1")


def test_wandb_ids() -> None:
    """A run's W&B id is read back from its config; fresh ids differ."""
    saved = {
        "trainer": {"logger": {"class_path": "lightning.pytorch.loggers.WandbLogger", "init_args": {"id": "abc12345"}}}
    }
    assert saved_wandb_id(saved) == "abc12345"
    assert saved_wandb_id({"trainer": {"logger": False}}) is None
    assert new_wandb_id() != new_wandb_id()


pytestmark = pytest.mark.slow  # subprocess fits

# Through the real CLI: two fits of one config, a resume of the run named, a transfer naming the old layout.

CONFIG = REPO / "experiments" / "configs" / "fmnist" / "base.yaml"
FAST = [
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
    "1",
]


def fit(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """One fit through the installed ``transferability`` command, W&B offline, in a process of its own (W&B keeps
    settings for its process)."""
    command = [
        str(Path(sys.executable).parent / "transferability"),
        "fit",
        "--config",
        str(CONFIG),
        "--trainer.default_root_dir",
        str(root),
        *FAST,
        *extra,
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}  # no shared W&B service
    return subprocess.run(
        command, cwd=root.parent, env={**env, "WANDB_MODE": "offline"}, capture_output=True, text=True, timeout=300
    )


def fitted(root: Path, *extra: str) -> None:
    """``fit``, which must succeed."""
    done = fit(root, *extra)
    assert done.returncode == 0, done.stderr[-3000:]


def refused(root: Path, *extra: str) -> str:
    """``fit``, which must stop as a user error (exit 2); its message."""
    done = fit(root, *extra)
    assert done.returncode == 2, done.stderr[-3000:]
    return done.stderr


def step_of(checkpoint: Path) -> int:
    import torch

    return int(torch.load(checkpoint, weights_only=True)["global_step"])


def wandb_ids(folder: Path) -> set[str]:
    """The run ids of the offline W&B runs in a run folder (``offline-run-<time>-<id>``)."""
    return {path.name.rsplit("-", 1)[-1] for path in (folder / "wandb").glob("offline-run-*")}


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    """Two fits of one config into one root, seeds 0 and 1, 4 steps each."""
    root = tmp_path / "runs"
    root.mkdir()
    fitted(root, "--trainer.max_steps", "4", "--seed_everything", "0")
    fitted(root, "--trainer.max_steps", "4", "--seed_everything", "1")
    return root


def test_two_fits_of_one_config_keep_both_runs(two_runs: Path) -> None:
    """Each fit has its own folder, config (its own seed, version and W&B id), last.ckpt and W&B run."""
    assert versions(two_runs) == [0, 1]
    configs = [yaml.safe_load((two_runs / f"version_{v}" / "config.yaml").read_text()) for v in (0, 1)]
    assert [c["seed_everything"] for c in configs] == [0, 1]
    assert [c["run_version"] for c in configs] == [0, 1]
    ids = [saved_wandb_id(c) for c in configs]
    assert ids[0] != ids[1] and [wandb_ids(two_runs / f"version_{v}") for v in (0, 1)] == [{ids[0]}, {ids[1]}]
    for version in (0, 1):
        checkpoints = sorted(p.name for p in (two_runs / f"version_{version}" / "checkpoints").iterdir())
        assert "last.ckpt" in checkpoints and not any("-v1" in name for name in checkpoints)
    assert not (two_runs / "checkpoints").exists() and not (two_runs / "config.yaml").exists()


def test_last_resumes_the_named_run_with_its_seed_and_wandb_id(two_runs: Path) -> None:
    """`--ckpt_path last` needs the run named; `--run_version 0` continues run 0 (seed 0, its W&B id), not run 1."""
    assert "2 runs (version_0, version_1)" in refused(
        two_runs, "--trainer.max_steps", "6", "--seed_everything", "0", "--ckpt_path", "last"
    )
    assert "seed_everything 0, this command gives 1" in refused(
        two_runs, "--trainer.max_steps", "6", "--seed_everything", "1", "--ckpt_path", "last", "--run_version", "0"
    )
    run0 = two_runs / "version_0"
    first_id = saved_wandb_id(yaml.safe_load((run0 / "config.yaml").read_text()))
    run1_last = (two_runs / "version_1" / "checkpoints" / "last.ckpt").read_bytes()
    fitted(two_runs, "--trainer.max_steps", "6", "--seed_everything", "0", "--ckpt_path", "last", "--run_version", "0")
    assert step_of(run0 / "checkpoints" / "last.ckpt") == 6
    assert (two_runs / "version_1" / "checkpoints" / "last.ckpt").read_bytes() == run1_last, "run 1 untouched"
    config = yaml.safe_load((run0 / "config.yaml").read_text())
    assert config["seed_everything"] == 0 and saved_wandb_id(config) == first_id
    assert wandb_ids(run0) == {first_id}, "the resume logged to the run's own W&B id"
    assert versions(two_runs) == [0, 1]


def test_a_transfer_never_reads_another_runs_weights(two_runs: Path) -> None:
    """The old single-run path names no file now: refused, listing the runs and the path to give."""
    message = refused(
        two_runs / "transfer",
        "--trainer.max_steps",
        "2",
        "--data.init_args.half",
        "B",
        "--transfer.n",
        "3",
        "--transfer.base_checkpoint",
        str(two_runs / "checkpoints" / "last.ckpt"),
    )
    assert re.search(r"version_0, version_1.*version_1/checkpoints/last.ckpt", message.replace("\n", " "))
    (two_runs / "transfer").mkdir(exist_ok=True)
    fitted(
        two_runs / "transfer",
        "--trainer.max_steps",
        "2",
        "--data.init_args.half",
        "B",
        "--transfer.n",
        "3",
        "--transfer.base_checkpoint",
        str(two_runs / "version_0" / "checkpoints" / "last.ckpt"),
    )
    import torch

    record = torch.load(two_runs / "transfer" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert "version_0" in str(record)  # the transfer's provenance names the base run it copied


def test_ddp_ranks_write_into_one_run(tmp_path: Path) -> None:
    """Two DDP ranks (gloo) of one fit share rank 0's run folder and W&B id, even when rank 0 made the folder first."""
    root = tmp_path / "runs"
    root.mkdir()
    fitted(
        root,
        "--trainer.max_steps",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
    )
    assert versions(root) == [0]
    config = yaml.safe_load((root / "version_0" / "config.yaml").read_text())
    assert wandb_ids(root / "version_0") == {saved_wandb_id(config)}
    assert step_of(root / "version_0" / "checkpoints" / "last.ckpt") == 2
