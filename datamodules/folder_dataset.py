"""The dataset of a half: the images of some class folders, labelled in folder-name order, unreadable ones skipped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.datasets import DatasetFolder
from torchvision.datasets.folder import IMG_EXTENSIONS
from typing_extensions import override

from datamodules.corrupt import SkipCounter
from datamodules.image_codecs import DECODE_ERRORS, read_rgb
from datamodules.resumable import SampleKey
from datamodules.splits import first_per_class

# A folder's images as ``DatasetFolder`` lists them: (file path, label).
Samples = list[tuple[str, int]]


class HalfImageFolder(DatasetFolder):
    """An image folder restricted to some class folders, labelled 0..K-1 in sorted folder-name order.

    Images that do not decode are skipped: the item is ``None`` (the collate function drops it, see
    :func:`~datamodules.corrupt.drop_unreadable`), a warning names the file and ``skipped`` counts it.

    An item is asked for by index, or by a :data:`~datamodules.resumable.SampleKey` ``(index, seed)`` (what the
    training sampler yields): then the transform is called with a generator seeded by the key's seed, and its
    random crop and mirror are the same whichever worker loads the image.

    Args:
        root: Folder holding one sub-folder per class.
        wnids: The class folders to use. Sorted names are sorted class indices, so label k is the k-th.
        transform: Applied to the decoded uint8 ``[C, H, W]`` image; with a keyed item, as
            ``transform(image, generator=...)``.
        images_per_class: Keep the first N images (sorted file names) of each class (after ``keep``).
        skipped: Counter of unreadable images (a fresh one if None).
        loader: Reads a file: decodes it (default: RGB), or returns its bytes for decoding on the device.
        keep: Chooses the samples to keep (their indices) from all of them, e.g. a hold-out's share.
    """

    samples: Samples  # set by DatasetFolder (untyped)
    imgs: Samples
    targets: list[int]

    def __init__(
        self,
        root: str | Path,
        wnids: Sequence[str],
        transform: Callable[[Tensor], Any] | None = None,
        images_per_class: int | None = None,
        skipped: SkipCounter | None = None,
        loader: Callable[[str], Any] = read_rgb,
        keep: Callable[[Samples], list[int]] | None = None,
    ) -> None:
        self._wnids = sorted(wnids)
        super().__init__(str(root), loader=loader, extensions=IMG_EXTENSIONS, transform=transform)
        if keep is not None:
            self._keep_only(keep(self.samples))
        if images_per_class is not None:  # samples come class by class, file names sorted
            self._keep_only(first_per_class(self.targets, images_per_class))
        self.skipped = skipped if skipped is not None else SkipCounter()

    def _keep_only(self, kept: Sequence[int]) -> None:
        self.samples = self.imgs = [self.samples[i] for i in kept]
        self.targets = [self.targets[i] for i in kept]

    @override
    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        return list(self._wnids), {wnid: label for label, wnid in enumerate(self._wnids)}

    def __getitem__(self, key: int | SampleKey) -> tuple[Any, int] | None:
        index, seed = key if isinstance(key, tuple) else (key, None)
        path, label = self.samples[index]
        try:
            image = self.loader(path)
        except DECODE_ERRORS as err:
            self.skipped.add(path, err)
            return None
        if self.transform is not None and seed is not None:
            image = self.transform(image, generator=torch.Generator().manual_seed(seed))
        elif self.transform is not None:
            image = self.transform(image)
        return image, label
