"""ILSVRC2012 halves from disk (``root/train/<wnid>/*.JPEG``, ``root/val/<wnid>/*.JPEG``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torchvision.datasets import DatasetFolder
from torchvision.datasets.folder import IMG_EXTENSIONS
from typing_extensions import override

from datamodules.base import HalfDataModule
from datamodules.corrupt import SkipCounter, SkippedImagesLogger, collate_skipping_unreadable
from datamodules.mean_image import cached_mean_image, compute_mean_image
from datamodules.resumable import SampleKey
from datamodules.splits import IMAGENET_SPLITS, first_per_class, imagenet_class_names, imagenet_wnids
from datamodules.transforms import (
    DECODE_ERRORS,
    CaffeCollate,
    CaffeTransform,
    Warp,
    JpegBatch,
    TorchvisionPreset,
    caffe_crop_on_device,
    collate_jpeg_bytes,
    collate_uint8,
    decode_on_device,
    read_bytes_with_path,
    read_rgb,
)

PREPARE_COMMAND = "transferability-prepare-imagenet"
EXPECTED_LAYOUT = """\
  {root}/train/n01440764/*.JPEG   (one folder per wnid, 1000 folders)
  {root}/val/n01440764/*.JPEG     (the 50,000 val images sorted into the same folders)
Make it from the ILSVRC2012 archives with:
  {command} {root} --train ILSVRC2012_img_train.tar --val ILSVRC2012_img_val.tar [--resized {root}_256]"""


class HalfImageFolder(DatasetFolder):
    """An image folder restricted to some class folders, labelled 0..K-1 in sorted wnid order.

    Images that do not decode are skipped: the item is ``None`` (the collate function drops it, see
    :func:`~datamodules.corrupt.drop_unreadable`), a warning names the file and ``skipped`` counts it.

    An item is asked for by index, or by a :data:`~datamodules.resumable.SampleKey` ``(index, seed)`` (what the
    training sampler yields): then the transform is called with a generator seeded by the key's seed, and its
    random crop and mirror are the same whichever worker loads the image.

    Args:
        root: Folder holding one sub-folder per wnid.
        wnids: The class folders to use. Sorted wnids are sorted class indices, so label k is the k-th.
        transform: Applied to the decoded uint8 ``[3, H, W]`` image; with a keyed item, as
            ``transform(image, generator=...)``.
        images_per_class: Keep the first N images (sorted file names) of each class.
        skipped: Counter of unreadable images (a fresh one if None).
        loader: Reads a file: decodes it (default), or returns its bytes for decoding on the device.
    """

    def __init__(
        self,
        root: str | Path,
        wnids: Sequence[str],
        transform: Callable[[Tensor], Any] | None = None,
        images_per_class: int | None = None,
        skipped: SkipCounter | None = None,
        loader: Callable[[str], Any] = read_rgb,
    ) -> None:
        self._wnids = sorted(wnids)
        super().__init__(str(root), loader=loader, extensions=IMG_EXTENSIONS, transform=transform)
        if images_per_class is not None:  # samples come class by class, file names sorted
            kept = first_per_class(self.targets, images_per_class)
            self.samples = self.imgs = [self.samples[i] for i in kept]
            self.targets = [self.targets[i] for i in kept]
        self.skipped = skipped if skipped is not None else SkipCounter()

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


class ImageNetHalf(HalfDataModule):
    """One half of an ILSVRC2012 class split, as in Yosinski et al. (2014).

    Preprocessing: ``caffe`` (the paper): warp to ``image_size``² (256), a random ``crop_size`` (227) crop and
    mirror for training, the centre crop for validation, 0-255 pixels minus the per-pixel mean image of
    the training half. The mean is computed once (in ``prepare_data``, on one process per node) and
    cached in ``cache_dir``. ``torchvision``: RandomResizedCrop(224) and flip / Resize(256) and
    CenterCrop(224), then Normalize with the ImageNet mean and std (no mean image).

    Unreadable images are skipped with a warning and counted; ``setup`` adds a
    :class:`~datamodules.corrupt.SkippedImagesLogger` to the trainer, which logs ``data/skipped_train``
    and ``data/skipped_val`` every epoch.

    Args:
        root: The ILSVRC2012 tree ``root/{train,val}/<wnid>/``, or its pre-resized 256x256 copy (faster; JPEG
            or, fastest, raw PPM: ``transferability-prepare-imagenet --resized DIR [--resized-format ppm]``).
        split: ``random0``..``random3`` (halves ``A``, ``B``), ``natman`` (``manmade``: the paper's A, 551
            classes; ``natural``: 449) or ``whole`` (half ``all``).
        half: The half to train and validate on.
        batch_size: Global batch size (the paper's 256), divided across DDP processes.
        num_workers: DataLoader worker processes per rank.
        pin_memory: Pin host memory (when an accelerator is present).
        persistent_workers: Keep workers alive between epochs.
        images_per_class: Keep the first N training images of each class (sorted file names).
        preprocess: ``caffe`` or ``torchvision``.
        pixel_scale: Factor on the mean-subtracted 0-255 pixels (Caffe's ``transform_param.scale``; the
            paper: 1). Caffe preprocessing only.
        mean_half: Half of the same split whose mean image to subtract (a transfer run used its base
            network's); None: the trained half. Ignored by the torchvision preprocessing (no mean image).
        image_size: Side of the warped image (caffe) or of the resized shorter side (torchvision).
        crop_size: Side of the network input; None: 227 (caffe) or 224 (torchvision).
        cache_dir: Where the mean images are cached; None: ``root/.cache``.
        device_preprocess: caffe preset only: the loader sends uint8 warped images (a quarter of the
            bytes) and the crop, mirror and mean subtraction run on the batch's device (the GPU) in
            ``on_after_batch_transfer``, for the whole batch at once.
        decode_on_device: With ``device_preprocess``: the loader only reads the JPEG files, and they are
            decoded on the batch's device (nvJPEG through ``torchvision.io.decode_jpeg`` on a GPU) and warped
            there; a file that fails is retried with the CPU decoder, then skipped and counted.
    """

    splits = IMAGENET_SPLITS
    in_channels = 3

    def __init__(
        self,
        root: str = "data/imagenet",
        split: str = "random0",
        half: str = "A",
        batch_size: int = 256,
        num_workers: int = 8,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        images_per_class: int | None = None,
        preprocess: Literal["caffe", "torchvision"] = "caffe",
        pixel_scale: float = 1.0,
        mean_half: str | None = None,
        image_size: int = 256,
        crop_size: int | None = None,
        cache_dir: str | None = None,
        device_preprocess: bool = False,
        decode_on_device: bool = False,
    ) -> None:
        super().__init__(
            split, half, batch_size, num_workers, pin_memory, persistent_workers, images_per_class, mean_half,
            pixel_scale,
        )
        if preprocess not in ("caffe", "torchvision"):
            raise ValueError(f"unknown preprocess {preprocess!r}; valid: caffe, torchvision")
        if decode_on_device and not device_preprocess:
            raise ValueError("decode_on_device needs device_preprocess: true (the decoded images stay on the device)")
        if device_preprocess and preprocess != "caffe":
            raise ValueError("device_preprocess applies to preprocess 'caffe' only; set it false for 'torchvision'")
        if preprocess == "torchvision" and pixel_scale != 1.0:
            raise ValueError("pixel_scale belongs to the caffe preprocessing; torchvision's normalises itself")
        self.save_hyperparameters()
        self.root = Path(root)
        self.preprocess = preprocess
        self.image_size = image_size
        self.input_size = crop_size or (227 if preprocess == "caffe" else 224)
        if self.input_size > image_size:
            raise ValueError(f"crop_size {self.input_size} is larger than image_size {image_size}")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.root / ".cache"
        self.device_preprocess = device_preprocess
        self.decode_on_device = decode_on_device
        self._device_mean: Tensor | None = None
        self.wnids = [imagenet_wnids()[i] for i in self.classes]
        self.class_names = [imagenet_class_names()[i] for i in self.classes]
        self._skipped: dict[str, SkipCounter] = {}
        self._skipped_pid = -1

    @property
    def skipped_images(self) -> dict[str, int]:
        """Unreadable images skipped so far by this process and its workers, per dataset."""
        return {name: counter.total for name, counter in self._skipped.items()}

    def _own_skip_counters(self) -> None:
        # Each process (rank) needs its own shared-memory counters: ``ddp_spawn`` pickles the module into
        # every rank, and a counter made in the parent would then be one counter for all of them.
        if self._skipped_pid != os.getpid():
            self._skipped = {"train": SkipCounter(), "val": SkipCounter()}
            self._skipped_pid = os.getpid()

    @override
    def prepare_data(self) -> None:
        self.check_layout()
        if self.preprocess == "caffe":
            self.mean_image()

    @override
    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.check_layout()
        self._own_skip_counters()
        if self.trainer is not None and not any(isinstance(cb, SkippedImagesLogger) for cb in self.trainer.callbacks):
            self.trainer.callbacks.insert(0, SkippedImagesLogger())
        loader: Callable[[str], Any] = read_rgb
        self._device_mean = None  # moved to the device at the first batch
        if self.decode_on_device:  # file bytes travel; decode, warp, crop, mirror and mean on the device
            self.collate_fn, loader = collate_jpeg_bytes, read_bytes_with_path
            train_tf = val_tf = None
        elif self.device_preprocess:  # uint8 warped images travel; crop, mirror and mean on the device
            self.collate_fn = collate_uint8
            train_tf = val_tf = Warp(self.image_size)
        elif self.preprocess == "caffe":
            self.collate_fn = CaffeCollate(self.mean_image(), self.pixel_scale)
            train_tf = CaffeTransform(self.image_size, self.input_size, train=True)
            val_tf = CaffeTransform(self.image_size, self.input_size, train=False)
        else:
            self.collate_fn = collate_skipping_unreadable
            train_tf = TorchvisionPreset(True, self.input_size, self.image_size)
            val_tf = TorchvisionPreset(False, self.input_size, self.image_size)
        if stage == "fit":
            self.train_set = self._folder("train", self.wnids, train_tf, self.images_per_class, loader=loader)
        self.val_set = self._folder("val", self.wnids, val_tf, loader=loader)
        if self.decode_on_device and any(path.endswith(".ppm") for path, _ in self.val_set.samples[:1]):
            raise ValueError(
                f"decode_on_device decodes JPEGs, but {self.root} holds raw PPM images (the --resized-format ppm "
                "copy), which need no decoding: set data.decode_on_device false (keep device_preprocess)"
            )

    @override
    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Undecoded JPEG bytes stay in host memory (the decoder reads them there); the labels move."""
        if isinstance(batch, JpegBatch):
            return batch._replace(labels=batch.labels.to(device))
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    @override
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """With ``device_preprocess``: the caffe crop, mirror and mean subtraction on the batch's device."""
        if not self.device_preprocess:
            return batch
        train = self.trainer is not None and self.trainer.training
        if isinstance(batch, JpegBatch):
            counter = self._skipped.get("train" if train else "val") or SkipCounter()
            images, labels = decode_on_device(batch, self.image_size, batch.labels.device, counter.add)
        else:
            images, labels = batch
        if self._device_mean is None or self._device_mean.device != images.device:
            self._device_mean = self.mean_image().to(images.device)
        return caffe_crop_on_device(images, self._device_mean, self.input_size, train, self.pixel_scale), labels

    def check_layout(self) -> None:
        """Check that ``root/train`` and ``root/val`` hold a folder for every wnid this run reads.

        Raises:
            FileNotFoundError: The root or a subset folder is missing (shows the expected layout and the
                prepare command), or wnid folders are missing (names them).
        """
        layout = EXPECTED_LAYOUT.format(root=self.root, command=PREPARE_COMMAND)
        for subset in ("train", "val"):
            if not (self.root / subset).is_dir():
                raise FileNotFoundError(f"no ImageNet folder {self.root / subset}. Expected layout:\n{layout}")
        mean_wnids = [imagenet_wnids()[i] for i in self.splits.classes(self.split, self.mean_half or self.half)]
        needed = {"train": sorted(set(self.wnids) | set(mean_wnids)), "val": self.wnids}
        for subset, wnids in needed.items():
            missing = [w for w in wnids if not (self.root / subset / w).is_dir()]
            if missing:
                shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
                raise FileNotFoundError(
                    f"{len(missing)} class folder(s) missing from {self.root / subset}: {shown}. "
                    f"Expected layout:\n{layout}"
                )

    def mean_image(self) -> Tensor:
        """The per-pixel mean of the warped training images of ``mean_half`` (or ``half``), float ``[3, S, S]``.

        Computed over the whole training half (first ``images_per_class`` per class if set) on first use,
        then read from ``cache_dir``.
        """
        half = self.mean_half or self.half
        tag = f"{self.split}_{half}" + (f"_n{self.images_per_class}" if self.images_per_class else "")
        # The key binds the cache to the data it was computed from, wherever the cache lives.
        key = hashlib.sha1(f"{self.root.resolve()}|{tag}|{self.image_size}".encode()).hexdigest()[:10]
        path = self.cache_dir / f"mean_{tag}_{self.image_size}px_{key}.pt"

        def compute() -> Tensor:
            wnids = [imagenet_wnids()[i] for i in self.splits.classes(self.split, half)]
            dataset = self._folder("train", wnids, Warp(self.image_size), self.images_per_class, SkipCounter())
            return compute_mean_image(dataset, num_workers=self.num_workers, desc=f"mean image of {tag}")

        return cached_mean_image(path, compute)

    def _folder(
        self,
        subset: Literal["train", "val"],
        wnids: Sequence[str],
        transform: Callable[[Tensor], Any] | None,
        images_per_class: int | None = None,
        skipped: SkipCounter | None = None,
        loader: Callable[[str], Any] = read_rgb,
    ) -> HalfImageFolder:
        """The images of ``wnids`` in ``root/subset``; unreadable ones count in ``skipped`` (default: the subset's)."""
        counter = self._skipped[subset] if skipped is None else skipped
        return HalfImageFolder(os.fspath(self.root / subset), wnids, transform, images_per_class, counter, loader)
