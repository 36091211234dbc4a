"""ILSVRC2012 halves from disk (``root/train/<wnid>/*.JPEG``, ``root/val/<wnid>/*.JPEG``)."""

from __future__ import annotations

from typing import Literal

from typing_extensions import override

from datamodules.base import Workers
from datamodules.folder import FolderHalfDataModule
from datamodules.imagenet_lists import imagenet_class_names, imagenet_wnids
from datamodules.splits import IMAGENET_SPLITS

__all__ = ["EXPECTED_LAYOUT", "PREPARE_COMMAND", "ImageNetHalf"]

PREPARE_COMMAND = "transferability-prepare-imagenet"
EXPECTED_LAYOUT = """\
  {root}/train/n01440764/*.JPEG   (one folder per wnid, 1000 folders)
  {root}/val/n01440764/*.JPEG     (the 50,000 val images sorted into the same folders)
Make it from the ILSVRC2012 archives with:
  {command} {root} --train ILSVRC2012_img_train.tar --val ILSVRC2012_img_val.tar [--resized {root}_256]"""


class ImageNetHalf(FolderHalfDataModule):
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
        num_workers: Training loader worker processes per rank (``auto``: from the CPUs per rank).
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
        val_num_workers: Validation loader workers per rank; ``auto``: ``num_workers``, at most 2.
    """

    splits = IMAGENET_SPLITS
    in_channels = 3

    def __init__(
        self,
        root: str = "data/imagenet",
        split: str = "random0",
        half: str = "A",
        batch_size: int = 256,
        num_workers: Workers = "auto",
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
        val_num_workers: Workers = "auto",
    ) -> None:
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
        self.dataset_classes = imagenet_wnids()
        self.configure_images(root, preprocess, image_size, crop_size, cache_dir, device_preprocess, decode_on_device)
        self.wnids = self.class_folders(half)
        self.class_names = [imagenet_class_names()[i] for i in self.classes]

    @override
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
        mean_wnids = self.class_folders(self.mean_half or self.half)
        needed = {"train": sorted(set(self.wnids) | set(mean_wnids)), "val": self.wnids}
        for subset, wnids in needed.items():
            missing = [w for w in wnids if not (self.root / subset / w).is_dir()]
            if missing:
                shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
                raise FileNotFoundError(
                    f"{len(missing)} class folder(s) missing from {self.root / subset}: {shown}. "
                    f"Expected layout:\n{layout}"
                )
