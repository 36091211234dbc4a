"""A network that diverges stops its fit with a message naming the learning rate, instead of becoming a result."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from tests.helpers.own_network import PerceptronClassifier

SHAPE = dict(num_classes=3, in_channels=1, input_size=8, width=4)


def loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(12, 1, 8, 8, generator=generator)
    return DataLoader(TensorDataset(images, torch.arange(12) % 3), batch_size=4)


class PoisonHead(Callback):
    """Make the head's weights NaN after the first step, as a too-high learning rate would."""

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        with torch.no_grad():
            pl_module.net.head.weight.fill_(float("nan"))


def fit(tmp_path: Path, callbacks: list[Callback]) -> PerceptronClassifier:
    module = PerceptronClassifier(**SHAPE, lr=0.5)
    trainer = Trainer(
        max_steps=2,
        val_check_interval=1,
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(module, loader(), loader())
    return module


def test_a_diverged_network_stops_the_fit_naming_the_tensor_and_the_learning_rate(tmp_path: Path) -> None:
    with pytest.raises(
        FloatingPointError, match=r"PerceptronClassifier diverged: the validation loss is nan at step 1"
    ):
        fit(tmp_path, [PoisonHead()])
    with pytest.raises(FloatingPointError, match=r"first: head\.weight\).*model\.init_args\.lr, now 0\.5"):
        fit(tmp_path, [PoisonHead()])


def test_a_finite_network_trains_and_records_every_validation(tmp_path: Path) -> None:
    module = fit(tmp_path, [])
    assert len(module.val_top1_history) == 2


def test_a_validation_with_nothing_counted_is_not_a_divergence() -> None:
    module = PerceptronClassifier(**SHAPE)
    assert module.end_validation(record=False)["val/top1"] == 0.0
