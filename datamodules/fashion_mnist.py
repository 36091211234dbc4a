"""Fashion-MNIST halves, held in memory: the default dataset when there is no ImageNet and no network."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets import FashionMNIST
from typing_extensions import override

from datamodules.base import HalfDataModule, Workers
from datamodules.resumable import SampleKey
from datamodules.splits import FASHION_MNIST_SPLITS, first_per_class
from datamodules.transforms import subtract_mean_and_mirror

# Where Debian's dataset-fashion-mnist package puts the IDX files.
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
DOWNLOAD_ROOT = "data"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> Tensor:
    """Read an IDX file of unsigned bytes (plain or ``.gz``) as a uint8 tensor of its stored shape.

    Raises:
        ValueError: Not an IDX file of unsigned bytes.
    """
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=4 + 4 * ndim).view(*shape)


def _idx_files(folder: Path) -> dict[str, tuple[Path, Path]] | None:
    """The four IDX files lying flat in ``folder`` (each plain or gzipped), or None if any is missing."""
    found = {}
    for subset, stems in IDX_FILES.items():
        images, labels = [next((p for p in (folder / f"{s}.gz", folder / s) if p.is_file()), None) for s in stems]
        if images is None or labels is None:
            return None
        found[subset] = (images, labels)
    return found


def load_fashion_mnist(root: str | None, download: bool = False) -> dict[str, tuple[Tensor, Tensor]]:
    """Fashion-MNIST's train and test sets as (uint8 images ``[N, 1, 28, 28]``, int64 labels).

    Args:
        root: A folder with the four IDX files lying flat (like Debian's), or a torchvision root
            (``root/FashionMNIST/raw``). None: Debian's ``/usr/share/datasets/fashion-mnist`` if
            installed, else ``./data`` through torchvision.
        download: Let torchvision download into a torchvision root.

    Raises:
        RuntimeError: The files are absent and ``download`` is False.
    """
    if root is None:
        root = DEBIAN_DIR if _idx_files(Path(DEBIAN_DIR)) else DOWNLOAD_ROOT
    files = _idx_files(Path(root))
    if files is not None:
        return {subset: (read_idx(img)[:, None], read_idx(lab).long()) for subset, (img, lab) in files.items()}
    sets = {subset: FashionMNIST(root, train=subset == "train", download=download) for subset in IDX_FILES}
    return {subset: (ds.data[:, None], ds.targets.long()) for subset, ds in sets.items()}


class InMemoryHalf(Dataset):
    """uint8 images in memory, fetched a batch at a time (``__getitems__``) as float 0-255 minus a mean image.

    A DataLoader over it needs ``collate_fn=batch_as_is``: a fetch already returns the batch. Samples asked for by
    :data:`~datamodules.resumable.SampleKey` ``(index, seed)`` (the training sampler's) are mirrored by a bit of
    their seed, so the mirrors do not depend on the worker or the batch; plain indices draw from torch's global
    generator.

    Args:
        images: uint8 ``[N, C, H, W]``.
        labels: int64 ``[N]``.
        mean: The mean image, float ``[C, H, W]``.
        train: Mirror half of the images at random (after the mean subtraction, as Caffe did).
        scale: Factor on the centred pixels (Caffe's ``transform_param.scale``).
    """

    def __init__(self, images: Tensor, labels: Tensor, mean: Tensor, train: bool, scale: float = 1.0) -> None:
        self.images, self.labels, self.mean, self.train, self.scale = images, labels, mean, train, scale

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, keys: list[int] | list[SampleKey]) -> tuple[Tensor, Tensor]:
        mirror: Tensor | bool = False
        if keys and isinstance(keys[0], tuple):
            indices, seeds = zip(*keys)
            index = torch.as_tensor(indices, dtype=torch.int64)
            if self.train:  # the seeds are hashes: each bit is a fair coin
                mirror = (torch.as_tensor(seeds) & 1).bool().view(-1, 1, 1, 1)
        else:
            index = torch.as_tensor(keys, dtype=torch.int64)
            if self.train:
                mirror = torch.rand(len(index), 1, 1, 1) < 0.5
        return subtract_mean_and_mirror(self.images[index], self.mean, mirror, self.scale), self.labels[index]

    def __getitem__(self, key: int | SampleKey) -> tuple[Tensor, Tensor]:
        images, labels = self.__getitems__([key])  # type: ignore[arg-type]  # one key: a list of one kind
        return images[0], labels[0]


def batch_as_is(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Collate for :class:`InMemoryHalf`: the fetched batch is already collated."""
    return batch


class FashionMNISTHalf(HalfDataModule):
    """One half of a Fashion-MNIST class split, with the ImageNet module's interface.

    The faithful analogue of the caffe preprocessing at 28x28x1: 0-255 pixels minus the per-pixel mean image of
    the training half, a random horizontal mirror for training; no crop. Train is the official 60,000
    training images, validation the official 10,000 test images of the half's classes.

    Args:
        root: A folder with the four IDX files (plain or gzipped), or a torchvision root to download
            into. None: Debian's ``/usr/share/datasets/fashion-mnist`` if installed, else ``./data``.
        split: ``random0``..``random3`` (halves ``A``, ``B``; 5 classes each), ``dissimilar``
            (``clothing``: T-shirt, Trouser, Pullover, Dress, Coat, Shirt; ``footwear_bags``: Sandal,
            Sneaker, Bag, Ankle boot) or ``whole`` (half ``all``).
        half: The half to train and validate on.
        batch_size: Global batch size, divided across DDP processes.
        num_workers: DataLoader worker processes per rank (0: the data is in memory already; ``auto``: sized
            from the CPUs per rank, see ``datamodules.base.auto_workers``).
        pin_memory: Pin host memory (when an accelerator is present).
        persistent_workers: Keep workers alive between epochs (when ``num_workers > 0``).
        images_per_class: Keep the first N training images of each class.
        mean_half: Half of the same split whose mean image to subtract; None: the trained half.
        pixel_scale: Factor on the mean-subtracted 0-255 pixels (Caffe's ``transform_param.scale``): 1 is
            the paper's scale; e.g. 1/128 suits a network initialised for inputs of about unit scale.
        val_num_workers: Validation loader workers per rank; ``auto``: ``num_workers``, at most 2.
        channels: 1 (the grey images) or 3 (the grey channel repeated: for a network whose first layer reads RGB,
            such as a torchvision ImageNet weights file used as a transfer base).
    """

    splits = FASHION_MNIST_SPLITS
    in_channels = 1
    input_size = 28

    def __init__(
        self,
        root: str | None = None,
        split: str = "random0",
        half: str = "A",
        batch_size: int = 256,
        num_workers: Workers = 0,
        pin_memory: bool = True,
        persistent_workers: bool = False,
        images_per_class: int | None = None,
        mean_half: str | None = None,
        pixel_scale: float = 1.0,
        val_num_workers: Workers = "auto",
        channels: int = 1,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(
                f"data channels must be 1 (grey) or 3 (the grey channel repeated, for a network that "
                f"reads RGB), got {channels}"
            )
        super().__init__(
            split,
            half,
            batch_size,
            num_workers,
            pin_memory,
            persistent_workers,
            images_per_class,
            mean_half,
            pixel_scale,
            val_num_workers,
        )
        self.save_hyperparameters()
        self.root = root
        self.in_channels = channels
        self.collate_fn = batch_as_is
        self.class_names = [FashionMNIST.classes[i] for i in self.classes]

    @override
    def prepare_data(self) -> None:
        load_fashion_mnist(self.root, download=True)

    @override
    def setup(self, stage: str) -> None:
        super().setup(stage)
        data = load_fashion_mnist(self.root)
        data = {subset: (self._channels(images), labels) for subset, (images, labels) in data.items()}
        train_images, train_labels = self._select(*data["train"], self.classes, self.images_per_class)
        if self.mean_half is None:
            mean_images = train_images
        else:
            mean_classes = self.splits.classes(self.split, self.mean_half)
            mean_images, _ = self._select(*data["train"], mean_classes, self.images_per_class)
        mean = mean_images.mean(0, dtype=torch.float64).float()
        self.train_set = InMemoryHalf(train_images, train_labels, mean, True, self.pixel_scale)
        self.val_set = InMemoryHalf(*self._select(*data["test"], self.classes), mean, False, self.pixel_scale)

    def _channels(self, images: Tensor) -> Tensor:
        """The grey images with ``in_channels`` channels (a view: repeating costs no memory)."""
        return images.expand(-1, self.in_channels, -1, -1)

    @staticmethod
    def _select(
        images: Tensor, labels: Tensor, classes: tuple[int, ...], images_per_class: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """The images of ``classes`` (first N of each if asked), labels re-indexed 0..K-1."""
        new_label = torch.full((int(labels.max()) + 1,), -1, dtype=torch.int64)
        new_label[list(classes)] = torch.arange(len(classes))
        index = torch.nonzero(new_label[labels] >= 0).flatten()
        if images_per_class is not None:
            index = index[first_per_class(labels[index].tolist(), images_per_class)]
        return images[index], new_label[labels[index]]
