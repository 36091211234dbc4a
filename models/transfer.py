"""The transfer step of Yosinski et al. (2014), in one place: copy stages 1..n of a base network, lock them or not.

A network is a ``models.network.StagedNetwork``: its ordered transferable *stages* (``stage_names``, the head
last), each a submodule of that name. CaffeNet's stages are the paper's layers conv1..fc8, so "stage n" is the
paper's "layer n"; a ResNet's are its stem and residual blocks, a ViT's its embedding and encoder blocks.

Stages 1..n come from a trained base network, stages n+1.. keep the new network's fresh initialisation; the last
stage (the head, CaffeNet's fc8) is always new. ``frozen`` (AnB, BnB) stops stages 1..n requiring grad (Caffe's
learning rate 0: dropout after them stays active, so no ``.eval()``); ``finetune`` (AnB+, BnB+) trains every
stage. ``frozen`` with ``n > 0`` and no base keeps stages 1..n frozen at their random initialisation (the paper's
random features). A frozen stage's batch norms keep the base's running statistics (``frozen_norm="eval"``) or
follow the target data (``"train"``); LayerNorm and CaffeNet's LRN have no statistics.

``TransferCallback`` applies this to
the network of one LightningModule, ``models.fused.FusedTransfer`` to each network of a group, the study's grid
takes the range of n from here; nothing else restates it.

A base is a staged network's checkpoint (a Lightning checkpoint or its state dict) or a torchvision-format weights
file of a ResNet or ViT backbone (``torch.save(torchvision.models.resnet18(weights=...).state_dict(), path)``),
read safely by ``models.base_file``, whose names :func:`copy_stages` maps to the stages (``models.pretrained``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from models import pretrained
from models.network import StagedNetwork

TransferMode = Literal["frozen", "finetune"]
MODES: tuple[str, ...] = get_args(TransferMode)
# What a frozen stage's batch norms do: ``eval`` (their parameters and running statistics stay the base's:
# the norm layers are held in eval mode) or ``train`` (their parameters stay the base's, but they normalise
# with the batch's statistics and their running statistics follow the target data).
FrozenNorm = Literal["eval", "train"]
FROZEN_NORMS: tuple[str, ...] = get_args(FrozenNorm)


def transferable_stages(stage_names: tuple[str, ...]) -> tuple[str, ...]:
    """The stages a transfer can copy: all but the head (CaffeNet: conv1..fc7)."""
    return tuple(stage_names[:-1])


def max_depth(stage_names: tuple[str, ...]) -> int:
    """The largest n (CaffeNet: 7; fc8 is always new)."""
    return len(transferable_stages(stage_names))


def depths(stage_names: tuple[str, ...]) -> range:
    """Every n of a transfer, 1..``max_depth``."""
    return range(1, max_depth(stage_names) + 1)


def describe_depths(stage_names: tuple[str, ...]) -> str:
    """What each n means, for error messages (``1 = conv1, ..., 7 = fc7; fc8 is always new``)."""
    names = ", ".join(f"{n} = {name}" for n, name in enumerate(transferable_stages(stage_names), start=1))
    return f"{names}; {stage_names[-1]} is always new"


def check_depth(n: Any, stage_names: tuple[str, ...], what: str = "transfer n", allow_zero: bool = True) -> int:
    """``n`` if it is a valid transfer depth (0 = nothing transferred, when ``allow_zero``).

    Raises:
        ValueError: not an integer in range; the message names ``what`` and the valid values.
    """
    low = 0 if allow_zero else 1
    if isinstance(n, bool) or not isinstance(n, int) or not low <= n <= max_depth(stage_names):
        raise ValueError(
            f"{what} must be an integer in {low}..{max_depth(stage_names)} ({describe_depths(stage_names)}), got {n!r}"
        )
    return n


def check_count(n: Any, what: str, minimum: int = 0) -> int:
    """``n`` if it is an integer >= ``minimum`` (a number of stages, before the network is known).

    Raises:
        ValueError: otherwise, naming ``what``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum} (the stages to transfer), got {n!r}")
    return n


def _check_choice(value: Any, valid: tuple[str, ...], what: str) -> Any:
    if value not in valid:
        raise ValueError(f"{what} must be one of {', '.join(repr(v) for v in valid)}, got {value!r}")
    return value


