"""W&B lineage of a fit: the base checkpoint it copied (an input) and its own final checkpoint (an output).

Both are reference artifacts: W&B records the file's path and checksum, nothing is uploaded. An artifact is
named after its file's content, ``checkpoint-<first 16 hex digits of its sha256>``, and holds one entry,
``model.ckpt``; so the base run's output and every transfer run's input are the same artifact version
wherever the file lies, and W&B's lineage graph reads base run -> checkpoint -> transfer run across a study.

W&B refuses ``Run.use_artifact`` offline (this project's default). The input is therefore declared the way
``use_artifact`` declares a new artifact itself: an artifact record flagged ``use_after_commit``
(``Run._log_artifact``, the one private call here, feature-checked), which ``wandb sync`` creates and then
marks as used. It does not wait for a server. Any W&B error becomes a warning; a run without a
``WandbLogger`` is left alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from callbacks.transfer import TransferCallback
from models.base_file import sha256_of

ARTIFACT_TYPE = "model"
ENTRY = "model.ckpt"


class WandbLineage(Callback):
    """Declares a fit's checkpoints to its W&B run, and closes a failed run as failed.

    At fit start, a transfer declares its base checkpoint as an input: the one a ``TransferCallback`` copied
    layers from, or the base of a fused group's cells (``pl_module.cells``, each with a ``transfer_record``).
    At fit end, the run declares ``trainer.checkpoint_callback.last_model_path`` as an output. When a
    fit, validation or test raises, the active W&B run is finished with exit code 1: marked failed at once,
    and closed, so that the next fit in the same process starts its own run instead of reusing it.
    """

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        run = self.wandb_run(trainer)
        if run is None:
            return
        bases = {
            p["sha256"]: p["base_checkpoint"] for p in self.transfer_provenance(trainer, pl_module) if p.get("sha256")
        }  # no sha256: no layer was copied from a base
        for sha256, path in bases.items():
            self._safely("declare the base checkpoint as an input", declare_input, run, path, sha256)

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        run = self.wandb_run(trainer)
        path = getattr(trainer.checkpoint_callback, "last_model_path", "") or ""
        if run is None or not os.path.isfile(path):
            return  # no W&B run, or no local last checkpoint
        self._safely("declare the final checkpoint as an output", declare_output, run, path)

    @override
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not trainer.is_global_zero or not any(isinstance(lg, WandbLogger) for lg in trainer.loggers):
            return
        wandb = sys.modules.get("wandb")  # not imported: no run was started
        run = getattr(wandb, "run", None)
        if run is not None:
            self._safely("mark the failed run as failed", run.finish, exit_code=1)

    @staticmethod
    def wandb_run(trainer: Trainer) -> Any | None:
        """The W&B run of the trainer's ``WandbLogger`` on rank zero; ``None`` elsewhere or without one."""
        if not trainer.is_global_zero:
            return None
        return next((lg.experiment for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)

    @staticmethod
    def transfer_provenance(trainer: Trainer, pl_module: LightningModule) -> list[dict[str, Any]]:
        """The transfer provenance (base_checkpoint, sha256, n, mode) of every network the fit trains.

        A ``TransferCallback``'s ``provenance`` for one network; each cell's ``transfer_record`` for a fused group.
        """
        callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set at run time by Lightning
        found = [cb.provenance for cb in callbacks if isinstance(cb, TransferCallback)]
        records = [getattr(cell, "transfer_record", None) for cell in getattr(pl_module, "cells", ())]
        return found + [record.as_dict() for record in records if record is not None]

    @staticmethod
    def _safely(what: str, action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            action(*args, **kwargs)
        except Exception as err:  # W&B trouble never fails a run
            rank_zero_warn(f"W&B lineage: could not {what} ({type(err).__name__}: {err}); the run goes on without it")


def checkpoint_artifact(path: str, sha256: str) -> Any:
    """A reference artifact for the checkpoint file at ``path`` whose content has this ``sha256``."""
    import wandb

    artifact = wandb.Artifact(f"checkpoint-{sha256[:16]}", type=ARTIFACT_TYPE, metadata={"sha256": sha256})
    artifact.add_reference(f"file://{os.path.abspath(path)}", name=ENTRY, checksum=True)
    return artifact


def declare_input(run: Any, path: str, sha256: str) -> None:
    """Record the checkpoint as an input of ``run``, offline too (see the module's docstring).

    Raises:
        RuntimeError: if this wandb has no ``Run._log_artifact(..., use_after_commit=...)``.
    """
    log_artifact = getattr(run, "_log_artifact", None)
    if log_artifact is None:
        raise RuntimeError("this wandb version cannot record an input artifact without a server")
    log_artifact(checkpoint_artifact(path, sha256), is_user_created=True, use_after_commit=True)


def declare_output(run: Any, path: str) -> None:
    """Record the checkpoint at ``path`` as an output of ``run``."""
    run.log_artifact(checkpoint_artifact(path, sha256_of(path)))
