"""The study's networks (CaffeNet, torchvision backbones as staged networks) and the LightningModules that train them."""

from models.backbone_classifier import BackboneClassifier
from models.backbones import build_backbone
from models.caffenet import LAYER_NAMES, CaffeNet
from models.classifier import TransferClassifier
from models.module import CaffeNetClassifier
from models.network import StagedNetwork

__all__ = ["LAYER_NAMES", "BackboneClassifier", "CaffeNet", "CaffeNetClassifier", "StagedNetwork",
           "TransferClassifier", "build_backbone"]
