"""Fused transfer training: a fused cell equals the same cell trained alone; normal per-cell checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything

from callbacks.transfer import TransferCallback
from experiments.fused import CellDropout, FusedCell, FusedTransfer, dropout_seed, fit_fused, run_layers, seed_dropout
from models.caffenet import LAYER_NAMES
from models.module import CaffeNetClassifier
from tests.tiny_data import TinyData

TINY = dict(num_classes=4, num_outputs=4, in_channels=1, input_size=28, widths=(8, 8, 8, 8, 8, 16, 16),
            conv1_kernel=5, conv1_stride=1, init="kaiming")
TRAINER = dict(accelerator="cpu", devices=1, max_steps=6, val_check_interval=2, logger=False,
               enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
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


@pytest.fixture(scope="module")
def fused_run(tmp_path_factory: pytest.TempPathFactory, base_ckpt: Path) -> tuple[Path, list[dict[str, Any]]]:
    """AnB for n = 1..7 fused, 6 steps, validating every 2."""
    root = tmp_path_factory.mktemp("fused")
    cells = [FusedCell(n, str(root / f"AnB_n{n}"), seed=SEED) for n in range(1, 8)]
    rows = fit_fused(cells, data(), str(base_ckpt), TINY, TRAINER, group_dir=str(root / "group"))
    return root, rows


def train_alone(root: Path, base_ckpt: Path, n: int) -> CaffeNetClassifier:
    """The same cell as a single run (CaffeNetClassifier + TransferCallback), given the fused cell's random streams."""
    seed_everything(SEED, verbose=False)
    model = CaffeNetClassifier(**TINY)
    seed_dropout(model.net, SEED)        # the cell's own dropout generators, as in the fused run
    seed_everything(SEED, verbose=False)  # the data stream is seeded after the network is built, as in fit_fused
    trainer = Trainer(**TRAINER, default_root_dir=root, callbacks=[TransferCallback(str(base_ckpt), n=n)])
    trainer.fit(model, datamodule=data())
    return model


def test_layer_by_layer_is_caffenet_forward() -> None:
    """run_layers(1..8) is CaffeNet.forward, in eval and (same dropout generators) in training."""
    seed_everything(0, verbose=False)
    net = CaffeNetClassifier(**TINY).net
    x = torch.randn(4, 1, 28, 28)
    net.eval()
    assert torch.equal(run_layers(net, x, 1, 8), net(x))
    net.train()
    seed_dropout(net, 5)
    first = run_layers(net, x, 1, 8)
    seed_dropout(net, 5)
    assert torch.equal(first, net(x))


@pytest.mark.parametrize("n", [2, 5, 6, 7])
def test_fused_cell_matches_cell_trained_alone(tmp_path: Path, base_ckpt: Path, fused_run, n: int) -> None:
    """A fused cell reaches the same weights and validation history as the cell trained alone."""
    root, rows = fused_run
    alone = train_alone(tmp_path, base_ckpt, n)
    fused = torch.load(root / f"AnB_n{n}" / "checkpoints" / "last.ckpt", weights_only=True)
    expected = alone.state_dict()
    assert fused["state_dict"].keys() == expected.keys()
    for key, value in expected.items():
        # bit-identical: the same kernels on the same tensors, only the forward of layers 1..n is shared
        torch.testing.assert_close(fused["state_dict"][key], value, rtol=0, atol=0,
                                   msg=lambda m, key=key: f"{key}: {m}")
    assert fused["val_top1_history"] == pytest.approx(alone.val_top1_history)
    assert fused["global_step"] == alone.trainer.global_step == 6
    base, _ = TransferCallback.load_base(str(base_ckpt))
    for key, value in fused["state_dict"].items():
        layer = key.split(".")[1]
        frozen = layer in LAYER_NAMES[:n]
        assert torch.equal(value, base[key[len("net."):]]) == frozen, key  # trained layers moved off the base


def test_cell_checkpoint_is_a_normal_single_run_checkpoint(fused_run, base_ckpt: Path) -> None:
    """Each cell's last.ckpt loads with load_from_checkpoint, serves as a transfer base, and has its metrics."""
    root, rows = fused_run
    assert [row["n"] for row in rows] == list(range(1, 8))
    path = root / "AnB_n4" / "checkpoints" / "last.ckpt"
    model = CaffeNetClassifier.load_from_checkpoint(path)
    assert model.hparams.widths == TINY["widths"] and model.hparams.num_classes == 4
    assert len(model.val_top1_history) == 3
    weights, _ = TransferCallback.load_base(str(path))
    assert set(weights) == {f"{layer}.{kind}" for layer in LAYER_NAMES for kind in ("weight", "bias")}
    metrics = json.loads((root / "AnB_n4" / "metrics.json").read_text())
    assert metrics["n"] == 4 and metrics["global_step"] == 6
    assert metrics["val/top1_best10_mean"] == pytest.approx(sum(metrics["val_top1_history"]) / 3)
    assert {"val/top1", "val/top5", "val/loss"} <= set(metrics)
    provenance = torch.load(path, weights_only=True)["callbacks"]["TransferCallback"]
    assert provenance["n"] == 4 and provenance["mode"] == "frozen" and provenance["base_checkpoint"] == str(base_ckpt)
    assert (root / "group" / "checkpoints" / "last.ckpt").is_file()


