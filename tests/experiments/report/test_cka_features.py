"""Two networks compared stage by stage with debiased linear CKA: tiny CaffeNets, a loader read no further than
needed, and the inputs refused."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from experiments.report.cka_features import stage_cka, stage_cka_and_chance
from models.caffenet import CaffeNet
from tests.helpers.cka import STAGES, gaussian
from tests.helpers.tiny_data import TINY_NETWORK


def tiny_net(seed: int) -> CaffeNet:
    return CaffeNet(in_channels=1, input_size=28, init_seed=seed, **TINY_NETWORK)


def test_same_network_twice_gives_one_at_every_transferable_stage():
    """Every stage but the head, each exactly 1; the network's mode is restored and no gradient is kept."""
    net = tiny_net(1).train()
    values = stage_cka(net, net, gaussian(120, 1, 28, 28, seed=9))
    assert tuple(values) == STAGES
    assert all(value == pytest.approx(1.0, abs=1e-9) for value in values.values())
    assert net.training and all(parameter.grad is None for parameter in net.parameters())


def test_independently_initialised_networks_agree_less_and_less_with_depth():
    """Two initialisations: below 1 at every stage, and lower at the later stages than at the first; the chance
    baseline, from the same features, about 0 at every stage."""
    both = stage_cka_and_chance(tiny_net(1), tiny_net(2), gaussian(200, 1, 28, 28, seed=10))
    values = {stage: value for stage, (value, _) in both.items()}
    assert values == stage_cka(tiny_net(1), tiny_net(2), gaussian(200, 1, 28, 28, seed=10))
    assert all(-0.05 < value < 0.95 for value in values.values())
    assert values["fc7"] < values["conv2"] < values["conv1"]
    assert max(values["fc6"], values["fc7"]) < 0.5 * values["conv1"]
    assert all(abs(chance) < 0.03 for _, chance in both.values())


def test_stage_cka_reads_a_loader_up_to_max_images_and_takes_b_inputs():
    """A loader of (images, labels) is read up to max_images only: the same values as the first images as a
    tensor; ``images_b`` shifted by a constant (another mean image) changes nothing at the first stage's input."""
    images = gaussian(100, 1, 28, 28, seed=11)
    net_a, net_b = tiny_net(1), tiny_net(2)
    seen = []

    class Counting(DataLoader):
        def __iter__(self):
            for batch in super().__iter__():
                seen.append(len(batch[0]))
                yield batch

    loader = Counting(TensorDataset(images, torch.zeros(100)), batch_size=16)
    assert stage_cka(net_a, net_b, loader, max_images=40) == pytest.approx(stage_cka(net_a, net_b, images[:40]))
    assert sum(seen) == 48  # three batches: no further than needed
    with pytest.raises(ValueError, match="same images"):
        stage_cka(net_a, net_b, images, max_images=40, images_b=images[:30])
    with pytest.raises(ValueError, match="expects input"):
        stage_cka(net_a, net_b, gaussian(10, 3, 28, 28))
    with pytest.raises(ValueError, match="at least 4"):
        stage_cka(net_a, net_b, images, max_images=3)
