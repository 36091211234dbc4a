"""CaffeNet, the Caffe reference variant of AlexNet, exactly as Yosinski et al. (2014) trained it.

A ``models.network.StagedNetwork`` whose eight stages are the paper's layers ``conv1``..``fc8``: the paper's layer
n is ``STAGE_NAMES[n - 1]``, and ``forward_stages(x, first, last)`` runs layers ``first``..``last`` (``forward`` is
layers 1..8). Defaults are the paper's network (227 pixel input,
60,965,224 parameters with 1000 outputs); narrower widths and smaller kernels give the same
eight-layer structure for 28 to 64 pixel inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from models.dropout import SeededDropout, dropout_seed
from models.network import StagedNetwork, seeded

STAGE_NAMES: tuple[str, ...] = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
PAPER_WIDTHS: tuple[int, ...] = (96, 256, 384, 384, 256, 4096, 4096)

# Caffe's fillers in the paper's prototxt: Gaussian weight std and constant bias per layer.
CAFFE_WEIGHT_STD = {
    "conv1": 0.01,
    "conv2": 0.01,
    "conv3": 0.01,
    "conv4": 0.01,
    "conv5": 0.01,
    "fc6": 0.005,
    "fc7": 0.005,
    "fc8": 0.01,
}
CAFFE_BIAS = {"conv1": 0.0, "conv2": 1.0, "conv3": 0.0, "conv4": 1.0, "conv5": 1.0, "fc6": 1.0, "fc7": 1.0, "fc8": 0.0}

InitName = Literal["caffe", "kaiming"]


def _pool_size(size: int) -> int:
    """Output size of Caffe's 3x3 stride-2 max-pool (ceil mode)."""
    return math.ceil((size - 3) / 2) + 1


def _raw_sizes(input_size: int, conv1_kernel: int, conv1_stride: int, conv1_padding: int) -> list[int]:
    """Sizes after conv1, pool1, conv2, pool2, conv3, conv4, conv5, pool5; 0 where a pool has no 3x3 input."""
    conv1 = (input_size + 2 * conv1_padding - conv1_kernel) // conv1_stride + 1
    pool1 = _pool_size(conv1) if conv1 >= 3 else 0
    pool2 = _pool_size(pool1) if pool1 >= 3 else 0
    pool5 = _pool_size(pool2) if pool2 >= 3 else 0
    return [conv1, pool1, pool1, pool2, pool2, pool2, pool2, pool5]


def min_input_size(conv1_kernel: int, conv1_stride: int, conv1_padding: int) -> int:
    """Smallest input size the network accepts with these conv1 settings."""
    size = 1
    while _raw_sizes(size, conv1_kernel, conv1_stride, conv1_padding)[-1] < 1:
        size += 1
    return size


def feature_map_sizes(input_size: int, conv1_kernel: int, conv1_stride: int, conv1_padding: int) -> list[int]:
    """Spatial sizes after conv1, pool1, conv2, pool2, conv3, conv4, conv5, pool5.

    Raises:
        ValueError: if ``input_size`` is too small for the network's kernels and pools.
    """
    sizes = _raw_sizes(input_size, conv1_kernel, conv1_stride, conv1_padding)
    if sizes[-1] < 1:
        raise ValueError(
            f"model input_size={input_size} is too small for conv1 ({conv1_kernel}x{conv1_kernel}, stride "
            f"{conv1_stride}, pad {conv1_padding}): the maps shrink to {sizes[0]}, {sizes[1]}, {sizes[3]} after "
            "conv1, pool1, pool2, and each of the three 3x3 pools needs at least a 3x3 input. Use an input_size "
            f"of at least {min_input_size(conv1_kernel, conv1_stride, conv1_padding)} for these conv1 settings, "
            "or a smaller conv1_kernel / conv1_stride."
        )
    return sizes


