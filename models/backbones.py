"""Torchvision backbones as staged networks: ResNet-18/50 and Vision Transformers, randomly initialised.

Each network is built by torchvision's own builder (``resnet18``, ``resnet50``, ``vit_b_16``) or class
(``VisionTransformer`` for the small ViT) with ``weights=None``, and its modules are regrouped, not
copied, into the stages of a :class:`models.network.StagedNetwork`:

- ResNet: ``stem`` (conv1, bn1, relu, maxpool), then per residual block ``layer1_0``..``layer4_1``
  (``granularity="block"``; ResNet-50: ``layer1_0``..``layer4_2``) or per torchvision layer
  ``layer1``..``layer4`` (``granularity="stage"``), then ``head`` (average pool, flatten, fc).
  Stage outputs are feature maps.
- ViT: ``embed`` (patch projection, class token, position embedding, embedding dropout), ``block1``..``blockL``
  (the encoder layers), then ``head`` (the encoder's final LayerNorm and the linear classifier on the class
  token). Stage outputs are token sequences (batch, tokens, hidden).

``forward`` runs the same modules in the same order as the torchvision model's forward. Every draw of the
initialisation happens inside ``seeded(init_seed)``, the replaced modules (a small or non-RGB ResNet stem, a
non-RGB patch projection) after torchvision's own draws, so an RGB ImageNet-stem network has exactly the
weights torchvision's builder draws from the same seed.
"""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from typing import Any, Literal

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.vision_transformer import VisionTransformer

from models.dropout import SeededDropout
from models.dropout import dropout_seed as layer_dropout_seed
from models.network import StagedNetwork, seeded

Granularity = Literal["block", "stage"]
StemName = Literal["imagenet", "small"]

RESNET_ARCHS: tuple[str, ...] = ("resnet18", "resnet50")
GRANULARITIES: tuple[str, ...] = ("block", "stage")
STEMS: tuple[str, ...] = ("imagenet", "small")
# The small ViT (``vit``) for 28-32 px inputs: 7x7 patches of 4 px at 28 px, 6 blocks of width 96
# (4 heads of 24), MLP width 4 x hidden as in ViT-B; about 0.68 M parameters with 10 outputs.
SMALL_VIT: dict[str, int] = {"patch_size": 4, "num_layers": 6, "num_heads": 4, "hidden_dim": 96}
MLP_RATIO = 4  # the small ViT's default mlp_dim is MLP_RATIO * hidden_dim (ViT-B: 3072 = 4 x 768)


def _positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"model {name} must be positive, got {value}")


def _choice(setting: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"model {setting} must be one of {', '.join(valid)}; got {value!r}")


class _ModuleStages(StagedNetwork):
    """A staged network whose every stage is the submodule of its name."""

    def stage(self, name: str, x: Tensor) -> Tensor:
        return getattr(self, name)(x)


def resnet_feature_sizes(input_size: int, stem: str) -> list[int]:
    """Spatial sizes after the stem and after layer1..layer4 (every stride-2 op maps s to (s - 1) // 2 + 1)."""

    def halve(size: int) -> int:  # 7x7/2 pad 3, 3x3/2 pad 1 and 1x1/2 pad 0 alike
        return (size - 1) // 2 + 1

    size = halve(halve(input_size)) if stem == "imagenet" else input_size
    sizes = [size, size]
    for _ in range(3):
        sizes.append(halve(sizes[-1]))
    return sizes


