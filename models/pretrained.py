"""A torchvision-format weights file as a transfer base: torchvision's tensor names mapped to a staged network's.

The file a researcher gets once with ``torch.save(torchvision.models.resnet18(weights=...).state_dict(), path)``
(or any fine-tuned copy with the same names) names its tensors as torchvision's model does (``conv1.weight``,
``layer1.0.conv1.weight``, ``encoder.layers.encoder_layer_0...``); the staged networks of ``models.backbones``
regroup the same modules into stages (``stem.conv1.weight``, ``layer1_0.conv1.weight``, ``block1...``). This module
maps the one to the other, batch-norm buffers included, so that ``models.transfer.copy_stages`` (the one place a
base is copied, for ``TransferCallback``, ``FusedTransfer`` and the CLI's pre-flight check) can read such a file.

The head is never mapped: a transfer always trains a new head, so the file's ImageNet classifier (``fc.*``,
``heads.*``) is accepted whatever its width and dropped. A ViT's final LayerNorm (``encoder.ln``) belongs to the
staged head too (``ViTHead(ln, fc)``: the LayerNorm runs on the last block's output, only for the classifier), so
it is dropped as well: a staged network's own checkpoint and the same weights in torchvision format then give the
same transfer, and at the deepest n the fresh head's LayerNorm (identity affine) learns its scale and shift.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from models.backbones import ResNetStages, ViTStages
from models.network import StagedNetwork

SHOWN = 3  # keys named in a message; the rest are counted


def _rules(net: StagedNetwork) -> list[tuple[str, str]] | None:
    """(staged prefix, torchvision prefix) for every stage of ``net``, the head last; None: no torchvision format."""
    if isinstance(net, ResNetStages):
        rules = [("stem.conv1.", "conv1."), ("stem.bn1.", "bn1.")]
        for name in net.stage_names[1:-1]:  # layer1_0 -> layer1.0 (block granularity); layer1 -> layer1 (stage)
            rules.append((f"{name}.", f"{name.replace('_', '.')}."))
        return [*rules, ("head.fc.", "fc.")]
    if isinstance(net, ViTStages):
        rules = [
            ("embed.conv_proj.", "conv_proj."),
            ("embed.class_token", "class_token"),
            ("embed.pos_embedding", "encoder.pos_embedding"),
        ]
        for index, name in enumerate(net.stage_names[1:-1]):
            rules.append((f"{name}.", f"encoder.layers.encoder_layer_{index}."))
        return [*rules, ("head.ln.", "encoder.ln."), ("head.fc.", "heads.")]
    return None


def _head_prefixes(net: StagedNetwork) -> tuple[str, ...]:
    """torchvision's names of what the staged head holds: accepted in a file, never copied."""
    return ("encoder.ln.", "heads.") if isinstance(net, ViTStages) else ("fc.",)


def _torchvision_name(key: str, rules: list[tuple[str, str]]) -> str:
    for staged, torchvision in rules:
        if key.startswith(staged):
            return torchvision + key[len(staged) :]
    raise KeyError(key)  # every tensor of a staged ResNet or ViT starts with a stage's prefix


def _network_tensors(net: StagedNetwork) -> dict[str, Tensor]:
    # Tensors only: a seeded dropout's extra state is the network's own, never a base's.
    return {key: value for key, value in net.state_dict().items() if isinstance(value, Tensor)}


def torchvision_names(net: StagedNetwork) -> dict[str, str]:
    """torchvision's name -> the staged name, for every tensor of ``net``'s stages 1..n (the head left out).

    Raises:
        TypeError: ``net`` is not a ResNet or ViT of ``models.backbones`` (no torchvision format).
    """
    rules = _rules(net)
    if rules is None:
        raise TypeError(f"{type(net).__name__} has no torchvision format: only models.backbones' ResNets and ViTs")
    head = net.stage_names[-1]
    return {_torchvision_name(key, rules): key for key in _network_tensors(net) if key.split(".", 1)[0] != head}


def is_torchvision_state(state: Mapping[str, Tensor], net: StagedNetwork) -> bool:
    """Whether ``state`` names its tensors as torchvision's model of ``net`` does, not as ``net`` itself does.

    True when some key is a torchvision name that no staged network uses (``conv1.weight``, ``bn1.*``, ``fc.*``,
    ``layer1.0...`` for a block-granularity ResNet; ``conv_proj.*``, ``class_token``, ``encoder.*``, ``heads.*``
    for a ViT). Always False for a network without a torchvision format (CaffeNet).
    """
    rules = _rules(net)
    if rules is None:
        return False
    staged = set(_network_tensors(net))
    only_torchvision = {_torchvision_name(key, rules) for key in staged} - staged
    heads = _head_prefixes(net)
    return any(key in only_torchvision or key.startswith(heads) for key in state)