class CaffeNet(StagedNetwork):
    """The eight-layer Caffe reference network (conv1..conv5, fc6..fc8).

    Args:
        num_outputs: Width of fc8. The paper kept 1000 even for 500-class halves.
        in_channels: Input image channels (3 for ImageNet, 1 for Fashion-MNIST).
        input_size: Side of the square input crop (227 in the paper).
        widths: Output widths of layers 1..7 (conv1..conv5, fc6, fc7).
        conv1_kernel: conv1 kernel size (11 in the paper).
        conv1_stride: conv1 stride (4 in the paper).
        conv1_padding: conv1 padding (0 in the paper).
        conv2_kernel: conv2 kernel size (5 in the paper; padded to keep the size).
        groups: Groups of conv2, conv4 and conv5 (2 in the paper, from AlexNet's two GPUs).
        dropout: Dropout probability after fc6 and fc7.
        init_seed: None: the initial weights are drawn from torch's global generator (as any network); an
            integer: from that seed, leaving the global generator as it was (a network's initialisation
            of its own, independent of the data stream and of the other networks built in the process).
        dropout_seed: None: dropout draws its masks from torch's global generator (as any network);
            an integer: from generators of the network's own, seeded from it (``SeededDropout``), so
            the masks do not depend on anything else drawn in the process (networks trained together).
        init: ``caffe`` (the paper's Gaussian fillers and constant biases) or ``kaiming``
            (He-normal weights and zero biases, a deviation for inputs of unit scale).
    """

    stage_names: tuple[str, ...] = STAGE_NAMES  # the paper's layers 1..8; the last (fc8) is the head
    stochastic_stages = frozenset({"fc7", "fc8"})  # each starts with the dropout after the layer before it

    def __init__(
        self,
        num_outputs: int = 1000,
        in_channels: int = 3,
        input_size: int = 227,
        widths: Sequence[int] = PAPER_WIDTHS,
        conv1_kernel: int = 11,
        conv1_stride: int = 4,
        conv1_padding: int = 0,
        conv2_kernel: int = 5,
        groups: int = 2,
        dropout: float = 0.5,
        init_seed: int | None = None,
        dropout_seed: int | None = None,
        init: InitName = "caffe",
    ) -> None:
        super().__init__()
        widths = tuple(widths)
        self._check_arguments(num_outputs, in_channels, widths, groups, dropout, init)
        sizes = feature_map_sizes(input_size, conv1_kernel, conv1_stride, conv1_padding)
        self.input_size = input_size
        self.in_channels = in_channels
        self.feature_map_sizes = sizes
        c1, c2, c3, c4, c5, f6, f7 = widths
        with seeded(init_seed):  # every draw of the initialisation, the layers' default fillers included
            self.conv1 = nn.Conv2d(in_channels, c1, conv1_kernel, stride=conv1_stride, padding=conv1_padding)
            self.conv2 = nn.Conv2d(c1, c2, conv2_kernel, padding=conv2_kernel // 2, groups=groups)
            self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
            self.conv4 = nn.Conv2d(c3, c4, 3, padding=1, groups=groups)
            self.conv5 = nn.Conv2d(c4, c5, 3, padding=1, groups=groups)
            self.fc6 = nn.Linear(c5 * sizes[-1] ** 2, f6)
            self.fc7 = nn.Linear(f6, f7)
            self.fc8 = nn.Linear(f7, num_outputs)
            # Caffe pools in ceil mode and normalises after pooling (CaffeNet, unlike AlexNet).
            self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
            self.relu = nn.ReLU(inplace=True)
            self.drop6 = self._dropout(dropout, dropout_seed, "fc6")
            self.drop7 = self._dropout(dropout, dropout_seed, "fc7")
            self.reset_parameters(init)

    @staticmethod
    def _check_arguments(
        num_outputs: int, in_channels: int, widths: tuple[int, ...], groups: int, dropout: float, init: str
    ) -> None:
        if len(widths) != 7:
            raise ValueError(f"model widths must give 7 numbers (conv1..conv5, fc6, fc7), got {len(widths)}: {widths}")
        for name, value in [("num_outputs", num_outputs), ("in_channels", in_channels), ("groups", groups)]:
            if value < 1:
                raise ValueError(f"model {name} must be positive, got {value}")
        for name, width in zip(STAGE_NAMES, widths):
            if width < 1:
                raise ValueError(f"model widths: {name} width must be positive, got {width}")
        for name, width in zip(("conv1", "conv2", "conv3", "conv4", "conv5"), widths[:5]):
            if width % groups:
                raise ValueError(f"model widths: {name} width {width} is not divisible by groups={groups}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model dropout must be in [0, 1), got {dropout}")
        if init not in ("caffe", "kaiming"):
            raise ValueError(f"model init must be 'caffe' or 'kaiming', got {init!r}")

    @staticmethod
    def _dropout(p: float, seed: int | None, layer: str) -> nn.Module:
        return nn.Dropout(p) if seed is None else SeededDropout(p, dropout_seed(seed, layer))

    def reset_parameters(self, init: InitName = "caffe") -> None:
        """Re-initialise every layer with the given fillers."""
        for name in STAGE_NAMES:
            self.reset_layer(name, init)

    def reset_layer(self, name: str, init: InitName = "caffe") -> None:
        """Re-initialise one named layer."""
        module = getattr(self, name)
        with torch.no_grad():
            if init == "caffe":
                nn.init.normal_(module.weight, mean=0.0, std=CAFFE_WEIGHT_STD[name])
                nn.init.constant_(module.bias, CAFFE_BIAS[name])
            else:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def stage(self, name: str, x: Tensor) -> Tensor:
        """One named layer with its operations (Caffe pools in ceil mode and normalises after pooling).

        A layer's output is taken after its ReLU, pool and norm and before any dropout: the dropout
        after fc6 (fc7) is the first thing layer 7 (8) does. So the output of layer n is what a
        network whose layers 1..n are frozen hands to its first trained layer.
        """
        if name in ("conv1", "conv2"):
            return self.norm(self.pool(self.relu(getattr(self, name)(x))))
        if name in ("conv3", "conv4"):
            return self.relu(getattr(self, name)(x))
        if name == "conv5":
            return torch.flatten(self.pool(self.relu(self.conv5(x))), 1)
        if name == "fc6":
            return self.relu(self.fc6(x))
        if name == "fc7":
            return self.relu(self.fc7(self.drop6(x)))
        return self.fc8(self.drop7(x))
