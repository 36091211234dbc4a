"""Every network's own draws come from its own seed; the data stream of a replicate is shared."""

from __future__ import annotations

import torch
from lightning.pytorch import seed_everything

from experiments.study.grid import Cell
from models.caffenet_classifier import CaffeNetClassifier
from tests.helpers.tiny_data import TINY_MODEL

TINY = TINY_MODEL


def initial(seed: int | None) -> dict[str, torch.Tensor]:
    seed_everything(0, verbose=False)
    return CaffeNetClassifier(**TINY, init_seed=seed).net.state_dict()


def test_network_seed_is_the_cells_own_and_stable() -> None:
    """A BnB cell's network seed is not its base's, nor another cell's, and does not change between calls."""
    base = Cell("random0", None, "B", 0, None, 0)
    cells = [
        base,
        *(Cell("random0", "B", "B", n, "frozen", 0) for n in (1, 3)),
        Cell("random0", "A", "B", 3, "frozen", 0),
        Cell("random0", "B", "B", 3, "frozen", 1),
    ]
    seeds = [cell.network_seed for cell in cells]
    assert len(set(seeds)) == len(seeds)
    assert cells[2].network_seed == Cell("random0", "B", "B", 3, "frozen", 0).network_seed


def test_a_transfers_fresh_layers_are_not_its_bases_initial_ones() -> None:
    """BnB's layers n+1..8 start from its own draw, not the one its base started from (same replicate seed)."""
    base = Cell("random0", None, "B", 0, None, 0)
    selffer = Cell("random0", "B", "B", 3, "frozen", 0)
    base_start, selffer_start = initial(base.network_seed), initial(selffer.network_seed)
    for layer in ("conv4", "fc6", "fc7", "fc8"):
        assert not torch.equal(base_start[f"{layer}.weight"], selffer_start[f"{layer}.weight"]), layer


def test_init_seed_reproduces_and_leaves_the_global_stream_alone() -> None:
    """The same init_seed gives the same weights; building the network draws nothing from the global generator."""
    assert all(torch.equal(a, b) for a, b in zip(initial(5).values(), initial(5).values()))
    seed_everything(0, verbose=False)
    expected = torch.rand(3)
    seed_everything(0, verbose=False)
    CaffeNetClassifier(**TINY, init_seed=5)
    assert torch.equal(torch.rand(3), expected)  # the data stream after it is the replicate's
    seed_everything(0, verbose=False)
    CaffeNetClassifier(**TINY)
    assert not torch.equal(torch.rand(3), expected)  # without it, building consumes the global stream
