"""Checkpoint and learning-rate callbacks with the behaviour a long run needs."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from typing_extensions import override


class BestAndLastCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose ``last.ckpt`` always holds the latest validated weights.

    Lightning 2.6 refreshes ``last.ckpt`` only when a top-k checkpoint is written in the same step, so a
    validation that does not improve the monitored metric (and the end of training) leaves a stale
    ``last.ckpt``: a resume would lose steps and a transfer would copy old weights. This class writes it
    again after every validation in a fit and at the end of training, with public API only
    (``Trainer.save_checkpoint``, ``format_checkpoint_name``, ``last_model_path``), so that it does not
    depend on ModelCheckpoint's private methods. After a validation that improved the metric, Lightning has
    just written ``last.ckpt`` too: the second write costs one checkpoint's disk time and keeps the rule
    simple (the file is written after the validation, whose results the module keeps in its state).
    """

    _refreshed_step: int | None = None

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self.refresh_last(trainer)

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self._refreshed_step != trainer.global_step:  # no validation wrote it at this step
            self.refresh_last(trainer)

    def refresh_last(self, trainer: Trainer) -> None:
        """Write ``last.ckpt`` (or the ``last_model_path`` this run already uses) with the current state."""
        fast_dev_run = trainer.fast_dev_run  # type: ignore[attr-defined]  # set at run time by Lightning
        if (
            self.save_last is not True
            or fast_dev_run
            or trainer.sanity_checking
            or trainer.state.fn != TrainerFn.FITTING
        ):
            return
        metrics = {
            **trainer.callback_metrics,
            "epoch": torch.tensor(trainer.current_epoch),
            "step": torch.tensor(trainer.global_step),
        }
        # set before saving: the callback's state, written into the checkpoint, names it
        self.last_model_path = self.last_model_path or self.format_checkpoint_name(metrics, self.CHECKPOINT_NAME_LAST)
        trainer.save_checkpoint(self.last_model_path, weights_only=self.save_weights_only)
        self._refreshed_step = trainer.global_step


class LearningRateMonitorWhenLogging(LearningRateMonitor):
    """LearningRateMonitor that stands aside when the run has no logger (``--trainer.logger false``)."""

    @override
    def on_train_start(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_start(trainer, *args, **kwargs)

    @override
    def on_train_batch_start(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_batch_start(trainer, *args, **kwargs)

    @override
    def on_train_epoch_start(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_epoch_start(trainer, *args, **kwargs)
