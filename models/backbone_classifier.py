"""``BackboneClassifier``: the study's LightningModule for a torchvision backbone (ResNet, ViT) and its recipe."""

from __future__ import annotations

from typing import Any

from models.backbones import build_backbone
from models.classifier import TransferClassifier
from models.recipes import ScheduleName
from models.recipes import recipe as named_recipe

# Each backbone's default optimizer recipe (``models.recipes``).
DEFAULT_RECIPES: dict[str, str] = {"resnet18": "sgd", "resnet50": "sgd", "vit_b_16": "adamw", "vit": "adamw"}


class BackboneClassifier(TransferClassifier):
    """A torchvision backbone (``models.backbones``) trained with a named recipe; the paper's metric as for CaffeNet.

    Args:
        backbone: ``resnet18``, ``resnet50``, ``vit_b_16`` or ``vit`` (a small ViT, sized by its options).
        backbone_options: The backbone's options (``models.backbones.build_backbone``): ResNets ``granularity``
            (``block``: a stage per residual block, or ``stage``: per ``layerK``) and ``stem`` (``imagenet``, or
            ``small``: 3x3 stride 1, no max-pool, for 28-32 px); ViTs ``dropout`` and, for ``vit``,
            ``patch_size``, ``num_layers``, ``num_heads``, ``hidden_dim``, ``mlp_dim``.
        num_classes: Classes of the task (linked from ``data.num_classes`` by the CLI).
        num_outputs: Width of the head; None: ``num_classes``.
        in_channels, input_size: The input (linked from the data by the CLI).
        init_seed, dropout_seed: The network's own seeds (see ``models.CaffeNet``).
        recipe: ``sgd``, ``adamw`` or ``caffe``; None: the backbone's (``DEFAULT_RECIPES``: sgd for ResNets,
            adamw for ViTs).
        lr, weight_decay, momentum, lr_schedule, warmup_steps, lr_step_iters, lr_gamma: Changes to the
            recipe (None: the recipe's value; ``momentum`` is AdamW's first beta).
        best_k: The paper's metric is the mean of the ``best_k`` best validation top-1 values (10).
        channels_last: Run the network in channels-last memory format.
        compile: Compile the network with ``torch.compile`` (after any transfer copy).

    Raises:
        ValueError: an unknown backbone, option or recipe, or an invalid setting (named).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        backbone_options: dict[str, Any] | None = None,
        num_classes: int = 500,
        num_outputs: int | None = None,
        in_channels: int = 3,
        input_size: int = 224,
        init_seed: int | None = None,
        dropout_seed: int | None = None,
        recipe: str | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        momentum: float | None = None,
        lr_schedule: ScheduleName | None = None,
        warmup_steps: int | None = None,
        lr_step_iters: int | None = None,
        lr_gamma: float | None = None,
        best_k: int = 10,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        outputs = num_classes if num_outputs is None else num_outputs
        self.check_task(num_classes, outputs)
        net = build_backbone(
            backbone,
            outputs,
            in_channels,
            input_size,
            init_seed=init_seed,
            dropout_seed=dropout_seed,
            **dict(backbone_options or {}),
        )
        solver = named_recipe(
            recipe or DEFAULT_RECIPES[backbone],
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            schedule=lr_schedule,
            warmup_steps=warmup_steps,
            lr_step_iters=lr_step_iters,
            lr_gamma=lr_gamma,
        )
        super().__init__(net, solver, outputs, locals(), best_k=best_k, channels_last=channels_last, compile=compile)
