"""Fused transfer training: a fused cell equals the same cell trained alone; normal per-cell checkpoints; the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks.transfer import TransferCallback
from experiments.cli import main
from models.base_file import load_base
from models.caffenet import STAGE_NAMES
from models.caffenet_classifier import CaffeNetClassifier
from models.dropout import SeededDropout, dropout_seed
from models.fused import FusedCell, FusedTransfer
from tests.helpers.run_dirs import run_dir
from tests.helpers.tiny_data import TINY_MODEL, TINY_NETWORK, TINY_SHAPE, TinyData

SHAPE, NETWORK, TINY = TINY_SHAPE, TINY_NETWORK, TINY_MODEL
TRAINER = dict(
    accelerator="cpu",
    devices=1,
    max_steps=6,
    val_check_interval=2,
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    num_sanity_val_steps=0,
)
SEED = 3


def data() -> TinyData:
    return TinyData(num_samples=48, batch_size=8, shuffle=True)  # shuffled: the stream's seed matters


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny base network, trained a few steps and saved as a Lightning checkpoint."""
    root = tmp_path_factory.mktemp("base")
    seed_everything(0, verbose=False)
    model = CaffeNetClassifier(**TINY)
    trainer = Trainer(**{**TRAINER, "max_steps": 3, "enable_checkpointing": False}, default_root_dir=root)
    trainer.fit(model, datamodule=data())
    path = root / "base.ckpt"
    trainer.save_checkpoint(path)
    return path


