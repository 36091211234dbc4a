"""The study on a generated image folder (PNGs of one size, JPEGs of another, one corrupt file) through the real
CLI and study runner: a base and a frozen transfer network fitted, a two-n study run to its table and figures with
the shipped presets, and a split file changed after training refused."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from datamodules import ImageFolderHalves, UnreadableImageWarning
from datamodules.demo_folder import write_demo_folder
from experiments.cli import run_cli
from experiments.report.table import read_table
from experiments.study.config import build_parser, study_from_config
from experiments.study.errors import StudyError
from experiments.study.runner import StudyRunner
from tests.helpers import REPO
from tests.helpers.run_dirs import run_dir

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter"),
    pytest.mark.filterwarnings("ignore::datamodules.UnreadableImageWarning"),
]

FIT = REPO / "experiments" / "configs" / "folder" / "base.yaml"
STUDY = REPO / "experiments" / "configs" / "studies" / "folder.yaml"
TINY_TRAINER = {
    "max_steps": 2,
    "val_check_interval": 2,
    "log_every_n_steps": 1,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
}
TINY_MODEL = {"widths": [4, 8, 8, 8, 8, 16, 16], "lr_step_iters": 1, "best_k": 1}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo folder (8 classes, 32x32 PNGs and 40x48 JPEGs) with one corrupt JPEG in class cat."""
    root = write_demo_folder(tmp_path_factory.mktemp("folder") / "images", images_per_class=6)
    (root / "cat" / "cat_999.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def _fit(root: Path, run: Path, *extra: str) -> Any:
    args = [
        "fit",
        "--config",
        str(FIT),
        "--data.init_args.root",
        str(root),
        "--data.init_args.split_files",
        f"{{superclass: {root / 'superclasses.csv'}}}",
        "--data.init_args.num_workers",
        "0",
        "--data.init_args.batch_size",
        "16",
        "--data.init_args.cache_dir",
        str(run.parent / "cache"),
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(run),
        "--model.widths",
        "[4, 8, 8, 8, 8, 16, 16]",
    ]
    args += [arg for key, value in TINY_TRAINER.items() for arg in (f"--trainer.{key}", str(value).lower())]
    return run_cli([*args, *extra])


def test_cli_fits_a_base_and_a_frozen_transfer(images: Path, tmp_path: Path) -> None:
    """Base on the animal half of the super-class split, then AnB n=2 frozen on vehicles; the corrupt file is
    skipped and counted, and the saved config pins the classes, channels, sizes and the split file's sha256."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableImageWarning)
        base = _fit(
            images, tmp_path / "base", "--data.init_args.split", "superclass", "--data.init_args.half", "animal"
        )
    assert base.trainer.global_step == 2 and base.datamodule.num_classes == 4
    metrics = base.trainer.callback_metrics
    assert metrics["data/skipped_train"].item() + metrics["data/skipped_val"].item() == 1
    saved = yaml.safe_load((run_dir(tmp_path / "base") / "config.yaml").read_text())["data"]["init_args"]
    assert saved["classes"] == sorted(images.name for images in images.iterdir() if images.is_dir())
    assert (saved["channels"], saved["image_size"], saved["crop_size"]) == (3, 32, 28)
    assert set(saved["split_checksums"]) == {"superclass"}
    assert ImageFolderHalves(**saved).class_names == base.datamodule.class_names  # the saved config re-reads it

    checkpoint = run_dir(tmp_path / "base") / "checkpoints" / "last.ckpt"
    transfer = _fit(
        images,
        tmp_path / "transfer",
        "--data.init_args.split",
        "superclass",
        "--data.init_args.half",
        "vehicle",
        "--data.init_args.mean_half",
        "animal",
        "--transfer.base_checkpoint",
        str(checkpoint),
        "--transfer.n",
        "2",
        "--transfer.mode",
        "frozen",
    )
    assert transfer.trainer.global_step == 2 and transfer.datamodule.class_names == ["bus", "car", "ship", "truck"]
    base_weights = torch.load(checkpoint, weights_only=True)["state_dict"]
    for name in ("net.conv1.weight", "net.conv2.weight"):
        assert torch.equal(transfer.model.state_dict()[name], base_weights[name])
        assert not transfer.model.get_parameter(name).requires_grad


def _study(images: Path, split_file: Path, output: Path) -> StudyRunner:
    """The shipped folder preset with the three settings changed (root, split, backbone size) and a tiny scale."""
    overlay = {
        "output_dir": str(output),
        "overrides": {
            "data": {
                "init_args": {
                    "root": str(images),
                    "split_files": {"superclass": str(split_file)},
                    "num_workers": 0,
                    "batch_size": 16,
                    "cache_dir": str(output.parent / "cache"),
                }
            },
            "trainer": TINY_TRAINER,
            "model": TINY_MODEL,
        },
        "checkpoint_every_n_steps": 2,
        "grid": {"n": [1, 2], "seeds": [0], "figure2": {"families": ["BnB", "AnB"]}, "random_features": {"n": [1, 2]}},
        "wandb": {"enabled": False},
    }
    path = output.parent / "study.yaml"
    path.write_text(yaml.safe_dump(overlay))
    parser = build_parser()
    return StudyRunner(study_from_config(parser, parser.parse_args(["--config", str(STUDY), "--config", str(path)])))


def test_two_n_study_to_table_and_figures_and_a_changed_split_refused(images: Path, tmp_path: Path) -> None:
    """The folder preset runs unchanged but for root, split file and scale: every panel's cells in the table,
    the figures, effects and the layer-similarity panel; after the split file changes, the study refuses to go on."""
    split_file = tmp_path / "superclasses.csv"
    shutil.copy(images / "superclasses.csv", split_file)
    runner = _study(images, split_file, tmp_path / "out")
    runner.run()
    rows = read_table(runner.table)
    assert len(rows) == 15 and {row["n"] for row in rows} == {0, 1, 2}
    assert {row["split"] for row in rows} == {"random0", "superclass", "whole"}
    assert {row["target_half"] for row in rows if row["split"] == "superclass"} == {"animal", "vehicle"}
    for name in ("figure2.png", "figure3.png"):
        assert (runner.figures / name).stat().st_size > 1000
    assert (runner.root / "effects.md").is_file() and (runner.root / "cka.csv").is_file()
    cell = yaml.safe_load((runner.root / "cells" / "superclass_animal1vehicle_s0" / "config.yaml").read_text())
    assert set(cell["data"]["init_args"]["split_checksums"]) == {"superclass"}

    split_file.write_text(split_file.read_text().replace("owl,animal", "owl,vehicle"))
    with pytest.raises(
        StudyError,
        match=r"cell superclass_.* was trained on split file .*superclasses\.csv \(split "
        r"'superclass'\) with sha256 .*the split changed since its networks were "
        r"trained",
    ):
        _study(images, split_file, tmp_path / "out").run()
