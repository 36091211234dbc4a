"""The TransferClassifier contract: what a subclass must provide is checked when it is defined and built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning
import pytest
import torch
from torch import Tensor, nn

from models.caffenet_classifier import CaffeNetClassifier
from models.classifier import SUBCLASS_ARGUMENTS, TransferClassifier
from models.loading import load_classifier
from models.network import StagedNetwork
from models.recipes import recipe
from tests.helpers.own_network import PerceptronClassifier, PerceptronStages

SHAPE = dict(num_classes=3, in_channels=1, input_size=8, width=4)


class Contract(TransferClassifier):
    """Builds whatever network, recipe and arguments a test hands it (the class itself keeps the contract)."""

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 1,
        input_size: int = 8,
        init_seed: int | None = None,
        dropout_seed: int | None = None,
        best_k: int = 2,
        channels_last: bool = False,
        compile: bool = False,
        net: Any = None,
        solver: Any = None,
        drop: str | None = None,
    ) -> None:
        arguments = {key: value for key, value in locals().items() if key != drop}
        net = PerceptronStages(num_classes, in_channels, input_size, 4) if net is None else net
        super().__init__(
            net,
            recipe("sgd") if solver is None else solver,
            num_classes,
            arguments,
            best_k=best_k,
            channels_last=channels_last,
            compile=compile,
        )


def test_a_kept_contract_builds_and_records_every_argument() -> None:
    module = Contract(best_k=3)
    assert module.best_k == 3 and module.channels_last is False and module.compile_network is False
    assert module.hparams["_class_path"].endswith("test_classifier_contract.Contract")
    assert {"num_classes", "init_seed", "best_k", "drop"} <= set(module.hparams)


def test_a_subclass_without_the_linked_or_seeded_arguments_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="Seedless must take init_seed, dropout_seed, channels_last in its constructor"):

        class Seedless(TransferClassifier):
            def __init__(
                self,
                num_classes: int,
                in_channels: int,
                input_size: int,
                best_k: int,
                compile: bool,
            ) -> None:
                raise AssertionError("never built")

    assert set(SUBCLASS_ARGUMENTS) >= {"num_classes", "in_channels", "input_size", "init_seed", "dropout_seed"}


def test_a_network_that_is_not_staged_is_refused() -> None:
    with pytest.raises(TypeError, match="Contract built a Sequential: .*must be a models.network.StagedNetwork"):
        Contract(net=nn.Sequential(nn.Flatten(), nn.Linear(64, 3)))


def test_a_stage_name_without_its_module_is_refused() -> None:
    class Misnamed(PerceptronStages):
        stage_names = ("hidden1", "hidden_2", "head")

    with pytest.raises(TypeError, match="Misnamed.stage_names names hidden_2, which it has no module of"):
        Contract(net=Misnamed(3, 1, 8, 4))


def test_a_recipe_that_is_not_one_is_refused() -> None:
    with pytest.raises(TypeError, match="passed a SGD as its recipe"):
        Contract(solver=torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1))


def test_arguments_left_out_are_refused_because_the_checkpoint_could_not_build_it_back() -> None:
    with pytest.raises(TypeError, match="did not pass init_seed to TransferClassifier.__init__"):
        Contract(drop="init_seed")


def test_best_k_below_one_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="model best_k must be a positive integer"):
        PerceptronClassifier(**SHAPE, best_k=0)


def test_a_network_still_naming_layer_names_is_told_the_new_name() -> None:
    with pytest.raises(TypeError, match="sets `layer_names`.*`stage_names`"):

        class Old(StagedNetwork):
            layer_names = ("a", "head")

            def stage(self, name: str, x: Tensor) -> Tensor:
                return x


def test_a_checkpoint_naming_the_old_module_path_loads_as_caffenet_classifier(tmp_path: Path) -> None:
    """Run folders and checkpoints written before the rename record ``models.module.CaffeNetClassifier``."""
    module = CaffeNetClassifier(
        num_classes=3, in_channels=1, input_size=28, widths=(4, 4, 4, 4, 4, 8, 8), conv1_kernel=5, conv1_stride=1
    )
    hyper = {**dict(module.hparams), "_class_path": "models.module.CaffeNetClassifier"}
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": hyper}
    torch.save({**checkpoint, "pytorch-lightning_version": lightning.__version__}, tmp_path / "old.ckpt")
    loaded = load_classifier(tmp_path / "old.ckpt")
    assert type(loaded) is CaffeNetClassifier
    for key, value in module.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
