"""``transferability-predict``: every stage of a CaffeNet, a ResNet-18 and a ViT base scored on generated
Fashion-MNIST files, its files, its determinism, its user errors, and the installed script's exit status."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from lightning.pytorch import Trainer, seed_everything

from datamodules import FashionMNISTHalf
from experiments.entry import console
from experiments.predict import FIELDS, predict
from experiments.predict.cli import main
from experiments.predict.features import pool
from experiments.predict.networks import load_weights
from models import BackboneClassifier, CaffeNetClassifier
from models.loading import save_untrained
from tests.helpers import REPO
from tests.helpers.fake_data import make_fake_fashion_mnist
from tests.helpers.tiny_data import TINY_NETWORK

CONFIG = REPO / "experiments" / "configs" / "fmnist" / "base.yaml"
SHAPE: dict[str, Any] = dict(num_classes=5, in_channels=1, input_size=28)
NETWORKS: dict[str, dict[str, Any]] = {
    "resnet18": dict(backbone="resnet18", backbone_options={"stem": "small"}),
    "vit": dict(backbone="vit", backbone_options=dict(patch_size=7, num_layers=2, num_heads=2, hidden_dim=16)),
}
STAGES = {"caffenet": 7, "resnet18": 9, "vit": 3}  # transferable stages: conv1..fc7; stem + 8 blocks; embed + blocks


def save(module: Any, path: Path) -> Path:
    """The module's checkpoint as a fit saves it, without training (its initialisation)."""
    return save_untrained(module, path)


def fit_caffenet(root: Path, data_root: Path, half: str) -> Path:
    """A tiny CaffeNet trained three steps on a half of the fake Fashion-MNIST (its checkpoint records that half)."""
    seed_everything(0, verbose=False)
    module = CaffeNetClassifier(**{**TINY_NETWORK, "num_outputs": 10}, **SHAPE)
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=str(root),
    )
    trainer.fit(module, datamodule=FashionMNISTHalf(root=str(data_root), half=half, batch_size=16, pixel_scale=1 / 128))
    path = root / f"caffenet_{half}.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fake Fashion-MNIST files, CaffeNet bases on halves A and B, a ResNet-18 and a ViT base (initialised)."""
    root = tmp_path_factory.mktemp("predict")
    paths = {"data": make_fake_fashion_mnist(root / "fmnist")}
    for half in ("A", "B"):
        paths[f"caffenet_{half}"] = fit_caffenet(root, paths["data"], half)
    for name, network in NETWORKS.items():
        paths[name] = save(BackboneClassifier(**network, **SHAPE, init_seed=0), root / f"{name}.ckpt")
    return paths


def args(files: dict[str, Path], base: str, output: Path, *extra: str) -> list[str]:
    """The command line scoring ``base`` on half B of the fake files, 60 of its 100 validation images."""
    return [
        "--base",
        str(files[base]),
        "--config",
        str(CONFIG),
        "--data.init_args.root",
        str(files["data"]),
        "--data.init_args.half",
        "B",
        "--images",
        "60",
        "--output",
        str(output),
        *extra,
    ]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


def test_pooling_bounds_every_kind_of_stage_output() -> None:
    """Feature maps and tokens averaged (avg) or pooled to a grid within max_dim; wide vectors narrowed by groups."""
    maps = torch.randn(2, 4, 6, 6)
    assert torch.allclose(pool(maps, "avg"), maps.mean((2, 3)))
    assert torch.allclose(pool(maps, "grid", grid=3), maps.reshape(2, 4, 3, 2, 3, 2).mean((3, 5)).flatten(1))
    assert pool(maps, "grid", grid=3, max_dim=20).shape == (2, 16)  # 4 x 3² > 20: a 2 x 2 grid
    tokens = torch.randn(2, 1 + 9, 5)  # a class token and 3 x 3 patches
    assert torch.allclose(pool(tokens, "avg"), tokens.mean(1))
    assert torch.allclose(pool(tokens, "grid", grid=3), tokens[:, 1:].transpose(1, 2).flatten(1))
    vectors = torch.randn(2, 10)
    assert torch.equal(pool(vectors, "grid"), vectors)
    assert torch.allclose(pool(vectors, max_dim=5), vectors.reshape(2, 5, 2).mean(2))
    with pytest.raises(ValueError, match="square"):
        pool(torch.randn(2, 7, 5), "grid")