def _listed(keys: list[str]) -> str:
    shown = ", ".join(repr(key) for key in keys[:SHOWN])
    return shown + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def _shape_hint(key: str, found: tuple[int, ...], wanted: tuple[int, ...], net: StagedNetwork) -> str:
    """What to change when ``key`` has shape ``found`` in the file and ``wanted`` in the network."""
    if key == "conv1.weight" and isinstance(net, ResNetStages):
        if found[2:] != wanted[2:]:
            return (
                f"A ResNet with stem {net.stem_name!r} has a {wanted[2]}x{wanted[3]} conv1, the file's is "
                f"{found[2]}x{found[3]}: use model backbone_options.stem "
                f"{'imagenet' if found[2] == 7 else 'small'}"
            )
        if found[1] != wanted[1]:
            return (
                f"The file's conv1 reads {found[1]} input channel(s), the data has {wanted[1]}: give the data "
                f"{found[1]} channel(s) (an image folder: data.init_args.channels {found[1]}; Fashion-MNIST: "
                f"data.init_args.channels {found[1]} repeats its grey channel)"
            )
    if key == "encoder.pos_embedding" and isinstance(net, ViTStages):
        patch = net.config["patch_size"]
        side = round((found[1] - 1) ** 0.5)
        return (
            f"The file's position embedding is for {found[1] - 1} patches ({side}x{side}: input_size "
            f"{side * patch} at patch_size {patch}), this network's for {wanted[1] - 1}: set the data's crop "
            f"size to {side * patch}"
        )
    if key == "conv_proj.weight" and isinstance(net, ViTStages) and found[1] != wanted[1]:
        return (
            f"The file's patch projection reads {found[1]} input channel(s), the data has {wanted[1]}: give the "
            f"data {found[1]} channel(s)"
        )
    return "The network's settings (backbone, patch_size, num_layers, hidden_dim, mlp_dim ...) must be the file's"


def staged_state_dict(
    state: Mapping[str, Tensor], net: StagedNetwork, what: str = "transfer base_checkpoint"
) -> dict[str, Tensor]:
    """The tensors of a torchvision-format ``state`` under ``net``'s staged names, for every stage but the head.

    Args:
        state: A torchvision model's state dict (``is_torchvision_state``), batch-norm buffers included.
        net: The network to copy into (``models.backbones.ResNetStages`` or ``ViTStages``).
        what: The file, for messages (``transfer base_checkpoint 'resnet18.pth'``).

    Returns:
        Staged name -> the file's tensor (the same tensor objects), stages 1..last transferable one.

    Raises:
        ValueError: a key missing, unexpected or of the wrong shape for ``net`` (the first few named, and how
            many), with what to do.
        TypeError: ``net`` has no torchvision format.
    """
    names = torchvision_names(net)
    tensors = _network_tensors(net)
    heads = _head_prefixes(net)
    arch = getattr(net, "arch", type(net).__name__)
    builder = (
        "torchvision.models.VisionTransformer(...)"
        if arch == "vit"  # the small ViT: its own settings
        else f"torchvision.models.{arch}(weights=...)"
    )
    redo = (
        "give the whole state dict of a torchvision model with this network's architecture and settings: "
        f"torch.save({builder}.state_dict(), path)"
    )
    missing = [key for key in names if key not in state]
    unexpected = [key for key in state if key not in names and not key.startswith(heads)]
    if missing or unexpected:
        parts = (
            [f"lacks {len(missing)} tensor(s) of this {type(net).__name__} ({_listed(missing)})"] if missing else []
        ) + ([f"has {len(unexpected)} tensor(s) it does not know ({_listed(unexpected)})"] if unexpected else [])
        raise ValueError(f"{what} is a torchvision-format state dict that {' and '.join(parts)}: {redo}")
    wrong = [key for key, staged in names.items() if tuple(state[key].shape) != tuple(tensors[staged].shape)]
    if wrong:
        shapes = "; ".join(
            f"{key!r}: {tuple(state[key].shape)} in the file, {tuple(tensors[names[key]].shape)} in this network"
            for key in wrong[:SHOWN]
        )
        more = f" ({len(wrong) - SHOWN} more)" if len(wrong) > SHOWN else ""
        first = wrong[0]
        hint = _shape_hint(first, tuple(state[first].shape), tuple(tensors[names[first]].shape), net)
        raise ValueError(
            f"{what}: {len(wrong)} tensor(s) of the torchvision-format file have another shape than "
            f"in this {type(net).__name__}: {shapes}{more}. {hint}"
        )
    return {staged: state[key] for key, staged in names.items()}
