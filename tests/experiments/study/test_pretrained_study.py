"""The pretrained-base preset (experiments/configs/studies/pretrained.yaml) through the study runner on a generated
image folder and a random-init torchvision ResNet-18 weights file: its table, figures and report, the file's
tensors in the fused cells, and a changed weights file refused, by name."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from datamodules.demo_folder import write_demo_folder
from experiments.report.table import read_table, write_table
from experiments.study.config import build_parser, study_from_config
from experiments.study.errors import StudyError
from experiments.study.runner import StudyRunner
from tests.helpers import REPO
from tests.helpers.planted import planted_rows

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter")]

PRESET = REPO / "experiments" / "configs" / "studies" / "pretrained.yaml"


def save_resnet18(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def study(tmp_path: Path, images: Path, weights: Path) -> StudyRunner:
    """The shipped preset with its settings changed (weights, folder) and a tiny scale: base B, AnB at n = 1, 2
    (one fused group), AnB+ at n = 1, 2; one seed, 2 steps each, 28-pixel crops."""
    overlay = {
        "output_dir": str(tmp_path / "out"),
        "overrides": {
            "data": {
                "init_args": {
                    "root": str(images),
                    "num_workers": 0,
                    "batch_size": 8,
                    "preset": "small",
                    "image_size": None,
                    "crop_size": None,
                    "cache_dir": str(tmp_path / "cache"),
                }
            },
            "trainer": {
                "max_steps": 2,
                "val_check_interval": 2,
                "log_every_n_steps": 1,
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "num_sanity_val_steps": 0,
            },
            "model": {"best_k": 1, "warmup_steps": 0},
        },
        "checkpoint_every_n_steps": 2,
        "grid": {"n": [1, 2], "seeds": [0], "pretrained": {"weights": str(weights), "families": ["AnB", "AnB+"]}},
        "wandb": {"enabled": False},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(overlay))
    parser = build_parser()
    return StudyRunner(study_from_config(parser, parser.parse_args(["--config", str(PRESET), "--config", str(path)])))


def test_preset_runs_to_its_report_and_a_changed_weights_file_is_refused(tmp_path: Path) -> None:
    """Table rows with base half 'pretrained', the pretrained figure and effects rows saying what A is, stages 1..n
    of the fused cells equal to the file's; then the file changes and the study refuses to go on, naming it."""
    images = write_demo_folder(tmp_path / "images", images_per_class=4)
    weights = save_resnet18(tmp_path / "resnet18.pth", seed=0)
    runner = study(tmp_path, images, weights)
    runner.run()
    rows = read_table(runner.table)
    assert sorted((row["family"], row["n"]) for row in rows) == [
        ("AnB", 1),
        ("AnB", 2),
        ("AnB+", 1),
        ("AnB+", 2),
        ("base", 0),
    ]
    assert {row["base_half"] for row in rows if row["family"].startswith("AnB")} == {"pretrained"}
    assert {(row["split"], row["target_half"]) for row in rows} == {("whole", "all")}
    assert list((runner.root / "fused").iterdir())  # the frozen cells trained as one group, needing no base job
    for name in ("pretrained.png", "pretrained.svg", "figure2.png", "figure3.png"):
        assert (runner.figures / name).stat().st_size > 1000
    assert "(A: pretrained weights)" in (runner.root / "effects.md").read_text()
    assert "A is the data the weights file was trained on" in (runner.root / "effects.md").read_text()
    assert "pretrained_minus_base,AnB+,2" in (runner.root / "summary.csv").read_text()

    cell = runner.root / "cells" / "whole_pretrained2all_s0"
    config = yaml.safe_load((cell / "config.yaml").read_text())
    assert config["transfer"]["base_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert config["data"]["init_args"]["mean_half"] is None
    trained = torch.load(cell / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    file = torch.load(weights, weights_only=True)
    assert torch.equal(trained["net.stem.conv1.weight"], file["conv1.weight"])
    assert torch.equal(trained["net.layer1.1.bn2.running_var"], file["layer1.1.bn2.running_var"])
    assert not torch.equal(trained["net.layer2.0.conv1.weight"], file["layer2.0.conv1.weight"])

    save_resnet18(weights, seed=1)
    with pytest.raises(
        StudyError,
        match=r"cell whole_pretrained1all_s0 copied weights file .*resnet18\.pth "
        r"\(grid\.pretrained\.weights\) with sha256 .*the file changed",
    ):
        study(tmp_path, images, weights).run()


def test_a_weights_file_that_does_not_fit_is_refused_before_anything_trains(tmp_path: Path) -> None:
    """A file whose conv1 is not the network's (here 3x3, the network's 7x7) stops the study at its plan, naming the
    file and the tensor, before base B or any selffer trains."""
    images = write_demo_folder(tmp_path / "images", images_per_class=4)
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    weights = tmp_path / "small_stem.pth"
    torch.save(state, weights)
    runner = study(tmp_path, images, weights)
    with pytest.raises(
        StudyError,
        match=r"cell whole_pretrained2all_s0 cannot copy stages 1\.\.2 from the weights "
        r"file: grid\.pretrained\.weights .*small_stem\.pth.*'conv1\.weight'",
    ):
        runner.run()
    assert not list((runner.root / "cells").glob("*/result.json"))


def test_the_report_places_the_claims_on_the_studys_own_stages(tmp_path: Path) -> None:
    """The preset's ResNet-18 at stage granularity has 5 transferable stages: its report's specificity rows are at
    n = 4 and 5 (its top two) and its dip is n = 3 alone, not the paper's 3-5 (planted table; nothing is trained)."""
    runner = study(tmp_path, tmp_path / "images", save_resnet18(tmp_path / "resnet18.pth", seed=0))
    runner.root.mkdir(parents=True)
    write_table(runner.table, [row for row in planted_rows(seeds=2) if row["n"] <= 5])
    runner.results.draw()
    with (runner.root / "effects.csv").open() as file:
        effects = {(row["claim"], row["layers"]) for row in csv.DictReader(file)}
    assert {("specificity", "4"), ("specificity", "5"), ("co-adaptation dip", "3")} <= effects
    assert ("co-adaptation dip", "3-5") not in effects
    assert "This network has 5 transferable stages" in (runner.root / "effects.md").read_text()
