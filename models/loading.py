"""A trained network back from its checkpoint, whatever its backbone (read with ``weights_only=True``)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

from models.backbone_classifier import BackboneClassifier
from models.classifier import TransferClassifier
from models.module import CaffeNetClassifier
from models.network import StagedNetwork


def load_classifier(path: str | Path) -> TransferClassifier:
    """The LightningModule saved in ``path`` (a fit's checkpoint or a fused cell's), in eval mode on the CPU.

    A checkpoint whose hyperparameters name a ``backbone`` is a ``BackboneClassifier``'s, any other CaffeNet's.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist or is not a file")
    hyperparameters = torch.load(path, map_location="cpu", weights_only=True).get("hyper_parameters", {})
    classifier = BackboneClassifier if "backbone" in hyperparameters else CaffeNetClassifier
    module = classifier.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    return module.eval()


def load_network(path: str | Path) -> StagedNetwork:
    """The network (its stages and head) saved in ``path``, in eval mode on the CPU."""
    return load_classifier(path).net


def import_path(path: str) -> Any:
    """The object a dotted path names (``models.CaffeNetClassifier``), as a config's ``class_path`` does.

    Raises:
        ImportError, AttributeError, ValueError: as ``importlib.import_module`` and ``getattr`` do.
    """
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)
