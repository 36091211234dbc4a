"""A trained network back from its checkpoint, whatever its backbone (read with ``weights_only=True``)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer

from models.backbone_classifier import BackboneClassifier
from models.caffenet_classifier import CaffeNetClassifier
from models.classifier import TransferClassifier
from models.network import StagedNetwork


def load_classifier(path: str | Path) -> TransferClassifier:
    """The LightningModule saved in ``path`` (a fit's checkpoint or a fused cell's), in eval mode on the CPU.

    Its class is the one the checkpoint records (``_class_path``, see ``TransferClassifier``),
    which must be a ``TransferClassifier``; a checkpoint from before that record is a ``BackboneClassifier``'s
    if its hyperparameters name a ``backbone``, else CaffeNet's. The hyperparameters are read through a memory
    map, so the tensors are loaded once, by ``load_from_checkpoint``.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: if the recorded class cannot be imported or is not a ``TransferClassifier``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist or is not a file")
    hyperparameters = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("hyper_parameters", {})
    if "_class_path" in hyperparameters:
        classifier = classifier_class(hyperparameters["_class_path"], f"checkpoint {str(path)!r} _class_path")
    else:
        classifier = BackboneClassifier if "backbone" in hyperparameters else CaffeNetClassifier
    return classifier.load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()


def classifier_class(class_path: str, what: str) -> type[TransferClassifier]:
    """The ``TransferClassifier`` subclass at ``class_path`` (``models.CaffeNetClassifier``).

    Raises:
        ValueError: the path cannot be imported or names no ``TransferClassifier``, naming ``what``.
    """
    try:
        found = import_path(class_path)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{what} {class_path!r} cannot be imported ({err})") from err
    if not (isinstance(found, type) and issubclass(found, TransferClassifier)):
        raise ValueError(f"{what} {class_path!r} is not a models.classifier.TransferClassifier")
    return found


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


def save_untrained(module: TransferClassifier, path: str | Path) -> Path:
    """Save ``module`` as a fit's checkpoint would hold it, without training it (a base at its initialisation).

    For benchmarks and tests that need a base network to transfer from, score or compare, in seconds.
    """
    path = Path(path)
    trainer = Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        default_root_dir=str(path.parent),
    )
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path, weights_only=False)  # a whole fit checkpoint, as a study saves (no log line)
    return path
