"""What the machine a CLI run is on offers it: a GPU for a GPU accelerator, a terminal for a progress bar.

The CLI (``experiments.cli.TransferCLI``) refuses a GPU config on a machine without one (:func:`check_accelerator`)
and prints plain progress lines where tqdm's bar would not show (:func:`plain_progress_wanted`).
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ProgressBar

from experiments.errors import SettingError


def check_accelerator(config: Any) -> None:
    """Refuse a GPU accelerator on a machine without one, saying how to run the config on the CPU.

    Raises:
        SettingError: ``trainer.accelerator`` is ``gpu`` or ``cuda`` and torch sees no CUDA device.
    """
    accelerator = str(config.trainer.accelerator).lower()
    if accelerator not in ("gpu", "cuda") or torch.cuda.is_available():
        return
    data = config.get("data")
    root = data.init_args.get("root") if isinstance(data, Namespace) and data.get("init_args") else None
    where = f" (now {root!r})" if root else ""
    raise SettingError(
        f"--trainer.accelerator {accelerator}: this config expects a GPU and torch sees none. To run it on the CPU "
        "add `--trainer.accelerator cpu --trainer.devices 1 --trainer.strategy auto` (and a smaller "
        f"--data.init_args.batch_size), and point --data.init_args.root at your dataset{where}"
    )


def plain_progress_wanted(trainer: Namespace) -> bool:
    """Whether the fit should print plain progress lines: a progress bar is on, stderr is not a terminal, and
    the config names no progress bar of its own."""
    callbacks = trainer.get("callbacks") or []
    own = any(isinstance(cb, ProgressBar) for cb in (callbacks if isinstance(callbacks, list) else [callbacks]))
    return trainer.get("enable_progress_bar") is not False and not own and not sys.stderr.isatty()
