"""The study's networks (CaffeNet, torchvision backbones as staged networks) and the LightningModules that train them.

The names below are imported on first use (PEP 562), so that importing one light module of the package
(``models.files``, ``models.transfer``) does not import Lightning and every network with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.backbone_classifier import BackboneClassifier
    from models.backbones import build_backbone
    from models.caffenet import LAYER_NAMES, CaffeNet
    from models.classifier import TransferClassifier
    from models.module import CaffeNetClassifier
    from models.network import StagedNetwork

# Each public name, and the module that defines it.
_HOMES = {
    "BackboneClassifier": "backbone_classifier",
    "build_backbone": "backbones",
    "LAYER_NAMES": "caffenet",
    "CaffeNet": "caffenet",
    "TransferClassifier": "classifier",
    "CaffeNetClassifier": "module",
    "StagedNetwork": "network",
}
__all__ = [
    "LAYER_NAMES",
    "BackboneClassifier",
    "CaffeNet",
    "CaffeNetClassifier",
    "StagedNetwork",
    "TransferClassifier",
    "build_backbone",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value  # once: the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
