"""Datasets, the class splits and preprocessing: ``ImageNetHalf``, ``ImageFolderHalves`` (any image folder) and the
``FashionMNISTHalf`` default."""

from datamodules.base import HalfDataModule
from datamodules.corrupt import SkippedImagesLogger, UnreadableImageWarning
from datamodules.fashion_mnist import FashionMNISTHalf
from datamodules.folder import ImageFolderHalves
from datamodules.imagenet import ImageNetHalf
from datamodules.splits import FASHION_MNIST_SPLITS, IMAGENET_SPLITS, ClassSplits, random_halves

__all__ = [
    "FASHION_MNIST_SPLITS",
    "IMAGENET_SPLITS",
    "ClassSplits",
    "FashionMNISTHalf",
    "HalfDataModule",
    "ImageFolderHalves",
    "ImageNetHalf",
    "SkippedImagesLogger",
    "UnreadableImageWarning",
    "random_halves",
]
