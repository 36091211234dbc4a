"""A trained network back from its checkpoint, whatever its backbone (read with ``weights_only=True``)."""

from __future__ import annotations

import importlib
import io
from pathlib import Path
from typing import Any

import torch

from models.backbone_classifier import BackboneClassifier
from models.classifier import TransferClassifier
from models.module import CaffeNetClassifier
from models.network import StagedNetwork


def load_classifier(path: str | Path) -> TransferClassifier:
    """The LightningModule saved in ``path`` (a fit's checkpoint or a fused cell's), in eval mode on the CPU.

    Its class is the one the checkpoint records (``_class_path``, see ``TransferClassifier.save_arguments``),
    which must be a ``TransferClassifier``; a checkpoint from before that record is a ``BackboneClassifier``'s
    if its hyperparameters name a ``backbone``, else CaffeNet's. The file is read once.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        TypeError: if the recorded class is not a ``TransferClassifier``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist or is not a file")
    buffer = io.BytesIO(path.read_bytes())
    hyperparameters = torch.load(buffer, map_location="cpu", weights_only=True).get("hyper_parameters", {})
    classifier = recorded_class(hyperparameters, str(path))
    buffer.seek(0)
    return classifier.load_from_checkpoint(buffer, map_location="cpu", weights_only=True).eval()


def recorded_class(hyperparameters: dict[str, Any], where: str) -> type[TransferClassifier]:
    """The classifier class a checkpoint's hyperparameters record (see ``load_classifier``)."""
    if "_class_path" not in hyperparameters:
        return BackboneClassifier if "backbone" in hyperparameters else CaffeNetClassifier
    classifier = import_path(hyperparameters["_class_path"])
    if not (isinstance(classifier, type) and issubclass(classifier, TransferClassifier)):
        raise TypeError(
            f"checkpoint {where!r} records _class_path={hyperparameters['_class_path']!r}, which is not a "
            "models.classifier.TransferClassifier: load it with that class's own load_from_checkpoint"
        )
    return classifier


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
