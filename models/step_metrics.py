"""A training step's metrics at almost no cost per step: the training accuracy, and logging on logging steps only.

Every network's LightningModule (``models.classifier.TransferClassifier``, each network of a fused group) counts its
training accuracy with :class:`TrainAccuracy` and logs through these functions; ``callbacks.throughput`` asks
:func:`logs_this_step` when to measure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.strategies import Strategy
from torch import Tensor, nn


def log_reduced(module: LightningModule, values: Mapping[str, float | Tensor], prog_bar: bool = False) -> None:
    """Log epoch values that every rank already holds alike (reduced by torchmetrics or :class:`TrainAccuracy`).

    ``sync_dist`` tells Lightning they are reduced over the ranks; the maximum over ranks of one value is that value
    exactly (a mean over 3 ranks could round it). On one process the sync does nothing.
    """
    module.log_dict(dict(values), prog_bar=prog_bar, sync_dist=True, reduce_fx="max")


def log_training_step(
    module: LightningModule, loss: Tensor, accuracy: dict[str, Tensor], batch_size: int, prefix: str = ""
) -> None:
    """Log a training step's loss and accuracies (keys ``<prefix>train/...``) on the steps the logger writes.

    The values are the means over the ranks (whose batches are of one size): one collective, on logging steps
    only. They go to the logger on the host: the progress bar reads its metrics at every refresh (every
    step by default), and reading a GPU tensor waits for all the queued work; this copy waits once per
    logging step. Only an unprefixed loss (one network) goes to the progress bar.
    """
    if not logs_this_step(module.trainer):
        return
    names = ["loss", *(f"{name}_step" for name in accuracy)]
    values = torch.stack([loss.detach().float(), *(value.float() for value in accuracy.values())])
    values = module.trainer.strategy.reduce(values, reduce_op="mean").cpu()
    logged = {f"{prefix}train/{name}": value for name, value in zip(names, values)}
    module.log(f"{prefix}train/loss", logged.pop(f"{prefix}train/loss"), prog_bar=not prefix, batch_size=batch_size)
    module.log_dict(logged, batch_size=batch_size)


def logs_this_step(trainer: Trainer) -> bool:
    """Whether the logger writes this training step (every ``trainer.log_every_n_steps``, as Lightning decides).

    The training step calls ``self.log`` only then: each call costs about 0.25 ms of CPU, a fixed cost per step
    that a GPU step of a few milliseconds cannot hide (``BENCHMARKS.md``, Lightning overhead).
    """
    every = trainer.log_every_n_steps  # type: ignore[attr-defined]  # set at run time by Lightning
    return (trainer.global_step + 1) % every == 0 or trainer.should_stop


class TrainAccuracy(nn.Module):
    """Training top-1 and top-``top_k`` accuracy for almost nothing per step, exact over the epoch.

    Each step counts the batch's hits from one ``topk`` and adds them to a running total on the device (no
    host sync; about 40 us on a CPU core, against 430 us for two torchmetrics ``MulticlassAccuracy``
    forwards). :meth:`epoch` sums the totals over the ranks, returns the epoch's accuracy and starts again.
    A checkpoint holds the totals summed over the ranks (:meth:`totals`) and a resume gives them back to rank 0
    (:meth:`resume`), so the epoch's value after a resume in its middle is the uninterrupted run's.
    """

    def __init__(self, top_k: int) -> None:
        super().__init__()
        self.top_k = top_k
        # Not a buffer: DDP would broadcast rank 0's totals over the other ranks' before every forward.
        self.hits = torch.zeros(2)  # top-1, top-k; follows the logits' device
        self.images = 0

    def update(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Count one batch; its accuracies ``top1`` and ``top5`` (top-``top_k``)."""
        hits = logits.detach().topk(self.top_k, dim=1).indices == labels[:, None]
        batch = torch.stack([hits[:, 0].sum(), hits.any(dim=1).sum()]).float()
        if self.hits.device != batch.device:
            self.hits = self.hits.to(batch.device)
        self.hits += batch
        self.images += len(labels)
        accuracy = batch / len(labels)
        return {"top1": accuracy[0], "top5": accuracy[1]}

    def totals(self, strategy: Strategy | None) -> dict[str, Any]:
        """The running totals, summed over the ranks when ``strategy`` is given (a collective: every rank calls it).

        Returns:
            ``{"hits": float tensor [top-1, top-k] on the CPU, "images": int}``, what :meth:`resume` takes.
        """
        totals = self._local_totals()
        if strategy is not None:
            totals = strategy.reduce(totals.to(strategy.root_device), reduce_op="sum")
        return {"hits": totals[:2].cpu(), "images": int(totals[2])}

    def resume(self, totals: dict[str, Any], first_rank: bool) -> None:
        """Continue from :meth:`totals` summed over the ranks: rank 0 holds them, the other ranks start at zero."""
        hits = totals["hits"] if first_rank else torch.zeros(2)
        self.hits = hits.to(device=self.hits.device, dtype=self.hits.dtype)
        self.images = int(totals["images"]) if first_rank else 0

    def _local_totals(self) -> Tensor:
        return torch.cat([self.hits, self.hits.new_tensor([self.images])])

    def epoch(self, strategy: Strategy) -> dict[str, Tensor]:
        """The accuracies over every batch counted since the last call, on every rank; then reset."""
        totals = strategy.reduce(self._local_totals().to(strategy.root_device), reduce_op="sum")
        self.hits.zero_()
        self.images = 0
        images = totals[2].clamp(min=1)
        return {"top1": totals[0] / images, "top5": totals[1] / images}
