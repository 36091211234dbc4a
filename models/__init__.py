"""The paper's network (CaffeNet) and the LightningModule that trains it."""

from models.caffenet import LAYER_NAMES, CaffeNet
from models.module import CaffeNetClassifier

__all__ = ["LAYER_NAMES", "CaffeNet", "CaffeNetClassifier"]
