"""Every rank's random streams: its own under DDP, in every checkpoint, in force again when a resumed fit trains on."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from typing_extensions import override

from models.dropout import SavedStates, SeededDropout, rank_seed, stream_key

RANKS_KEY = "ranks"  # under DDP: every rank's states, by global rank (the top level keeps rank 0's)


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
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    if "torch.cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["torch.cuda"])


def run_seed() -> int:
    """The run's seed: ``seed_everything``'s (the CLI's ``seed_everything`` key), else torch's initial seed."""
    return int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed()))


def seed_rank_stream(rank: int) -> None:
    """Give rank ``rank`` its own torch stream (CPU and every GPU), seeded with ``rank_seed(run_seed(), rank)``."""
    torch.manual_seed(rank_seed(run_seed(), rank))


def all_gather(value: Any, world_size: int) -> list[Any]:
    """Every rank's ``value``, by global rank (a collective: every rank calls it); ``[value]`` on one process."""
    if world_size == 1:
        return [value]
    gathered: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def gather_dropout_states(module: nn.Module, state_dict: dict[str, Any], world_size: int) -> None:
    """Put every rank's ``SeededDropout`` streams into ``state_dict`` (rank 0's module state, which a checkpoint holds).

    A collective: every rank calls it. Each rank's own streams come from that rank; streams of ranks beyond this
    world (a checkpoint of a larger run) are kept as rank 0 held them.
    """
    names = [name for name, layer in module.named_modules() if isinstance(layer, SeededDropout)]
    local = {name: module.get_submodule(name).get_extra_state() for name in names}
    everyone: list[dict[str, SavedStates]] = all_gather(local, world_size)
    for name in names:
        key = f"{name}._extra_state"
        if key not in state_dict:
            continue
        merged = dict(everyone[0][name])
        for rank, states in enumerate(everyone):
            own = stream_key(rank, "")
            merged.update({stream: value for stream, value in states[name].items() if stream.startswith(own)})
        state_dict[key] = merged


class GlobalRNGState(Callback):
    """Gives every DDP rank its own random streams, checkpoints them, and restores them when a fit resumes.

    Dropout (and anything else that draws from torch's global generator in the main process) then draws after a
    resume what the uninterrupted run drew after the same step. ``seed_everything`` seeds every rank alike, so a
    fresh fit reseeds torch on each rank ``r >= 1`` with ``rank_seed(seed, r)`` (rank 0, a single process
    included, keeps its stream): the ranks draw different masks for their different examples. A checkpoint holds
    rank 0's states at its top level (a single process's checkpoint is as before) and, under DDP, every rank's
    under ``ranks``, with every rank's ``SeededDropout`` streams in the module state (:func:`gather_dropout_states`).
    The states are put back in ``on_train_start``, after the restored checkpoint has set up the model, optimizer
    and loops and just before training goes on (sanity validation, skipped on a resume, would otherwise run in
    between). A rank the checkpoint has no state for (saved by fewer ranks) starts its own stream afresh.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, Any] | None = None
        self._world_size = 1  # the trainer's, read at setup (state_dict has no trainer)

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._world_size = trainer.world_size

    @override
    def state_dict(self) -> dict[str, Any]:
        states = collect_rng_states()
        if self._world_size > 1:
            states[RANKS_KEY] = all_gather(states, self._world_size)
        return states

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = state_dict

    @override
    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.world_size > 1:
            gather_dropout_states(pl_module, checkpoint["state_dict"], trainer.world_size)

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        rank, loaded, self._loaded = trainer.global_rank, self._loaded, None
        if loaded is None and trainer.ckpt_path is not None:
            rank_zero_warn(
                f"{trainer.ckpt_path} holds no random generator states (saved without "
                f"{type(self).__name__}): from here on, dropout draws differ from an uninterrupted run's"
            )
        ranks = (loaded or {}).get(RANKS_KEY, [])
        if rank < len(ranks):
            set_rng_states(ranks[rank])
        elif loaded is not None and rank == 0:
            set_rng_states(loaded)
        elif rank > 0:
            seed_rank_stream(rank)