def test_caffenet_every_stage_every_variant_and_files(files: dict[str, Path], tmp_path: Path) -> None:
    """All cut points 1..7 with every estimator raw, selffer and difference; the four files; each base reads the
    images with the mean image of the half it was trained on."""
    main(args(files, "caffenet_A", tmp_path / "out", "--target_base", str(files["caffenet_B"])))
    fields, rows = read_csv(tmp_path / "out" / "scores.csv")
    assert tuple(fields) == FIELDS
    assert sorted({int(row["n"]) for row in rows}) == list(range(1, 8))
    assert [row["stage"] for row in rows if row["estimator"] == "logme" and row["variant"] == "raw"] == [
        "conv1",
        "conv2",
        "conv3",
        "conv4",
        "conv5",
        "fc6",
        "fc7",
    ]
    assert len(rows) == 7 * 4 * 3
    scores = {(row["n"], row["estimator"], row["variant"]): float(row["score"]) for row in rows}
    for (n, estimator, variant), score in scores.items():
        if variant == "difference":
            assert score == pytest.approx(scores[n, estimator, "raw"] - scores[n, estimator, "selffer"])
        if estimator == "probe":
            assert 0.0 <= score <= 1.0 or variant == "difference"
    record = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert record["sample"] == {"set": "validation", "seed": 0, "images": 60, "of": 100, "classes": 5}
    assert "half A" in record["networks"]["base"]["reads"]
    assert record["networks"]["base"]["data"]["init_args"]["mean_half"] == "A"
    assert record["networks"]["target_base"]["data"]["init_args"]["mean_half"] is None
    assert len(record["inputs"]["base"]["sha256"]) == 64 and record["inputs"]["config_files"][0]["path"] == str(CONFIG)
    assert record["wall_time_s"] > 0
    table = (tmp_path / "out" / "scores.md").read_text()
    assert "| 7 | fc7 |" in table and "probe difference" in table
    assert (tmp_path / "out" / "scores.png").read_bytes()[:4] == b"\x89PNG"


def test_the_same_seed_gives_the_same_scores(files: dict[str, Path], tmp_path: Path) -> None:
    """Two runs with one seed write identical scores; another seed draws another sample."""
    for name, seed in (("first", "0"), ("again", "0"), ("other", "1")):
        main(args(files, "caffenet_A", tmp_path / name, "--seed", seed, "--estimators", "[logme, probe]"))
    scores = {
        name: [row["score"] for row in read_csv(tmp_path / name / "scores.csv")[1]]
        for name in ("first", "again", "other")
    }
    assert scores["first"] == scores["again"]
    assert scores["first"] != scores["other"]


@pytest.mark.parametrize("network", ["resnet18", "vit"])
def test_backbones_every_stage(files: dict[str, Path], network: str) -> None:
    """The Python API scores every stage of a ResNet-18 (stem and 8 blocks) and a ViT (embedding and blocks)."""
    data = {
        "class_path": "datamodules.FashionMNISTHalf",
        "init_args": {"root": str(files["data"]), "half": "B", "pixel_scale": 1 / 128},
    }
    rows = predict(files[network], data, images=40, estimators=["hscore", "probe"], quiet=True)
    assert sorted({row.n for row in rows}) == list(range(1, STAGES[network] + 1))
    assert {row.variant for row in rows} == {"raw"} and {row.estimator for row in rows} == {"hscore", "probe"}
    assert all(isinstance(row.score, float) for row in rows)