def test_resume_continues_exactly(tmp_path: Path, base_ckpt: Path) -> None:
    """Stopping after an epoch and resuming from the group checkpoint gives the weights of straight training.

    An unshuffled stream: Lightning does not restore the global generator a shuffling loader draws from.
    """
    def run(folder: str, max_steps: int, ckpt_path: str | None = None) -> None:
        cells = [FusedCell(n, str(tmp_path / folder / f"AnB_n{n}"), seed=SEED) for n in (3, 7)]
        fit_fused(cells, TinyData(num_samples=32, batch_size=8), str(base_ckpt), TINY,
                  {**TRAINER, "max_steps": max_steps}, group_dir=str(tmp_path / folder / "group"), ckpt_path=ckpt_path)

    run("straight", 6)
    run("resumed", 4)
    run("resumed", 6, ckpt_path=str(tmp_path / "resumed" / "group" / "checkpoints" / "last.ckpt"))
    for n in (3, 7):
        resumed, straight = (torch.load(tmp_path / folder / f"AnB_n{n}" / "checkpoints" / "last.ckpt",
                                        weights_only=True) for folder in ("resumed", "straight"))
        assert resumed["global_step"] == 6
        for key, value in straight["state_dict"].items():
            torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=0,
                                       msg=lambda m, key=key: f"{key}: {m}")
        assert resumed["val_top1_history"] == straight["val_top1_history"]


def test_cell_dropout_is_seeded_and_active() -> None:
    """Masks follow the cell's seed, differ between cells, scale by 1/(1-p), and switch off in eval."""
    x = torch.ones(64, 32)
    a, b, c = CellDropout(0.5, 1), CellDropout(0.5, 1), CellDropout(0.5, 2)
    ya = a(x)
    assert torch.equal(ya, b(x)) and not torch.equal(ya, c(x))
    assert set(ya.unique().tolist()) == {0.0, 2.0}
    assert 0.4 < (ya == 0).float().mean() < 0.6
    a.eval()
    assert torch.equal(a(x), x)
    assert dropout_seed(1, "fc6") not in (1, dropout_seed(1, "fc7"), dropout_seed(2, "fc6"))


def test_frozen_fc_keeps_its_dropout_in_the_fused_forward(base_ckpt: Path, tmp_path: Path) -> None:
    """For n = 6 and 7 the cell's own masks apply after the frozen fc6 (and fc7): training logits are random."""
    module = FusedTransfer([FusedCell(6, str(tmp_path / "a")), FusedCell(7, str(tmp_path / "b"))], str(base_ckpt), TINY)
    x = torch.randn(8, 1, 28, 28)
    module.train()
    first, second = module(x), module(x)
    assert all(not torch.equal(f, s) for f, s in zip(first, second))
    module.eval()
    first, second = module(x), module(x)
    assert all(torch.equal(f, s) for f, s in zip(first, second))


@pytest.mark.parametrize(
    ("cells", "model", "match"),
    [
        ([FusedCell(0, "a")], {}, r"n must be an integer in 1\.\.7"),
        ([FusedCell(8, "a")], {}, r"n must be an integer in 1\.\.7"),
        ([FusedCell(1, "a"), FusedCell(2, "a")], {}, "distinct folders"),
        ([FusedCell(1, "x/a"), FusedCell(2, "y/a")], {}, "distinct names"),
        ([FusedCell(1, "a")], {"compile": True}, "compile is not supported"),
        ([], {}, "at least one cell"),
    ],
)
def test_bad_groups_fail_loudly(base_ckpt: Path, cells: list[FusedCell], model: dict, match: str) -> None:
    """Cells that cannot be fused are refused with a sentence that says what to do."""
    with pytest.raises(ValueError, match=match):
        FusedTransfer(cells, str(base_ckpt), {**TINY, **model})


def test_coupling_trainer_settings_are_refused(base_ckpt: Path, tmp_path: Path) -> None:
    """Gradient clipping and fp16 loss scaling would act on all cells at once."""
    cells = [FusedCell(1, str(tmp_path / "a"))]
    with pytest.raises(ValueError, match="gradient clipping"):
        fit_fused(cells, data(), str(base_ckpt), TINY, {**TRAINER, "gradient_clip_val": 1.0})
    with pytest.raises(ValueError, match="fp16"):
        fit_fused(cells, data(), str(base_ckpt), TINY, {**TRAINER, "precision": "16-mixed"})


def test_model_shape_follows_the_data(base_ckpt: Path, tmp_path: Path) -> None:
    """num_classes (and in_channels, input_size where the data has them) come from the data, as the CLI links them."""
    with pytest.raises(ValueError, match="num_classes=3 differs from the data's num_classes=4"):
        fit_fused([FusedCell(1, str(tmp_path / "a"))], data(), str(base_ckpt), {**TINY, "num_classes": 3}, TRAINER)
