"""``PlainProgress``: progress as whole lines, for output that goes to a file (no tqdm cursor codes).

The CLI uses it in place of Lightning's tqdm bar when stderr is not a terminal (a log file, a pipe, a job's
output), so a log reads ``step 20/400 (epoch 0): loss=2.13 | 4.1 steps/s`` lines and one line per validation.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar
from typing_extensions import override


class PlainProgress(ProgressBar):
    """Lightning's progress bar as plain lines: every ``every_n_steps`` training steps, and after each validation.

    Args:
        every_n_steps: Steps between lines (None: the trainer's ``log_every_n_steps``).
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._since: tuple[float, int] = (time.monotonic(), 0)

    @override
    def disable(self) -> None:
        self._enabled = False

    @override
    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        """Whether it prints (Lightning disables it on ranks other than zero)."""
        return self._enabled

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._since = (time.monotonic(), trainer.global_step)

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Lightning sets this Trainer attribute at run time; its class does not declare it.
        every = self.every_n_steps or trainer.log_every_n_steps or 50  # type: ignore[attr-defined]
        step = trainer.global_step
        if self._enabled and step % every == 0 and not trainer.sanity_checking:
            began, first = self._since
            rate = (step - first) / max(time.monotonic() - began, 1e-9)
            self._since = (time.monotonic(), step)
            total = f"/{trainer.max_steps}" if trainer.max_steps and trainer.max_steps > 0 else ""
            self._line(
                f"step {step}{total} (epoch {trainer.current_epoch}): "
                f"{self._metrics(trainer, pl_module, 'train')} | {rate:.2f} steps/s"
            )

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._enabled and not trainer.sanity_checking:
            self._line(f"validation at step {trainer.global_step}: {self._metrics(trainer, pl_module, 'val')}")

    def _metrics(self, trainer: Trainer, pl_module: LightningModule, prefix: str) -> str:
        metrics = {
            key: value
            for key, value in self.get_metrics(trainer, pl_module).items()
            if key.startswith(prefix) or (prefix == "train" and "/" not in key and key != "v_num")
        }
        return (
            ", ".join(
                f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                for key, value in sorted(metrics.items())
            )
            or "no metrics yet"
        )

    @staticmethod
    def _line(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
