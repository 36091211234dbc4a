"""Datasets, the paper's class splits and preprocessing: ``ImageNetHalf`` and the ``FashionMNISTHalf`` default."""

from datamodules.base import HalfDataModule
from datamodules.corrupt import SkippedImagesLogger, UnreadableImageWarning
from datamodules.fashion_mnist import FashionMNISTHalf
from datamodules.imagenet import ImageNetHalf
from datamodules.splits import FASHION_MNIST_SPLITS, IMAGENET_SPLITS, ClassSplits, random_halves

__all__ = [
    "FASHION_MNIST_SPLITS",
    "IMAGENET_SPLITS",
    "ClassSplits",
    "FashionMNISTHalf",
    "HalfDataModule",
    "ImageNetHalf",
    "SkippedImagesLogger",
    "UnreadableImageWarning",
    "random_halves",
]