def test_grid_pooling_widens_the_features_within_max_dim(files: dict[str, Path], tmp_path: Path) -> None:
    """``grid`` pooling gives each stage up to grid² times the channels, never more than ``max_dim``."""
    main(args(files, "vit", tmp_path / "avg", "--estimators", "[logme]"))
    main(
        args(
            files,
            "vit",
            tmp_path / "grid",
            "--estimators",
            "[logme]",
            "--pooling",
            "grid",
            "--grid",
            "3",
            "--max_dim",
            "100",
        )
    )
    widths = {
        name: json.loads((tmp_path / name / "scores.json").read_text())["networks"]["base"]["widths"]
        for name in ("avg", "grid")
    }
    assert widths["avg"] == [16, 16, 16]
    assert widths["grid"] == [64, 64, 64]  # 16 x 3² = 144 > 100: a 2 x 2 grid


def test_a_torchvision_weights_file_as_the_base(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--backbone`` reads a torchvision state dict into the staged network (every stage scored); a file of another
    architecture is a user error naming it."""
    torch.manual_seed(3)
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    network = load_weights(weights, "resnet18", {"granularity": "stage"}, in_channels=3, input_size=28, num_outputs=5)
    state = torch.load(weights, weights_only=True)
    assert torch.equal(network.net.stem.conv1.weight, state["conv1.weight"])
    assert torch.equal(network.net.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    data = {
        "class_path": "datamodules.FashionMNISTHalf",
        "init_args": {"root": str(files["data"]), "half": "B", "channels": 3, "pixel_scale": 1 / 57.5},
    }
    rows = predict(
        weights,
        data,
        backbone="resnet18",
        backbone_options={"granularity": "stage"},
        images=30,
        estimators=["logme"],
        quiet=True,
    )
    assert [row.stage for row in rows] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    command = ["--base", str(weights), "--backbone", "vit", "--data", json.dumps(data), "--output", str(tmp_path)]
    assert console("transferability-predict", main, command) == 2
    assert "is not a torchvision state dict of --backbone vit" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--base", "no/such.ckpt"], "--base 'no/such.ckpt' does not exist"),
        (["--images", "3"], "--images 3"),
        (["--pooling", "max"], "--pooling"),
        (["--config", "no/such.yaml"], "--config 'no/such.yaml' does not exist"),
        (["--target_base", "CONFIG"], "--target_base"),
    ],
    ids=["missing-base", "too-few-images", "unknown-pooling", "missing-config", "not-a-checkpoint"],
)
def test_user_errors_exit_2_with_one_line(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    """A missing file or a bad setting: exit status 2, a message naming it, no traceback."""
    extra = [str(CONFIG) if value == "CONFIG" else value for value in extra]
    try:
        status = console("transferability-predict", main, args(files, "caffenet_A", tmp_path / "out", *extra))
    except SystemExit as stop:  # a parse error leaves through the parser, as in every command
        status = stop.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "scores.csv").exists()


@pytest.mark.slow
def test_installed_script_exits_0_and_logs_a_wandb_table(files: dict[str, Path], tmp_path: Path) -> None:
    """The console script, as a shell runs it: exit status 0, its files, an offline W&B run in the output folder."""
    script = Path(sys.executable).parent / "transferability-predict"
    assert script.is_file(), f"{script} is not installed: run `make setup`"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    done = subprocess.run(
        [str(script), *args(files, "vit", tmp_path / "out", "--estimators", "[transrate]", "--wandb", "offline")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(read_csv(tmp_path / "out" / "scores.csv")[1]) == STAGES["vit"]
    tables = list((tmp_path / "out" / "wandb").glob("offline-run-*/files/media/table/predict/scores_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert tuple(table["columns"]) == FIELDS and len(table["data"]) == STAGES["vit"]
    assert "scores in" in done.stdout
