"""A researcher's own network, written as docs/backbones.md's "Your own network" says: a ``StagedNetwork`` (named
stages, the head last) and a ``TransferClassifier`` that builds it with a named recipe. Nothing else of the
project knows it; the tests run it through the transfer, a fused study and the loaders."""

from __future__ import annotations

from torch import Tensor, nn

from models.classifier import TransferClassifier
from models.network import StagedNetwork, seeded
from models.recipes import recipe


class PerceptronStages(StagedNetwork):
    """Two hidden layers and a head: stages ``hidden1``, ``hidden2``, ``head`` (so n = 1, 2)."""

    stage_names = ("hidden1", "hidden2", "head")

    def __init__(self, num_outputs: int, in_channels: int, input_size: int, width: int) -> None:
        super().__init__()
        self.in_channels, self.input_size = in_channels, input_size
        self.hidden1 = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size**2, width), nn.ReLU())
        self.hidden2 = nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU())
        self.head = nn.Linear(width, num_outputs)

    def stage(self, name: str, x: Tensor) -> Tensor:
        return getattr(self, name)(x)


class PerceptronClassifier(TransferClassifier):
    """``PerceptronStages`` trained with the ``sgd`` recipe; the study sets ``init_seed`` and ``dropout_seed``."""

    def __init__(
        self,
        num_classes: int = 3,
        num_outputs: int | None = None,
        in_channels: int = 1,
        input_size: int = 28,
        width: int = 16,
        init_seed: int | None = None,
        dropout_seed: int | None = None,
        lr: float = 0.05,
        best_k: int = 2,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        outputs = num_classes if num_outputs is None else num_outputs
        self.check_task(num_classes, outputs)
        with seeded(init_seed):
            net = PerceptronStages(outputs, in_channels, input_size, width)
        super().__init__(
            net, recipe("sgd", lr=lr), outputs, locals(), best_k=best_k, channels_last=channels_last, compile=compile
        )