class ResNetStages(_ModuleStages):
    """torchvision's ResNet-18 or ResNet-50 (``arch``) as stages: the stem, the residual blocks or layers, the head.

    Args:
        arch: ``resnet18`` or ``resnet50`` (torchvision's builders of those names).
        num_outputs: Width of the head's fc.
        in_channels: Input channels; other than 3, conv1 is replaced by the same conv on ``in_channels``.
        input_size: Side of the square input.
        granularity: ``block`` (each residual block a stage: ResNet-18 has stem + 8 blocks) or ``stage``
            (torchvision's layer1..layer4).
        stem: ``imagenet`` (torchvision's 7x7 stride-2 conv and 3x3 stride-2 max-pool) or ``small``
            (3x3 stride-1 conv and no max-pool, for 28-32 px inputs).
        zero_init_residual: torchvision's option: zero the last BN of each residual branch.
        init_seed: Seed of every draw of the initialisation (None: torch's global generator).
        dropout_seed: Accepted for a uniform interface; a ResNet has no dropout.
    """

    def __init__(
        self,
        arch: str = "resnet18",
        num_outputs: int = 1000,
        in_channels: int = 3,
        input_size: int = 224,
        granularity: Granularity = "block",
        stem: StemName = "imagenet",
        zero_init_residual: bool = False,
        init_seed: int | None = None,
        dropout_seed: int | None = None,
    ) -> None:
        super().__init__()
        _choice("backbone", arch, RESNET_ARCHS)
        _choice("granularity", granularity, GRANULARITIES)
        _choice("stem", stem, STEMS)
        _positive(num_outputs=num_outputs, in_channels=in_channels)
        sizes = resnet_feature_sizes(input_size, stem)
        if input_size < 1 or min(sizes) < 1:
            raise ValueError(
                f"model input_size={input_size} is too small for the {stem} ResNet stem: the feature "
                f"maps after the stem and layer1..layer4 would be {sizes} px (each must be >= 1)"
            )
        self.arch, self.granularity, self.stem_name = arch, granularity, stem
        self.in_channels, self.input_size, self.feature_map_sizes = in_channels, input_size, sizes
        with seeded(init_seed):
            model = getattr(torchvision.models, arch)(
                weights=None, num_classes=num_outputs, zero_init_residual=zero_init_residual
            )
            if stem == "small" or in_channels != 3:
                kernel, stride, padding = (7, 2, 3) if stem == "imagenet" else (3, 1, 1)
                model.conv1 = nn.Conv2d(in_channels, model.conv1.out_channels, kernel, stride, padding, bias=False)
                nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
            if stem == "small":
                model.maxpool = nn.Identity()
        self.stem = nn.Sequential(OrderedDict(conv1=model.conv1, bn1=model.bn1, relu=model.relu, maxpool=model.maxpool))
        names = ["stem"]
        for layer_name in ("layer1", "layer2", "layer3", "layer4"):
            layer = getattr(model, layer_name)
            if granularity == "stage":
                setattr(self, layer_name, layer)
                names.append(layer_name)
            else:
                for index, block in enumerate(layer):
                    setattr(self, f"{layer_name}_{index}", block)
                    names.append(f"{layer_name}_{index}")
        self.head = nn.Sequential(OrderedDict(avgpool=model.avgpool, flatten=nn.Flatten(1), fc=model.fc))
        self.stage_names = (*names, "head")


class ViTEmbed(nn.Module):
    """Patch projection, class token, position embedding and embedding dropout: image -> (batch, tokens, hidden)."""

    def __init__(
        self, conv_proj: nn.Conv2d, class_token: nn.Parameter, pos_embedding: nn.Parameter, dropout: nn.Module
    ) -> None:
        super().__init__()
        self.conv_proj = conv_proj
        self.class_token = class_token
        self.pos_embedding = pos_embedding
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)  # (n, hidden, h/p, w/p) -> (n, patches, hidden)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.dropout(x + self.pos_embedding)


class ViTHead(nn.Module):
    """The encoder's final LayerNorm, then the classifier on the class token: (batch, tokens, hidden) -> logits."""

    def __init__(self, ln: nn.Module, fc: nn.Module) -> None:
        super().__init__()
        self.ln = ln
        self.fc = fc

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.ln(x)[:, 0])


