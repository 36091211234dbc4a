"""Caffe's ``step`` learning-rate policy, counted in iterations."""

from __future__ import annotations


def caffe_step_factor(iteration: int, step_iters: int, gamma: float) -> float:
    """Multiplier of the base learning rate at ``iteration``: ``gamma ** (iteration // step_iters)``."""
    return gamma ** (iteration // step_iters)
