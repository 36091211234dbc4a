"""The global random generators' states in every checkpoint, in force again when a resumed fit trains on."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override


def collect_rng_states() -> dict[str, Any]:
    """The states of torch's CPU generator, the current CUDA device's (if CUDA is in use), Python's and NumPy's.

    Plain values and tensors only, so that ``torch.load(weights_only=True)`` reads them back.
    """
    numpy_state = np.random.get_state(legacy=False)
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch.cuda"] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back what :func:`collect_rng_states` returned (the CUDA state on the current device)."""
    torch.set_rng_state(states["torch"])
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = states["numpy"]
    np.random.set_state({
        "bit_generator": numpy_state["bit_generator"],
        "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
        "has_gauss": numpy_state["has_gauss"],
        "gauss": numpy_state["gauss"],
    })
    if "torch.cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["torch.cuda"])


class GlobalRNGState(Callback):
    """Checkpoints the global random generators and restores them when a fit resumes from the checkpoint.

    Dropout (and anything else that draws from torch's global generator in the main process) then draws after a
    resume what the uninterrupted run drew after the same step. The states are put back in ``on_train_start``,
    after the restored checkpoint has set up the model, optimizer and loops and just before training goes on
    (sanity validation, skipped on a resume, would otherwise run in between). Under DDP every rank takes the
    saved state of rank 0: ranks seeded alike by ``seed_everything`` draw alike.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, Any] | None = None

    @override
    def state_dict(self) -> dict[str, Any]:
        return collect_rng_states()

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = state_dict

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._loaded is not None:
            set_rng_states(self._loaded)
            self._loaded = None
        elif trainer.ckpt_path is not None:
            rank_zero_warn(
                f"{trainer.ckpt_path} holds no random generator states (saved without "
                f"{type(self).__name__}): from here on, dropout draws differ from an uninterrupted run's"
            )
