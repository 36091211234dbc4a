"""The networks a prediction reads: a fit's or a study's checkpoint, or a torchvision weights file (read with
``weights_only=True``), with the data module the checkpoint records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from experiments.errors import InputFileError, SettingError
from models.network import StagedNetwork

DATA_RECORD = "datamodule_hyper_parameters"  # where Lightning saves the data module's hyperparameters


@dataclass
class Network:
    """A loaded network, its file, and its training data module's hyperparameters where its checkpoint has them."""

    net: StagedNetwork
    path: Path
    recorded_data: dict[str, Any] | None


def _existing(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(
            f"{what} {str(path)!r} does not exist or is not a file: give a base network's "
            "checkpoint (a fit's or a study cell's checkpoints/last.ckpt)"
        )
    return path


def load_checkpoint(path: str | Path, what: str = "--base") -> Network:
    """The network of a Lightning checkpoint of this project (``models.loading.load_classifier``).

    Raises:
        InputFileError: No such file.
        SettingError: A file that is not such a checkpoint.
    """
    from models.loading import load_classifier

    path = _existing(path, what)
    try:
        net = load_classifier(path).net
        recorded = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(DATA_RECORD)
    except Exception as err:  # truncated, corrupt, unsafe, or not a classifier's checkpoint
        raise SettingError(
            f"{what} {str(path)!r} cannot be read as a network checkpoint of this project "
            f"({type(err).__name__}: {err}); a torchvision weights file needs --backbone"
        ) from err
    return Network(net, path, dict(recorded) if isinstance(recorded, Mapping) else None)


def load_weights(
    path: str | Path,
    backbone: str,
    options: Mapping[str, Any],
    in_channels: int,
    input_size: int,
    num_outputs: int,
    what: str = "--base",
) -> Network:
    """A torchvision backbone (``models.backbones.build_backbone``) with the weights of a torchvision-format file,
    mapped to its stages by ``models.pretrained``; every stage but the head must be in the file.

    Raises:
        InputFileError: No such file.
        SettingError: An unknown backbone or option, or a file that is not that backbone's torchvision weights.
    """
    from models.backbones import build_backbone
    from models.pretrained import is_torchvision_state, staged_state_dict

    path = _existing(path, what)
    try:
        net = build_backbone(backbone, num_outputs, in_channels, input_size, init_seed=0, **dict(options))
    except (ValueError, TypeError) as err:
        raise SettingError(f"--backbone {backbone} --backbone_options {dict(options)}: {err}") from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SettingError(
            f"{what} {str(path)!r} cannot be read as a weights file ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(state, Mapping) or not is_torchvision_state(state, net):
        raise SettingError(
            f"{what} {str(path)!r} is not a torchvision state dict of --backbone {backbone}: give the "
            "weights file of that architecture, or a checkpoint of this project without --backbone"
        )
    try:
        mapped = staged_state_dict(state, net, f"{what} {str(path)!r}")
    except (ValueError, TypeError) as err:
        raise SettingError(str(err)) from err
    missing, unexpected = net.load_state_dict(mapped, strict=False)
    head = net.stage_names[-1]
    lacking = [key for key in missing if key.split(".")[0] != head]
    if unexpected or lacking:
        raise SettingError(
            f"{what} {str(path)!r} does not fit --backbone {backbone} {dict(options)}: missing "
            f"{lacking[:5]}, unexpected {list(unexpected)[:5]}"
        )
    return Network(net, path, None)