def check_frozen_norm(value: Any, what: str = "transfer frozen_norm") -> FrozenNorm:
    """``value`` if it is ``eval`` or ``train``; else a ValueError naming ``what``."""
    return _check_choice(value, FROZEN_NORMS, what)


def check_mode(mode: Any, what: str = "transfer mode") -> TransferMode:
    """``mode`` if it is ``frozen`` or ``finetune``; else a ValueError naming ``what``."""
    return _check_choice(mode, MODES, what)


def check_base(
    mode: TransferMode | None, has_base: bool, what: str = "a base network to copy stages 1..n from"
) -> None:
    """The one rule that ``finetune`` (AnB+, BnB+) starts from a base network; ``frozen`` without one freezes random
    features. Raises a ValueError ``transfer mode 'finetune' needs <what>`` when it has none."""
    if mode == "finetune" and not has_base:
        raise ValueError(f"transfer mode 'finetune' needs {what}")


@dataclass(frozen=True)
class TransferRecord:
    """Where a network's stages 1..n came from: the provenance a checkpoint and the loggers carry.

    Args:
        base_checkpoint: The base's path, or None (random features, or no transfer).
        sha256: The base file's sha256 at the time of the copy (None: nothing read).
        n: Layers transferred.
        mode: ``frozen`` or ``finetune``.
        copied: The tensors copied from the base, by name.
        frozen_norm: What the frozen stages' batch norms do (``eval`` or ``train``).
    """

    base_checkpoint: str | None
    sha256: str | None
    n: int
    mode: TransferMode
    copied: tuple[str, ...] = field(default_factory=tuple)
    frozen_norm: FrozenNorm = "eval"

    def as_dict(self) -> dict[str, Any]:
        """Plain values (loadable with ``weights_only=True``)."""
        return {**asdict(self), "copied": list(self.copied)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TransferRecord:
        return cls(
            state.get("base_checkpoint"),
            state.get("sha256"),
            int(state.get("n", 0)),
            state.get("mode", "frozen"),
            tuple(state.get("copied") or ()),
            state.get("frozen_norm", "eval"),
        )


def network_state(base: dict[str, Tensor], net: nn.Module, what: str = "transfer base_checkpoint") -> dict[str, Tensor]:
    """The base's tensors under ``net``'s names: a torchvision-format file (``models.pretrained``) mapped to the
    network's stages (its head dropped), any other base (a staged network's checkpoint) as it is.

    Raises:
        ValueError: a torchvision-format file that lacks, adds or mis-shapes a tensor of ``net`` (named).
    """
    if isinstance(net, StagedNetwork) and pretrained.is_torchvision_state(base, net):
        return pretrained.staged_state_dict(base, net, what)
    return base


def copy_stages(
    base: dict[str, Tensor],
    net: nn.Module,
    stages: tuple[str, ...],
    what: str = "transfer base_checkpoint",
    dry_run: bool = False,
) -> tuple[str, ...]:
    """Copy every tensor of ``stages`` from ``base`` into ``net`` by name; return the copied names.

    The one place a base is read into a network (``TransferCallback``, ``FusedTransfer``, the CLI's pre-flight
    check): a torchvision-format weights file is mapped to the network's names first (:func:`network_state`).

    Args:
        base: The base's tensors (``models.base_file.load_base``).
        net: The network to copy into.
        stages: The stages to copy.
        what: The base, for messages (``transfer base_checkpoint 'base.ckpt'``).
        dry_run: Check everything, copy nothing (the CLI's check before a fit starts).

    Raises:
        ValueError: if the base lacks a tensor of one of the stages, or a tensor's shape differs
            between the base and the network (a torchvision-format file: any tensor of the network's stages).
    """
    base = network_state(base, net, what)
    target = net.state_dict()
    # Tensors only: a stage's extra state (a seeded dropout's generator) is the new network's own.
    wanted = [key for key, value in target.items() if key.split(".", 1)[0] in stages and isinstance(value, Tensor)]
    for key in wanted:
        if key not in base:
            raise ValueError(
                f"{what} lacks {key!r}, needed to copy stages {', '.join(stages)}; "
                f"it has stages {sorted({k.split('.', 1)[0] for k in base})}"
            )
        if base[key].shape != target[key].shape:
            raise ValueError(
                f"transfer shape mismatch for {key!r}: {tuple(base[key].shape)} in the base checkpoint, "
                f"{tuple(target[key].shape)} in this model; the model's settings (widths, kernels, "
                "in_channels, input_size) must match the base's up to stage n"
            )
    if dry_run:
        return tuple(wanted)
    tensors = net.state_dict(keep_vars=True)  # the parameters and buffers themselves, copied into in place
    with torch.no_grad():
        for key in wanted:
            tensors[key].copy_(base[key])
    return tuple(wanted)


def stage_names_of(net: nn.Module) -> tuple[str, ...]:
    """The network's stages in order (``net.stage_names``, the head last), checked to be its attributes.

    Raises:
        TypeError: if ``net`` does not name its stages, or names one it does not have.
    """
    names = getattr(net, "stage_names", None)
    if not names:
        renamed = " (`layer_names` is now `stage_names`)" if getattr(net, "layer_names", None) else ""
        raise TypeError(
            f"transfer needs a network that names its stages: {type(net).__name__} has no `stage_names`{renamed}; "
            "make it a models.network.StagedNetwork (CaffeNet's are conv1..fc8)"
        )
    missing = [name for name in names if not isinstance(getattr(net, name, None), nn.Module)]
    if missing:
        raise TypeError(
            f"{type(net).__name__}.stage_names names {', '.join(missing)}, which it has no module of: "
            "each stage must be a submodule attribute of that name"
        )
    return tuple(names)


def freeze(net: nn.Module, stages: tuple[str, ...], frozen_norm: FrozenNorm = "eval") -> tuple[str, ...]:
    """Stop ``stages`` training (Caffe's learning rate 0: their dropout stays active); return the norms held in eval.

    With ``frozen_norm="eval"`` their batch norms are held in eval mode (``StagedNetwork.keep_in_eval``), so
    their running statistics stay the base's however often the trainer calls ``train()``.

    Raises:
        TypeError: batch norms to hold in eval in a network that cannot hold them (not a ``StagedNetwork``).
    """
    for name in stages:
        getattr(net, name).requires_grad_(False)
    if frozen_norm != "eval":
        return ()
    norms = tuple(
        f"{name}.{sub}" if sub else name
        for name in stages
        for sub, module in getattr(net, name).named_modules()
        if isinstance(module, _BatchNorm)
    )
    if norms:
        keep_in_eval = getattr(net, "keep_in_eval", None)
        if keep_in_eval is None:
            raise TypeError(
                f"{type(net).__name__} has batch norms in frozen stages but cannot hold them in eval "
                "mode: make it a models.network.StagedNetwork"
            )
        keep_in_eval(norms)
    return norms


def transfer(
    net: nn.Module,
    n: int,
    mode: TransferMode,
    base: dict[str, Tensor] | None = None,
    base_checkpoint: str | None = None,
    sha256: str | None = None,
    frozen_norm: FrozenNorm = "eval",
) -> TransferRecord:
    """Copy stages 1..n of ``base`` into ``net`` (when a base is given) and freeze them for ``frozen``.

    Args:
        net: The new network (fresh initialisation).
        n: Layers to transfer (0: none).
        mode: ``frozen`` or ``finetune``.
        base: The base's tensors (from ``models.base_file.load_base``), or None: stages 1..n keep their random
            initialisation (with ``frozen``: the paper's random features).
        base_checkpoint: The base's path, for the record.
        sha256: The base file's sha256, for the record.
        frozen_norm: What the frozen stages' batch norms do (``eval``: the base's statistics; ``train``).

    Raises:
        ValueError: an invalid n or mode, ``finetune`` without a base, or a base that lacks or
            mis-shapes a stage.
    """
    names = stage_names_of(net)
    check_depth(n, names)
    check_mode(mode)
    check_frozen_norm(frozen_norm)
    if n:
        check_base(mode, base is not None)
    stages = transferable_stages(names)[:n]
    what = "transfer base_checkpoint" + (f" {base_checkpoint!r}" if base_checkpoint else "")
    copied = copy_stages(base, net, stages, what) if base is not None and n else ()
    if mode == "frozen" and n:
        freeze(net, stages, frozen_norm)
    return TransferRecord(base_checkpoint, sha256, n, mode, copied, frozen_norm)
