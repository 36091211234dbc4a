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
    from models.caffenet import CaffeNet
    from models.caffenet_classifier import CaffeNetClassifier
    from models.classifier import TransferClassifier
    from models.network import StagedNetwork

# Each public name, and the module that defines it.
_HOMES = {
    "BackboneClassifier": "backbone_classifier",
    "build_backbone": "backbones",
    "CaffeNet": "caffenet",
    "TransferClassifier": "classifier",
    "CaffeNetClassifier": "caffenet_classifier",
    "StagedNetwork": "network",
}
__all__ = [
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
