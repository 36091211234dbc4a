"""Generated data for the data tests: a fake ILSVRC2012 tree, fake Fashion-MNIST files, and the Debian ones.

The fixtures built on these (``fake_imagenet``, ``one_thread``) are in the ``conftest.py`` files.
"""

from __future__ import annotations

import io
import struct
import tarfile
from pathlib import Path

import pytest
import torch
from torchvision.io import encode_jpeg

from datamodules.fashion_mnist import DEBIAN_DIR, _idx_files
from datamodules.imagenet_lists import imagenet_val_files, imagenet_wnids

FAKE_SIZE = (12, 16)  # height, width of the fake images


def fake_colour(class_index: int, image_index: int, subset: str = "train") -> tuple[int, int, int]:
    """The solid RGB colour of a fake image: distinct per class, image and subset."""
    offset = 0 if subset == "train" else 128
    red = (class_index * 37 + image_index * 101 + offset) % 256
    return red, (class_index * 11) % 256, (image_index * 80 + 30) % 256


def jpeg_bytes(colour: tuple[int, int, int], size: tuple[int, int] = FAKE_SIZE) -> bytes:
    """A solid-colour JPEG file's bytes."""
    image = torch.tensor(colour, dtype=torch.uint8)[:, None, None].expand(3, *size).contiguous()
    return encode_jpeg(image, quality=95).numpy().tobytes()


def write_jpeg(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = FAKE_SIZE) -> None:
    """Write a solid-colour JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(colour, size))


def make_fake_imagenet(root: Path, train_per_class: int = 2, val_per_class: int = 1) -> Path:
    """``root/{train,val}/<wnid>/`` for all 1000 wnids with tiny solid-colour JPEGs (see :func:`fake_colour`)."""
    for subset, count in (("train", train_per_class), ("val", val_per_class)):
        for c, wnid in enumerate(imagenet_wnids()):
            for j in range(count):
                write_jpeg(root / subset / wnid / f"{wnid}_{j}.JPEG", fake_colour(c, j, subset))
    return root


needs_debian_fashion_mnist = pytest.mark.skipif(
    _idx_files(Path(DEBIAN_DIR)) is None,
    reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_DIR}); `make setup` installs it",
)


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_idx(path: Path, data: torch.Tensor) -> None:
    """An IDX file of unsigned bytes (Fashion-MNIST's format) holding ``data``."""
    header = b"\0\0\x08" + bytes([data.dim()]) + struct.pack(f">{data.dim()}I", *data.shape)
    path.write_bytes(header + data.to(torch.uint8).contiguous().numpy().tobytes())


def make_fake_fashion_mnist(root: Path, train_per_class: int = 30, test_per_class: int = 20, seed: int = 0) -> Path:
    """The four Fashion-MNIST IDX files in ``root`` with learnable images: each of the 10 classes its own random
    28x28 pattern, every image that pattern plus noise (labels cycle through the classes)."""
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.rand(10, 28, 28, generator=generator) * 255
    root.mkdir(parents=True, exist_ok=True)
    for subset, per_class in (("train", train_per_class), ("t10k", test_per_class)):
        labels = torch.arange(10 * per_class) % 10
        noise = torch.rand(len(labels), 28, 28, generator=generator) * 255
        write_idx(root / f"{subset}-images-idx3-ubyte", (0.6 * patterns[labels] + 0.4 * noise).round())
        write_idx(root / f"{subset}-labels-idx1-ubyte", labels)
    return root


def make_ilsvrc_archives(folder: Path) -> tuple[Path, Path]:
    """Tiny stand-ins for the ILSVRC2012 archives: a train tar of 1000 per-class tars (one JPEG each) and
    a flat val tar with, for each class, its first image name in the shipped val list.

    Returns:
        The train tar and the val tar.
    """
    folder.mkdir(parents=True, exist_ok=True)
    train, val = folder / "ILSVRC2012_img_train.tar", folder / "ILSVRC2012_img_val.tar"
    with tarfile.open(train, "w") as outer:
        for c, wnid in enumerate(imagenet_wnids()):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as tar:
                _tar_add(tar, f"{wnid}_1.JPEG", jpeg_bytes(fake_colour(c, 0)))
            _tar_add(outer, f"{wnid}.tar", inner.getvalue())
    first_val = {}
    for name, c in imagenet_val_files():
        first_val.setdefault(c, name)
    with tarfile.open(val, "w") as tar:
        for c, name in sorted(first_val.items()):
            _tar_add(tar, name, jpeg_bytes(fake_colour(c, 0, "val")))
    return train, val
