"""What every network of a transfer study is: an ordered list of named stages, the head last.

The paper's network is CaffeNet's eight layers (``conv1``..``fc7`` and the head ``fc8``); a ResNet's
are its stem and residual blocks, a ViT's its patch embedding and encoder blocks
(``models.backbones``). The transfer core (``models.transfer``) copies and freezes stages 1..n by
name, the fused groups run stage ranges (``forward_stages``), the layer-similarity panel reads each
stage's output; none of them knows more of a network than this class says.

A stage is an attribute of the network named as in ``stage_names`` (so its parameters are
``<stage>.<...>`` in the state dict). Subclasses implement :meth:`stage` and set ``stage_names``,
``in_channels`` and ``input_size``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Draw from ``seed`` inside the block and leave torch's global CPU generator as it was (None: draw from it).

    A network built inside ``seeded(init_seed)`` has an initialisation of its own, independent of the data
    stream and of the other networks built in the process.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class StagedNetwork(nn.Module):
    """A network run as named stages: stage n's output is what a network frozen up to n trains on.

    Class attributes:
        stage_names: The stages in order, the head last (the paper's layers 1..8 for CaffeNet).
        stochastic_stages: Stages whose first operation draws randomness of the network's own (CaffeNet's
            fc7 and fc8 start with dropout): a fused group cannot share them between networks.
    """

    stage_names: tuple[str, ...] = ()
    stochastic_stages: frozenset[str] = frozenset()
    in_channels: int
    input_size: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "layer_names" in vars(cls):
            raise TypeError(
                f"{cls.__name__} sets `layer_names`: a StagedNetwork names its stages in `stage_names` "
                "(renamed on 2026-12-07); rename the attribute"
            )

    def __init__(self) -> None:
        super().__init__()
        self._kept_in_eval: list[str] = []

    def stage(self, name: str, x: Tensor) -> Tensor:
        """Run one named stage on the output of the stage before it (the image for the first)."""
        raise NotImplementedError

    def forward_stages(self, x: Tensor, first: int = 1, last: int | None = None) -> Tensor:
        """Stages ``first``..``last`` (1-based; ``last`` None: the head) on ``x``, the output of stage ``first - 1``.

        Raises:
            ValueError: if ``first``..``last`` is not a range within the network's stages.
        """
        count = len(self.stage_names)
        last = count if last is None else last
        if not 1 <= first <= last <= count:
            raise ValueError(
                f"forward_stages needs 1 <= first <= last <= {count} "
                f"({', '.join(self.stage_names)}), got {first}..{last}"
            )
        for index in range(first, last + 1):
            x = self.stage(self.stage_names[index - 1], x)
        return x

    def check_input(self, x: Tensor) -> None:
        """Raise a ValueError naming the shapes if ``x`` is not a batch of the network's input."""
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"{type(self).__name__} expects input of shape (batch, {self.in_channels}, {self.input_size}, "
                f"{self.input_size}), got {tuple(x.shape)}: check the data crop size against model input_size"
            )

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.forward_stages(x)

    def shareable_depth(self, n: int) -> int:
        """How many of stages 1..n networks with the same frozen stages 1..n can run once for all of them."""
        depth = 0
        for name in self.stage_names[:n]:
            if name in self.stochastic_stages:
                break
            depth += 1
        return depth

    def keep_in_eval(self, modules: Iterable[str]) -> None:
        """Keep the named submodules in eval mode whatever ``train()`` is called with (frozen batch norms)."""
        self._kept_in_eval = sorted(set(self._kept_in_eval) | set(modules))
        self.train(self.training)

    @property
    def kept_in_eval(self) -> tuple[str, ...]:
        """The submodules :meth:`keep_in_eval` holds in eval mode."""
        return tuple(self._kept_in_eval)

    def train(self, mode: bool = True) -> StagedNetwork:
        super().train(mode)
        for name in self._kept_in_eval:
            self.get_submodule(name).train(False)
        return self
