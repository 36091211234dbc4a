"""The data modules that read class folders: :class:`FolderHalfDataModule`, what ``ImageNetHalf`` and
``ImageFolderHalves`` share, and :class:`ImageFolderHalves`. (Runs record these classes' import paths: they stay here.)

:class:`FolderHalfDataModule` is the one path from image files to batches: the class folders of a half
(:class:`~datamodules.folder_dataset.HalfImageFolder`), unreadable files skipped and counted, the caffe geometry (warp,
crop, mirror) minus a mean image cached on disk, or torchvision's preset, on the loader or on the device.
``ImageNetHalf`` reads the authors' ILSVRC2012 classes with it; :class:`ImageFolderHalves` reads any folder of class
folders (:mod:`datamodules.folder_layout`), split into halves by seed, by a list or by super-class
(:func:`datamodules.split_files.file_splits`).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.cli import SaveConfigCallback
from torch import Tensor
from typing_extensions import override

from datamodules.base import HalfDataModule, Workers
from datamodules.batches import (
    CaffeCollate,
    JpegBatch,
    caffe_crop_on_device,
    collate_jpeg_bytes,
    collate_uint8,
    decode_on_device,
)
from datamodules.corrupt import SkipCounter, SkippedImagesLogger, collate_skipping_unreadable
from datamodules.folder_dataset import HalfImageFolder, Samples
from datamodules.folder_layout import detect_channels, holdout, read_layout
from datamodules.image_codecs import READ_MODES, read_bytes_with_path, read_image, read_rgb
from datamodules.mean_image import cached_mean_image, compute_mean_image
from datamodules.split_files import file_checksum, file_splits
from datamodules.splits import check_half_sizes
from datamodules.transforms import GEOMETRY_PRESETS, CaffeTransform, TorchvisionPreset, Warp, subtracted_mean


class FolderHalfDataModule(HalfDataModule):
    """A half whose images are files in class folders: reading, skipping, preprocessing and the mean image.

    Subclasses call :meth:`configure_images` in ``__init__`` and say where the images are: ``dataset_classes`` (every
    class folder name; a half's indices point into it), :meth:`subset_dir`, and optionally :meth:`keep` (a share of
    a folder), :meth:`mean_key` (what else the training images depend on) and :meth:`check_layout`.

    Unreadable images are skipped with a warning and counted; ``setup`` adds a
    :class:`~datamodules.corrupt.SkippedImagesLogger` to the trainer, which logs ``data/skipped_train`` and
    ``data/skipped_val`` every epoch. The mean image is computed once (in ``prepare_data``, on one process per
    node) and cached in ``cache_dir``.
    """

    dataset_classes: Sequence[str]
    mean_kind: str = "pixel"

    def configure_images(
        self,
        root: str,
        preprocess: str,
        image_size: int,
        crop_size: int | None,
        cache_dir: str | None,
        device_preprocess: bool,
        decode_on_device: bool,
    ) -> None:
        """Check and set the preprocessing (see ``ImageNetHalf``'s arguments of the same names).

        Raises:
            ValueError: An unknown preset, settings that do not go together, or a crop larger than the image.
        """
        if preprocess not in ("caffe", "torchvision"):
            raise ValueError(f"unknown preprocess {preprocess!r}; valid: caffe, torchvision")
        if decode_on_device and not device_preprocess:
            raise ValueError("decode_on_device needs device_preprocess: true (the decoded images stay on the device)")
        if device_preprocess and preprocess != "caffe":
            raise ValueError("device_preprocess applies to preprocess 'caffe' only; set it false for 'torchvision'")
        if preprocess == "torchvision" and self.pixel_scale != 1.0:
            raise ValueError("pixel_scale belongs to the caffe preprocessing; torchvision's normalises itself")
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
        self._skipped: dict[str, SkipCounter] = {}
        self._skipped_pid = -1

    def class_folders(self, half: str) -> list[str]:
        """The class folder names of ``half`` of this module's split, in label order."""
        return [self.dataset_classes[i] for i in self.splits.classes(self.split, half)]

    def subset_dir(self, subset: Literal["train", "val"]) -> Path:
        """The folder of class folders holding ``subset``'s images."""
        return self.root / subset

    def keep(self, subset: Literal["train", "val"]) -> Callable[[Samples], list[int]] | None:
        """Which of the subset folder's images belong to ``subset`` (None: all)."""
        return None

    def mean_key(self) -> str:
        """What the mean image depends on besides the root, split, half, image count and size ("" : nothing)."""
        return ""

    def check_layout(self) -> None:
        """Check, before reading, that the folders this run reads exist (nothing to check by default)."""

    def reader(self) -> Callable[[str], Tensor]:
        """Reads an image file to uint8 ``[in_channels, H, W]``."""
        return read_rgb if self.in_channels == 3 else functools.partial(read_image, channels=self.in_channels)

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
        if self.trainer is not None:
            callbacks = self.trainer.callbacks  # type: ignore[attr-defined]  # set at run time by Lightning
            if not any(isinstance(cb, SkippedImagesLogger) for cb in callbacks):
                callbacks.insert(0, SkippedImagesLogger())
        loader: Callable[[str], Any] = self.reader()
        train_tf: Callable[[Tensor], Any] | None
        val_tf: Callable[[Tensor], Any] | None
        self._device_mean = None  # moved to the device at the first batch
        if self.decode_on_device:  # file bytes travel; decode, warp, crop, mirror and mean on the device
            self.collate_fn, loader = collate_jpeg_bytes, read_bytes_with_path
            train_tf = val_tf = None
        elif self.device_preprocess:  # uint8 warped images travel; crop, mirror and mean on the device
            self.collate_fn = collate_uint8
            train_tf = val_tf = Warp(self.image_size)
        elif self.preprocess == "caffe":
            self.collate_fn = CaffeCollate(self.subtracted_mean(), self.pixel_scale)
            train_tf = CaffeTransform(self.image_size, self.input_size, train=True)
            val_tf = CaffeTransform(self.image_size, self.input_size, train=False)
        else:
            self.collate_fn = collate_skipping_unreadable
            train_tf = TorchvisionPreset(True, self.input_size, self.image_size)
            val_tf = TorchvisionPreset(False, self.input_size, self.image_size)
        folders = self.class_folders(self.half)
        if stage == "fit":
            self.train_set = self._folder("train", folders, train_tf, self.images_per_class, loader=loader)
        self.val_set = self._folder("val", folders, val_tf, loader=loader)
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
            self._device_mean = self.subtracted_mean().to(images.device)
        return caffe_crop_on_device(images, self._device_mean, self.input_size, train, self.pixel_scale), labels

    def mean_image(self) -> Tensor:
        """The per-pixel mean of the warped training images of ``mean_half`` (or ``half``), float ``[C, S, S]``.

        Computed over the whole training half (first ``images_per_class`` per class if set) on first use,
        then read from ``cache_dir``.
        """
        half = self.mean_half or self.half
        tag = f"{self.split}_{half}" + (f"_n{self.images_per_class}" if self.images_per_class else "")
        # The key binds the cache to the data it was computed from, wherever the cache lives.
        source = f"{self.root.resolve()}|{tag}|{self.image_size}{self.mean_key()}"
        key = hashlib.sha1(source.encode()).hexdigest()[:10]
        path = self.cache_dir / f"mean_{tag}_{self.image_size}px_{key}.pt"

        def compute() -> Tensor:
            folders = self.class_folders(half)
            dataset = self._folder("train", folders, Warp(self.image_size), self.images_per_class, SkipCounter())
            return compute_mean_image(dataset, num_workers=self.num_workers, desc=f"mean image of {tag}")

        return cached_mean_image(path, compute)

    def subtracted_mean(self) -> Tensor:
        """The mean the caffe preprocessing subtracts: the mean image, or its per-channel means (``mean_kind``)."""
        return subtracted_mean(self.mean_image(), self.mean_kind)

    def _folder(
        self,
        subset: Literal["train", "val"],
        folders: Sequence[str],
        transform: Callable[[Tensor], Any] | None,
        images_per_class: int | None = None,
        skipped: SkipCounter | None = None,
        loader: Callable[[str], Any] | None = None,
    ) -> HalfImageFolder:
        """The images of ``folders`` in ``subset``; unreadable ones count in ``skipped`` (default: the subset's)."""
        counter = self._skipped[subset] if skipped is None else skipped
        return HalfImageFolder(
            os.fspath(self.subset_dir(subset)),
            folders,
            transform,
            images_per_class,
            counter,
            loader or self.reader(),
            keep=self.keep(subset),
        )


# ----- a researcher's own folder ------------------------------------------------------------------------------------


class ImageFolderHalves(FolderHalfDataModule):
    """One half of a researcher's own image folder, split like the paper's ImageNet: by seed, by list or by group.

    The folder holds one sub-folder per class (``root/<class>/``, ``val_fraction`` of each class held out by a seed),
    or ``root/train/<class>/`` and ``root/val/<class>/``; any image size, channels (1 to 4) and class count. Splits
    (:func:`datamodules.split_files.file_splits`): ``random<seed>`` (the paper's random halves ``A``/``B`` of the sorted
    classes), ``whole`` (half ``all``), and one per file of ``split_files``: an explicit list of A's (and B's)
    classes, or a grouping (class -> super-class) that keeps super-classes whole, as the paper's man-made / natural.

    Preprocessing: the paper's caffe geometry (warp to ``image_size``², a random ``crop_size`` crop and mirror for
    training, the centre crop for validation) minus the training half's mean: per pixel (the paper) or per channel.
    Presets: ``large`` (256, 227: the paper's) and ``small`` (32, 28: CIFAR-sized images).

    Everything is checked before training, each error naming the file, class or setting and what to do: an empty
    class folder, a class in a split file that the folder lacks, a half with fewer than two classes, images of
    mixed channel counts, val classes that differ from train's, a split file that changed since it was recorded.
    ``setup`` writes what it resolved (classes, channels, sizes, split-file checksums) into the run's saved
    ``config.yaml`` where the config left them unset, so ``fit --config <run>/config.yaml`` reads the same data.

    Args:
        root: The image folder.
        split: ``random<seed>``, ``whole`` or a name of ``split_files``.
        half: The half to train and validate on.
        split_files: Split name -> split file (``.txt`` list of A, ``.yaml`` halves or grouping, ``.csv`` grouping).
        split_checksums: Split name -> the sha256 recorded of its file; a changed file is refused.
        classes: The classes (folder names) to use; None: every class folder. Sorted: label order.
        val_fraction: The share of each class held out for validation when ``root`` has no ``train``/``val``.
        holdout_seed: The seed of which images are held out.
        channels: Read every image with this many channels (1 grey, 3 RGB, ...), converting; None: the images' own
            count, which must be the same for all.
        preset: ``large`` or ``small``: the default ``image_size`` and ``crop_size``.
        image_size: Side of the warped image; None: the preset's.
        crop_size: Side of the network input; None: the preset's.
        mean: ``pixel`` (the mean image of the training half, the paper's) or ``channel`` (its per-channel means).
        batch_size: Global batch size, divided across DDP processes.
        num_workers: Training loader worker processes per rank (``auto``: from the CPUs per rank).
        pin_memory: Pin host memory (when an accelerator is present).
        persistent_workers: Keep workers alive between epochs.
        images_per_class: Keep the first N training images of each class (sorted file names).
        mean_half: Half of the same split whose mean to subtract (a transfer run: its base's); None: own half.
        pixel_scale: Factor on the mean-subtracted 0-255 pixels (Caffe's ``transform_param.scale``; the paper: 1).
        cache_dir: Where the mean images are cached; None: ``root/.cache``.
        device_preprocess: The loader sends uint8 warped images; crop, mirror and mean run on the batch's device.
        val_num_workers: Validation loader workers per rank; ``auto``: ``num_workers``, at most 2.
    """

    def __init__(
        self,
        root: str,
        split: str = "random0",
        half: str = "A",
        split_files: dict[str, str] | None = None,
        split_checksums: dict[str, str] | None = None,
        classes: list[str] | None = None,
        val_fraction: float = 0.2,
        holdout_seed: int = 0,
        channels: int | None = None,
        preset: Literal["large", "small"] = "large",
        image_size: int | None = None,
        crop_size: int | None = None,
        mean: Literal["pixel", "channel"] = "pixel",
        batch_size: int = 256,
        num_workers: Workers = "auto",
        pin_memory: bool = True,
        persistent_workers: bool = True,
        images_per_class: int | None = None,
        mean_half: str | None = None,
        pixel_scale: float = 1.0,
        cache_dir: str | None = None,
        device_preprocess: bool = False,
        val_num_workers: Workers = "auto",
    ) -> None:
        if preset not in GEOMETRY_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(GEOMETRY_PRESETS)}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction is the share of each class held out, in (0, 1); got {val_fraction}")
        if channels is not None and channels not in READ_MODES:
            raise ValueError(
                f"channels must be one of {sorted(READ_MODES)} (grey, grey+alpha, RGB, RGBA), got {channels}"
            )
        subtracted_mean(torch.zeros(1, 1, 1), mean)  # an unknown mean fails here, by name
        self.folders, self.dataset_classes = read_layout(root, classes)
        self.splits = file_splits(self.dataset_classes, split_files, split_checksums)
        files = split_files or {}
        where = (
            f"move classes into it in {files[split]}"
            if split in files
            else f"a random split needs 4 or more; add class folders to {root}"
        )
        check_half_sizes(self.splits, split, self.dataset_classes, where)
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
        self.in_channels = channels or detect_channels(self.folders, self.dataset_classes)
        self.mean_kind = mean
        self.split_files = dict(split_files or {})
        self.val_fraction, self.holdout_seed = val_fraction, holdout_seed
        size, crop = GEOMETRY_PRESETS[preset]
        self.configure_images(root, "caffe", image_size or size, crop_size or crop, cache_dir, device_preprocess, False)
        self.class_names = self.class_folders(half)

    @override
    def subset_dir(self, subset: Literal["train", "val"]) -> Path:
        return self.folders[0] if len(self.folders) == 1 else self.folders[subset == "val"]

    @override
    def keep(self, subset: Literal["train", "val"]) -> Callable[[Samples], list[int]] | None:
        if len(self.folders) == 2:
            return None
        return holdout(self.val_fraction, self.holdout_seed, subset == "val")

    @override
    def mean_key(self) -> str:
        holdout_key = "" if len(self.folders) == 2 else f"|holdout {self.val_fraction} {self.holdout_seed}"
        return f"|{self.in_channels}ch{holdout_key}|{','.join(self.class_folders(self.mean_half or self.half))}"

    @override
    def check_layout(self) -> None:
        """Check the folder again (it may have changed since construction)."""
        read_layout(self.root, self.dataset_classes)

    @override
    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.pin_run_config()

    def resolved(self) -> dict[str, Any]:
        """What this module read and derived: the settings that make a config re-read the same data."""
        return {
            "classes": list(self.dataset_classes),
            "channels": self.in_channels,
            "image_size": self.image_size,
            "crop_size": self.input_size,
            "split_checksums": {name: file_checksum(path) for name, path in self.split_files.items()} or None,
        }

    def pin_run_config(self) -> None:
        """Write :meth:`resolved` into the run's saved config where it left a value unset (None).

        Lightning's ``SaveConfigCallback`` writes ``config.yaml`` in its own ``setup``, which runs after the data
        module's; the values also reach the config that loggers record.
        """
        for callback in getattr(self.trainer, "callbacks", None) or []:
            config = getattr(callback, "config", None) if isinstance(callback, SaveConfigCallback) else None
            init_args = config.get("data.init_args") if config is not None else None
            if (
                config is None
                or init_args is None
                or not str(config.get("data.class_path", "")).endswith(type(self).__name__)
            ):
                continue
            for key, value in self.resolved().items():
                if init_args.get(key) is None:
                    init_args[key] = value

    @classmethod
    def study_halves(cls, init_args: Mapping[str, Any]) -> Callable[[str], tuple[str, ...]]:
        """The halves of each split of the folder a study's data config names (for the study's grid).

        Raises:
            FileNotFoundError, ValueError: As the constructor's, for the folder and split files.
        """
        _, classes = read_layout(init_args["root"], init_args.get("classes"))
        return file_splits(classes, init_args.get("split_files"), init_args.get("split_checksums")).halves

    @classmethod
    def study_pins(cls, init_args: Mapping[str, Any], split: str) -> dict[str, Any]:
        """The data settings a study writes into each cell's config on ``split``: the classes, their channels and the
        checksum of the split's file, so that a cell whose folder or split file changed is refused.

        Raises:
            FileNotFoundError, ValueError: As the constructor's, for the folder and split files.
        """
        folders, classes = read_layout(init_args["root"], init_args.get("classes"))
        pins: dict[str, Any] = {
            "classes": classes,
            "channels": init_args.get("channels") or detect_channels(folders, classes),
        }
        files = init_args.get("split_files") or {}
        if split in files:
            pins["split_checksums"] = {**(init_args.get("split_checksums") or {}), split: file_checksum(files[split])}
        return pins