def fit_fused(
    cells: list[FusedCell],
    datamodule: TinyData,
    base: str,
    trainer: dict[str, Any],
    root: Path,
    ckpt_path: str | None = None,
    seed: int = SEED,
    network: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A fused group's fit as the CLI runs it: seeded, the module built, the group's checkpoint kept in ``root``."""
    seed_everything(seed, workers=True, verbose=False)
    module = FusedTransfer(base, cells, **SHAPE, network=NETWORK if network is None else network)
    callbacks = [ModelCheckpoint(dirpath=root / "checkpoints", save_last=True, save_top_k=0)]
    Trainer(**trainer, default_root_dir=root, callbacks=callbacks).fit(
        module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True
    )
    return module.summaries()


@pytest.fixture(scope="module")
def fused_run(tmp_path_factory: pytest.TempPathFactory, base_ckpt: Path) -> tuple[Path, list[dict[str, Any]]]:
    """AnB for n = 1..7 fused, 6 steps, validating every 2."""
    root = tmp_path_factory.mktemp("fused")
    cells = [FusedCell(n, str(root / f"AnB_n{n}"), seed=SEED) for n in range(1, 8)]
    rows = fit_fused(cells, data(), str(base_ckpt), TRAINER, root / "group")
    return root, rows


def train_alone(root: Path, base_ckpt: Path, n: int) -> CaffeNetClassifier:
    """The same cell as a single run (CaffeNetClassifier + TransferCallback), given the fused cell's random streams."""
    seed_everything(SEED, workers=True, verbose=False)
    model = CaffeNetClassifier(**TINY, init_seed=SEED, dropout_seed=SEED)  # the cell's own draws, as when fused
    trainer = Trainer(**TRAINER, default_root_dir=root, callbacks=[TransferCallback(str(base_ckpt), n=n)])
    trainer.fit(model, datamodule=data())
    return model


@pytest.mark.parametrize("n", [2, 5, 6, 7])
def test_fused_cell_matches_cell_trained_alone(tmp_path: Path, base_ckpt: Path, fused_run, n: int) -> None:
    """A fused cell reaches the same weights and validation history as the cell trained alone."""
    root, _ = fused_run
    alone = train_alone(tmp_path, base_ckpt, n)
    fused = torch.load(root / f"AnB_n{n}" / "checkpoints" / "last.ckpt", weights_only=True)
    expected = alone.state_dict()
    assert fused["state_dict"].keys() == expected.keys()
    for key, value in expected.items():
        # bit-identical: the same kernels on the same tensors, only the forward of layers 1..n is shared
        torch.testing.assert_close(
            fused["state_dict"][key], value, rtol=0, atol=0, msg=lambda m, key=key: f"{key}: {m}"
        )
    assert fused["val_top1_history"] == pytest.approx(alone.val_top1_history)
    assert fused["global_step"] == alone.trainer.global_step == 6
    base, _ = load_base(str(base_ckpt))
    for key, value in fused["state_dict"].items():
        layer = key.split(".")[1]
        if layer not in STAGE_NAMES:  # the dropout generators' states
            continue
        frozen = layer in STAGE_NAMES[:n]
        assert torch.equal(value, base[key[len("net.") :]]) == frozen, key  # trained layers moved off the base


def test_cell_checkpoint_is_a_normal_single_run_checkpoint(fused_run, base_ckpt: Path) -> None:
    """Each cell's last.ckpt loads with load_from_checkpoint, serves as a transfer base, and has its metrics."""
    root, rows = fused_run
    assert [row["n"] for row in rows] == list(range(1, 8))
    path = root / "AnB_n4" / "checkpoints" / "last.ckpt"
    model = CaffeNetClassifier.load_from_checkpoint(path)
    assert model.hparams.widths == TINY["widths"] and model.hparams.num_classes == 4
    assert len(model.val_top1_history) == 3
    weights, _ = load_base(str(path))
    assert set(weights) == {f"{layer}.{kind}" for layer in STAGE_NAMES for kind in ("weight", "bias")}
    metrics = json.loads((root / "AnB_n4" / "metrics.json").read_text())
    assert metrics["n"] == 4 and metrics["global_step"] == 6
    assert metrics["val/top1_best10_mean"] == pytest.approx(sum(metrics["val_top1_history"]) / 3)
    assert {"val/top1", "val/top5", "val/loss"} <= set(metrics)
    provenance = torch.load(path, weights_only=True)["transfer"]
    assert provenance["n"] == 4 and provenance["mode"] == "frozen" and provenance["base_checkpoint"] == str(base_ckpt)
    assert (root / "group" / "checkpoints" / "last.ckpt").is_file()


def test_resume_continues_exactly(tmp_path: Path, base_ckpt: Path) -> None:
    """Stopping after an epoch and resuming from the group checkpoint gives the weights of straight training.

    An unshuffled stream: Lightning does not restore the global generator a shuffling loader draws from.
    """

    def run(folder: str, max_steps: int, ckpt_path: str | None = None) -> None:
        cells = [FusedCell(n, str(tmp_path / folder / f"AnB_n{n}"), seed=SEED) for n in (3, 7)]
        fit_fused(
            cells,
            TinyData(num_samples=32, batch_size=8),
            str(base_ckpt),
            {**TRAINER, "max_steps": max_steps},
            tmp_path / folder / "group",
            ckpt_path=ckpt_path,
        )

    run("straight", 6)
    run("resumed", 4)
    run("resumed", 6, ckpt_path=str(tmp_path / "resumed" / "group" / "checkpoints" / "last.ckpt"))
    for n in (3, 7):
        resumed, straight = (
            torch.load(tmp_path / folder / f"AnB_n{n}" / "checkpoints" / "last.ckpt", weights_only=True)
            for folder in ("resumed", "straight")
        )
        assert resumed["global_step"] == 6
        for key, value in straight["state_dict"].items():
            torch.testing.assert_close(
                resumed["state_dict"][key], value, rtol=0, atol=0, msg=lambda m, key=key: f"{key}: {m}"
            )
        assert resumed["val_top1_history"] == straight["val_top1_history"]


def test_cell_dropout_is_seeded_and_active() -> None:
    """Masks follow the cell's seed, differ between cells, scale by 1/(1-p), and switch off in eval."""
    x = torch.ones(64, 32)
    a, b, c = SeededDropout(0.5, 1), SeededDropout(0.5, 1), SeededDropout(0.5, 2)
    ya = a(x)
    assert torch.equal(ya, b(x)) and not torch.equal(ya, c(x))
    assert set(ya.unique().tolist()) == {0.0, 2.0}
    assert 0.4 < (ya == 0).float().mean() < 0.6
    a.eval()
    assert torch.equal(a(x), x)
    assert dropout_seed(1, "fc6") not in (1, dropout_seed(1, "fc7"), dropout_seed(2, "fc6"))


def test_frozen_fc_keeps_its_dropout_in_the_fused_forward(base_ckpt: Path, tmp_path: Path) -> None:
    """For n = 6 and 7 the cell's own masks apply after the frozen fc6 (and fc7): training logits are random."""
    module = FusedTransfer(
        str(base_ckpt), [FusedCell(6, str(tmp_path / "a")), FusedCell(7, str(tmp_path / "b"))], **SHAPE, network=NETWORK
    )
    x = torch.randn(8, 1, 28, 28)
    module.train()
    first, second = module(x), module(x)
    assert all(not torch.equal(f, s) for f, s in zip(first, second))
    module.eval()
    first, second = module(x), module(x)
    assert all(torch.equal(f, s) for f, s in zip(first, second))


@pytest.mark.parametrize(
    ("cells", "network", "match"),
    [
        ([FusedCell(0, "a")], {}, r"n must be an integer >= 1"),
        ([FusedCell(8, "a")], {}, r"n must be an integer in 1\.\.7"),
        ([FusedCell(1, "a"), FusedCell(2, "a")], {}, "distinct folders"),
        ([FusedCell(1, "x/a"), FusedCell(2, "y/a")], {}, "distinct names"),
        ([FusedCell(1, "a")], {"compile": True}, "compile is not supported"),
        ([FusedCell(1, "a")], {"num_classes": 3}, "cannot set num_classes"),
        ([FusedCell(1, "a")], {"widht": 3}, "cannot set widht"),
        ([], {}, "at least one cell"),
    ],
)
def test_bad_groups_fail_loudly(base_ckpt: Path, cells: list[FusedCell], network: dict, match: str) -> None:
    """Cells that cannot be fused are refused with a sentence that says what to do."""
    with pytest.raises(ValueError, match=match):
        FusedTransfer(str(base_ckpt), cells, **SHAPE, network={**NETWORK, **network})


def group_config(tmp_path: Path, base_ckpt: Path, **trainer: Any) -> Path:
    """A fused group's CLI config, written as a researcher would."""
    config = {
        "seed_everything": SEED,
        "model": {
            "class_path": "models.fused.FusedTransfer",
            "init_args": {
                "base_checkpoint": str(base_ckpt),
                "network": {**NETWORK, "widths": list(NETWORK["widths"])},
                "cells": [{"n": n, "root": str(tmp_path / f"AnB_n{n}")} for n in (3, 7)],
            },
        },
        "data": {"class_path": "tests.helpers.tiny_data.TinyData", "init_args": {"num_samples": 48, "shuffle": True}},
        "checkpoint": {"monitor": None, "save_top_k": 0},
        "trainer": {**TRAINER, "default_root_dir": str(tmp_path / "group"), **trainer},
    }
    path = tmp_path / "group.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_fused_group_runs_through_the_cli(tmp_path: Path, base_ckpt: Path) -> None:
    """`transferability fit --config group.yaml` trains the group; each cell gets its checkpoint and metrics."""
    main(["fit", "--config", str(group_config(tmp_path, base_ckpt))])
    for n in (3, 7):
        model = CaffeNetClassifier.load_from_checkpoint(tmp_path / f"AnB_n{n}" / "checkpoints" / "last.ckpt")
        assert len(model.val_top1_history) == 3 and model.hparams.num_classes == 4  # linked from the data
        assert json.loads((tmp_path / f"AnB_n{n}" / "metrics.json").read_text())["global_step"] == 6
    assert (run_dir(tmp_path / "group") / "checkpoints" / "last.ckpt").is_file()  # the group's own run folder


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--trainer.precision", "16-mixed"], "trainer.precision='16-mixed' is not supported by a fused group"),
        (["--transfer.n", "2"], "transfer.n and transfer.base_checkpoint apply to one network"),
        (["--checkpoint.monitor", "val/top1"], "checkpoint.monitor='val/top1' is not logged by a fused group"),
    ],
)
def test_settings_a_group_cannot_take_are_refused_when_parsed(
    tmp_path: Path, base_ckpt: Path, extra: list[str], match: str
) -> None:
    """Refused by name before anything is built."""
    with pytest.raises(ValueError, match=match):
        main(["fit", "--config", str(group_config(tmp_path, base_ckpt)), *extra])
    assert not (tmp_path / "group").exists()


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_gradient_clipping_clips_each_cell_as_alone(tmp_path: Path, base_ckpt: Path, algorithm: str) -> None:
    """With trainer.gradient_clip_val a fused cell still equals the cell trained alone with it."""
    clip = {"gradient_clip_val": 0.05, "gradient_clip_algorithm": algorithm}
    fit_fused(
        [FusedCell(n, str(tmp_path / f"AnB_n{n}"), seed=SEED) for n in (2, 6)],
        data(),
        str(base_ckpt),
        {**TRAINER, **clip},
        tmp_path / "group",
    )
    for n in (2, 6):

        def alone(settings: dict[str, Any], n: int = n) -> CaffeNetClassifier:
            seed_everything(SEED, workers=True, verbose=False)
            model = CaffeNetClassifier(**TINY, init_seed=SEED, dropout_seed=SEED)
            Trainer(
                **TRAINER,
                **settings,
                default_root_dir=tmp_path / f"alone{n}",
                callbacks=[TransferCallback(str(base_ckpt), n=n)],
            ).fit(model, datamodule=data())
            return model

        clipped = alone(clip).state_dict()
        fused = torch.load(tmp_path / f"AnB_n{n}" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for key, value in clipped.items():
            torch.testing.assert_close(fused[key], value, rtol=0, atol=0, msg=lambda m, key=key: f"{key}: {m}")
        assert not torch.equal(alone({}).state_dict()["net.fc8.weight"], clipped["net.fc8.weight"])  # the clip acted
