"""``CaffeNetClassifier``: the LightningModule that trains CaffeNet with the paper's solver (the paper's network)."""

from __future__ import annotations

from collections.abc import Sequence

from models.caffenet import PAPER_WIDTHS, CaffeNet, InitName
from models.classifier import TransferClassifier
from models.recipes import recipe


class CaffeNetClassifier(TransferClassifier):
    """CaffeNet trained as in Yosinski et al. (2014): the ``caffe`` recipe (SGD, Caffe's multipliers, step schedule).

    Args:
        num_classes: Classes of the task (linked from ``data.num_classes`` by the CLI).
        num_outputs: Width of fc8. The paper used 1000 for every task; ``null`` gives a K-way head
            with K = ``num_classes``.
        in_channels, input_size, widths, conv1_kernel, conv1_stride, conv1_padding, conv2_kernel,
        groups, dropout, init_seed, dropout_seed, init: The network's shape, seeds and fillers (see ``CaffeNet``).
        lr: Base learning rate (0.01).
        momentum: SGD momentum (0.9).
        weight_decay: L2 decay on weights (5e-4); biases get none, as in Caffe.
        bias_lr_mult: Learning-rate multiplier of the biases (2, Caffe's ``blobs_lr``).
        lr_step_iters: Iterations between learning-rate drops (100,000 in the paper).
        lr_gamma: Factor of each drop (0.1).
        best_k: The paper's metric is the mean of the ``best_k`` best validation top-1 values (10).
        channels_last: Run the network in channels-last memory format.
        compile: Compile the network with ``torch.compile`` (after any transfer copy).
    """

    def __init__(
        self,
        num_classes: int = 500,
        num_outputs: int | None = 1000,
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
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        bias_lr_mult: float = 2.0,
        lr_step_iters: int = 100_000,
        lr_gamma: float = 0.1,
        best_k: int = 10,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        widths = tuple(widths)
        outputs = num_classes if num_outputs is None else num_outputs
        self.check_task(num_classes, outputs)
        solver = recipe(
            "caffe",
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            bias_lr_mult=bias_lr_mult,
            lr_step_iters=lr_step_iters,
            lr_gamma=lr_gamma,
        )
        net = CaffeNet(
            num_outputs=outputs,
            in_channels=in_channels,
            input_size=input_size,
            widths=widths,
            conv1_kernel=conv1_kernel,
            conv1_stride=conv1_stride,
            conv1_padding=conv1_padding,
            conv2_kernel=conv2_kernel,
            groups=groups,
            dropout=dropout,
            init_seed=init_seed,
            dropout_seed=dropout_seed,
            init=init,
        )
        super().__init__(net, solver, outputs, locals(), best_k=best_k, channels_last=channels_last, compile=compile)