class ViTStages(_ModuleStages):
    """torchvision's Vision Transformer as stages: ``embed``, ``block1``..``blockL``, ``head``.

    ``arch="vit_b_16"`` is torchvision's ViT-B/16 builder (patch 16, 12 blocks, 12 heads, width 768, MLP 3072);
    its architecture arguments must be left None. ``arch="vit"`` is ``VisionTransformer`` built directly,
    with ``SMALL_VIT`` for the arguments left None (``mlp_dim``: ``MLP_RATIO * hidden_dim``).

    Args:
        arch: ``vit_b_16`` or ``vit``.
        num_outputs: Width of the classifier.
        in_channels: Input channels; other than 3, the patch projection is replaced (torchvision's init).
        input_size: Side of the square input (torchvision's ``image_size``); a multiple of ``patch_size``.
        patch_size, num_layers, num_heads, hidden_dim, mlp_dim: The small ViT's architecture.
        dropout: torchvision's dropout (after the embedding, the attention and each MLP linear).
        attention_dropout: torchvision's dropout on the attention weights (inside ``nn.MultiheadAttention``).
        init_seed: Seed of every draw of the initialisation (None: torch's global generator).
        dropout_seed: None: dropout draws from torch's global generator; an integer (with ``dropout`` > 0):
            every ``nn.Dropout`` becomes a ``SeededDropout`` seeded from it and its module name.
    """

    def __init__(
        self,
        arch: str = "vit",
        num_outputs: int = 1000,
        in_channels: int = 3,
        input_size: int = 28,
        patch_size: int | None = None,
        num_layers: int | None = None,
        num_heads: int | None = None,
        hidden_dim: int | None = None,
        mlp_dim: int | None = None,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        init_seed: int | None = None,
        dropout_seed: int | None = None,
    ) -> None:
        super().__init__()
        _choice("backbone", arch, ("vit_b_16", "vit"))
        given = {
            "patch_size": patch_size,
            "num_layers": num_layers,
            "num_heads": num_heads,
            "hidden_dim": hidden_dim,
            "mlp_dim": mlp_dim,
        }
        if arch == "vit_b_16":
            fixed = sorted(name for name, value in given.items() if value is not None)
            if fixed:
                raise ValueError(
                    f"model {', '.join(fixed)}: vit_b_16 is torchvision's ViT-B/16 and fixes its "
                    "architecture; use backbone 'vit' to choose patch_size, num_layers, num_heads, "
                    "hidden_dim, mlp_dim"
                )
            config = {"patch_size": 16, "num_layers": 12, "num_heads": 12, "hidden_dim": 768, "mlp_dim": 3072}
        else:
            config = {
                name: SMALL_VIT[name] if value is None else value for name, value in given.items() if name != "mlp_dim"
            }
            config["mlp_dim"] = MLP_RATIO * config["hidden_dim"] if mlp_dim is None else mlp_dim
        _positive(num_outputs=num_outputs, in_channels=in_channels, input_size=input_size, **config)
        if input_size % config["patch_size"]:
            raise ValueError(f"model input_size={input_size} is not divisible by patch_size={config['patch_size']}")
        if config["hidden_dim"] % config["num_heads"]:
            raise ValueError(
                f"model hidden_dim={config['hidden_dim']} is not divisible by num_heads={config['num_heads']}"
            )
        for name, p in (("dropout", dropout), ("attention_dropout", attention_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"model {name} must be in [0, 1), got {p}")
        if attention_dropout > 0 and dropout_seed is not None:
            raise ValueError(
                f"model attention_dropout={attention_dropout} with a dropout_seed: nn.MultiheadAttention "
                "draws its attention dropout from torch's global generator, which a dropout_seed "
                "cannot seed; use attention_dropout=0"
            )
        self.arch, self.config = arch, {**config, "dropout": dropout, "attention_dropout": attention_dropout}
        self.in_channels, self.input_size = in_channels, input_size
        with seeded(init_seed):
            rates = {"dropout": dropout, "attention_dropout": attention_dropout}
            if arch == "vit_b_16":
                model = torchvision.models.vit_b_16(
                    weights=None, image_size=input_size, num_classes=num_outputs, **rates
                )
            else:
                model = VisionTransformer(image_size=input_size, num_classes=num_outputs, **config, **rates)
            if in_channels != 3:
                conv = nn.Conv2d(in_channels, model.hidden_dim, model.patch_size, stride=model.patch_size)
                fan_in = in_channels * model.patch_size**2
                nn.init.trunc_normal_(conv.weight, std=math.sqrt(1 / fan_in))
                assert conv.bias is not None  # Conv2d's default bias=True
                nn.init.zeros_(conv.bias)
                model.conv_proj = conv
        encoder = model.encoder
        self.embed = ViTEmbed(model.conv_proj, model.class_token, encoder.pos_embedding, encoder.dropout)
        blocks = [f"block{index}" for index in range(1, len(encoder.layers) + 1)]
        for name, layer in zip(blocks, encoder.layers):
            setattr(self, name, layer)
        self.head = ViTHead(encoder.ln, model.heads)
        self.stage_names = ("embed", *blocks, "head")
        self.stochastic_stages = frozenset(
            (["embed", *blocks] if dropout > 0 else []) + (blocks if attention_dropout > 0 else [])
        )
        if dropout > 0 and dropout_seed is not None:
            self._seed_dropouts(dropout_seed)

    def _seed_dropouts(self, seed: int) -> None:
        """Replace every ``nn.Dropout`` by a ``SeededDropout`` of its rate, seeded from ``seed`` and its name."""
        for name, module in list(self.named_modules()):
            if isinstance(module, nn.Dropout):
                parent_name, _, child = name.rpartition(".")
                seeded_dropout = SeededDropout(module.p, layer_dropout_seed(seed, name))
                self.get_submodule(parent_name).register_module(child, seeded_dropout)


# name -> (class, fixed arguments); the options of a name are the class's other keyword arguments.
BACKBONES: dict[str, tuple[type[ResNetStages | ViTStages], dict[str, Any]]] = {
    "resnet18": (ResNetStages, {"arch": "resnet18"}),
    "resnet50": (ResNetStages, {"arch": "resnet50"}),
    "vit_b_16": (ViTStages, {"arch": "vit_b_16"}),
    "vit": (ViTStages, {"arch": "vit"}),
}
_COMMON = ("arch", "num_outputs", "in_channels", "input_size", "init_seed", "dropout_seed")
_VIT_ARCHITECTURE = ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim")


def backbone_options(name: str) -> tuple[str, ...]:
    """The options ``build_backbone`` accepts for backbone ``name`` beyond the common arguments."""
    cls, _ = BACKBONES[name]
    options = [option for option in inspect.signature(cls.__init__).parameters if option not in ("self", *_COMMON)]
    if name == "vit_b_16":
        options = [option for option in options if option not in _VIT_ARCHITECTURE]
    return tuple(options)


def build_backbone(
    name: str,
    num_outputs: int,
    in_channels: int,
    input_size: int,
    init_seed: int | None = None,
    dropout_seed: int | None = None,
    **options: Any,
) -> StagedNetwork:
    """The backbone ``name`` (``resnet18``, ``resnet50``, ``vit_b_16``, ``vit``) with its ``options``.

    Options: ResNets ``granularity`` (block), ``stem`` (imagenet), ``zero_init_residual`` (False); ``vit_b_16``
    ``dropout`` (0), ``attention_dropout`` (0); ``vit`` those and ``patch_size`` (4), ``num_layers`` (6),
    ``num_heads`` (4), ``hidden_dim`` (96), ``mlp_dim`` (4 x hidden_dim).

    Raises:
        ValueError: for an unknown name or option, or an invalid setting (the message names it).
    """
    if name not in BACKBONES:
        raise ValueError(f"model backbone must be one of {', '.join(BACKBONES)}; got {name!r}")
    valid = backbone_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"model option(s) {', '.join(unknown)} unknown for backbone {name}; valid options: {', '.join(valid)}"
        )
    cls, fixed = BACKBONES[name]
    return cls(
        **fixed,
        num_outputs=num_outputs,
        in_channels=in_channels,
        input_size=input_size,
        init_seed=init_seed,
        dropout_seed=dropout_seed,
        **options,
    )
