"""Training throughput in images a second, read on the logger's steps only."""

from __future__ import annotations

from time import perf_counter
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from typing_extensions import override

from models.step_metrics import logs_this_step

METRIC = "train/images_per_sec"


class ImageThroughput(Callback):
    """Logs ``train/images_per_sec``: training images a second over all ranks, between two logging steps.

    Lightning's ``ThroughputMonitor`` waits for the device after every batch (``torch.cuda.synchronize``) and
    warns when the module has no ``flops_per_batch``. This callback waits for the device on the logger's steps
    only (every ``trainer.log_every_n_steps``, as ``models.step_metrics.logs_this_step`` decides), so the steps in
    between keep the host running ahead. The window counts data loading and the optimizer step; it restarts
    after each validation, so validation time is not counted. Over several ranks the rate is rank zero's times
    the world size (the ranks' batches are the same size).
    """

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._images = 0
        self._logs_now = False

    @staticmethod
    def images_in(batch: Any) -> int:
        """The number of images in an ``(images, labels)`` batch: its number of labels."""
        return len(batch[-1])

    def _clock(self, trainer: Trainer) -> float:
        device = trainer.strategy.root_device
        if device.type != "cpu":
            torch.accelerator.synchronize(device)  # the device's queued steps belong to this window
        return perf_counter()

    def _restart(self, trainer: Trainer) -> None:
        self._start, self._images = self._clock(trainer), 0

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restart(trainer)

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # a validation inside fit; not `validate`
            self._restart(trainer)

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._logs_now = logs_this_step(trainer)  # decided on the step count the training step sees

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._images += self.images_in(batch)
        if not self._logs_now or self._start is None:
            return
        seconds = self._clock(trainer) - self._start
        if seconds > 0:
            rate = self._images * trainer.world_size / seconds
            pl_module.log(METRIC, rate, on_step=True, on_epoch=False, rank_zero_only=True)
        self._restart(trainer)
