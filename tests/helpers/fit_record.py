"""A callback that records what a fit's training steps saw: losses, fc6's output dtype, conv2's input memory
format, and the weights before and after the first step (the fast-path tests, on the CPU and on a GPU)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, Trainer


def weights(module: Any) -> dict[str, torch.Tensor]:
    return {
        key: value.detach().float().contiguous().clone()
        for key, value in module.net.state_dict().items()
        if isinstance(value, torch.Tensor)
    }  # not the seeded dropout's generator states


class Record(Callback):
    """Training losses, and the dtype and memory format fc6 and conv2 see inside the step."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.fc6_dtype: torch.dtype | None = None
        self.conv2_channels_last: bool | None = None
        self.initial: dict[str, torch.Tensor] = {}
        self.after_first: dict[str, torch.Tensor] = {}

    def on_fit_start(self, trainer: Trainer, pl_module: Any) -> None:
        net = getattr(pl_module.net, "_orig_mod", pl_module.net)
        net.fc6.register_forward_hook(lambda m, i, o: setattr(self, "fc6_dtype", o.dtype))
        net.conv2.register_forward_pre_hook(
            lambda m, i: setattr(self, "conv2_channels_last", i[0].is_contiguous(memory_format=torch.channels_last))
        )

    def on_train_start(self, trainer: Trainer, pl_module: Any) -> None:
        self.initial = weights(pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.losses.append(float(outputs["loss"]))
        if not self.after_first:
            self.after_first = weights(pl_module)
