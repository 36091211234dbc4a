"""The messages that are noise for this project, and the one function that silences them (:func:`silence_noise`).

Nothing is silenced at import: the entry points (``experiments.entry.console``) and the CLI (every fit comes through
``experiments.cli.TransferCLI``) call :func:`silence_noise`; everything else about warnings is left alone, so a real
problem still shows.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

# Noise for this project, each matched exactly. Lightning on torch 2.14 warns at every fit about its own use
# of a deprecated pytree API; with SLURM installed it suggests `srun` at every fit (study jobs reach SLURM
# through submitit); its litlogger tip is advertising. A study hands the CLI its arguments in-process while sys.argv
# holds the study's own, and LightningCLI warns about that mix.
NOISY_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",
    r"The `srun` command is available on your system",
    r"LightningCLI's args parameter is intended",
)
NOISY_LOGS = ("Tip: For seamless cloud logging",)


class _DropMessages(logging.Filter):
    """Drops log records whose message contains one of ``parts``."""

    def __init__(self, parts: Sequence[str]) -> None:
        super().__init__()
        self.parts = tuple(parts)

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(part in record.getMessage() for part in self.parts)


def silence_noise() -> None:
    """Silence the messages that are noise for this project (``NOISY_WARNINGS``, ``NOISY_LOGS``); idempotent.

    W&B's own noise ("anonymous setting", "git root") is removed at its cause (``experiments.wandb_setup``) and
    "Checkpoint directory ... exists and is not empty" only on a resume (``experiments.cli``).
    """
    for message in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in log.filters):
            log.addFilter(_DropMessages(NOISY_LOGS))
