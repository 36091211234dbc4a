"""Optimizer recipes, one per kind of backbone, each named: which parameters decay, which optimizer, which schedule.

- ``caffe``: the paper's solver for CaffeNet (``models.caffenet_classifier.CaffeNetClassifier``): SGD with momentum,
  weights at the base rate with L2 decay, biases at ``bias_lr_mult`` times it without decay, Caffe's
  ``step`` policy (x ``lr_gamma`` every ``lr_step_iters``).
- ``sgd`` (ResNet's default): SGD with momentum 0.9 and decay 5e-4 on the convolution and linear
  weights only (no decay on norms and biases), a linear warm-up then a cosine to 0 at the fit's last step.
- ``adamw`` (ViT's default): AdamW (betas 0.9, 0.999), decay 0.05 on weight matrices only (no decay on
  norms, biases, the class token or the position embedding), a linear warm-up then a cosine to 0.

A recipe only sees parameters that require grad: a transfer's frozen stages never reach the optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from models.schedule import caffe_step_factor

ScheduleName = Literal["step", "cosine"]
# Which parameters decay: ``weights`` (Caffe: all but biases) or ``matrices`` (weight matrices only: no norms,
# biases or learned tokens); each rule's two optimizer groups, the decaying one first.
DecayRule = Literal["weights", "matrices"]
GROUP_NAMES: dict[str, tuple[str, str]] = {"weights": ("weights", "biases"), "matrices": ("decay", "no_decay")}
# Parameters without weight decay in the sgd and adamw recipes: every tensor of one dimension (biases, norm
# weights) and the ViT's learned tokens.
NO_DECAY_NAMES: tuple[str, ...] = ("class_token", "pos_embedding")


@dataclass(frozen=True)
class Recipe:
    """An optimizer recipe: its optimizer, rates, decay rule and schedule.

    Args:
        name: The recipe's name (``caffe``, ``sgd``, ``adamw``).
        optimizer: ``sgd`` or ``adamw``.
        lr: Base learning rate.
        weight_decay: Decay of the parameters that decay.
        momentum: SGD momentum (``sgd``), or AdamW's first beta (``adamw``).
        schedule: ``step`` (x ``lr_gamma`` every ``lr_step_iters``) or ``cosine`` (to 0 at the last step).
        warmup_steps: Steps of linear warm-up from ``lr / warmup_steps`` (0: none).
        decay: Which parameters decay (``DecayRule``): ``weights`` or ``matrices``.
        bias_lr_mult: Learning-rate multiplier of the group that does not decay (``caffe``: 2 for its biases).
        lr_step_iters: Steps between drops of the ``step`` schedule.
        lr_gamma: Factor of each drop of the ``step`` schedule.
    """

    name: str
    optimizer: Literal["sgd", "adamw"]
    lr: float
    weight_decay: float
    momentum: float = 0.9
    schedule: ScheduleName = "cosine"
    warmup_steps: int = 0
    decay: DecayRule = "matrices"
    bias_lr_mult: float = 1.0
    lr_step_iters: int = 100_000
    lr_gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"model lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"model weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"model warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.lr_step_iters < 1:
            raise ValueError(f"model lr_step_iters must be positive, got {self.lr_step_iters}")
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"model lr_schedule must be 'step' or 'cosine', got {self.schedule!r}")

    def with_overrides(self, **values: Any) -> Recipe:
        """This recipe with the given fields changed (None values keep the recipe's)."""
        return replace(self, **{key: value for key, value in values.items() if value is not None})

    def parameter_groups(self, named_parameters: Iterable[tuple[str, nn.Parameter]]) -> list[dict[str, Any]]:
        """The optimizer's groups over the parameters that require grad (empty groups left out)."""
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, param in named_parameters:
            if param.requires_grad:
                (decay if self._decays(name, param) else no_decay).append(param)
        extra = {"momentum": self.momentum} if self.optimizer == "sgd" else {"betas": (self.momentum, 0.999)}
        decaying, other = GROUP_NAMES[self.decay]
        groups = [
            {"name": decaying, "params": decay, "lr": self.lr, "weight_decay": self.weight_decay},
            {"name": other, "params": no_decay, "lr": self.lr * self.bias_lr_mult, "weight_decay": 0.0},
        ]
        return [{**group, **extra} for group in groups if group["params"]]

    def _decays(self, name: str, param: nn.Parameter) -> bool:
        if self.decay == "weights":
            return not name.endswith("bias")
        return param.ndim > 1 and not any(part in NO_DECAY_NAMES for part in name.split("."))

    def make_optimizer(self, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        """The recipe's optimizer over ``groups`` (each group carries its own rate, decay and momentum)."""
        if self.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum)
        return torch.optim.AdamW(groups, lr=self.lr, betas=(self.momentum, 0.999))

    def lr_factor(self, step: int, total_steps: int | None) -> float:
        """Multiplier of every group's base rate at ``step`` of a fit of ``total_steps`` steps.

        Raises:
            ValueError: a cosine schedule with no known length (``total_steps`` None).
        """
        if self.warmup_steps and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.schedule == "step":
            return caffe_step_factor(step, self.lr_step_iters, self.lr_gamma)
        if total_steps is None:
            raise ValueError(f"the {self.name} recipe's cosine schedule needs the fit's length: set trainer.max_steps")
        span = max(1, total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


RECIPES: dict[str, Recipe] = {
    "caffe": Recipe("caffe", "sgd", lr=0.01, weight_decay=5e-4, schedule="step", decay="weights", bias_lr_mult=2.0),
    "sgd": Recipe("sgd", "sgd", lr=0.1, weight_decay=5e-4, schedule="cosine", warmup_steps=0),
    "adamw": Recipe("adamw", "adamw", lr=1e-3, weight_decay=0.05, schedule="cosine", warmup_steps=0),
}


def recipe(name: str, **overrides: Any) -> Recipe:
    """The named recipe with ``overrides`` (None values keep the recipe's).

    Raises:
        ValueError: an unknown name, listing the recipes.
    """
    if name not in RECIPES:
        raise ValueError(f"model recipe {name!r} is not one of {', '.join(RECIPES)}")
    return RECIPES[name].with_overrides(**overrides)
