"""Training-loader throughput, images per second per core, on generated ImageNet-sized JPEGs.

Side by side in one run, on the same files:

1. ``ImageNetHalf`` caffe preset from the JPEGs (decode, warp 256x256, random 227 crop, mirror, mean image);
2. the same from the pre-resized 256x256 copy that ``transferability-prepare-imagenet --resized`` writes;
3. torchvision's reference pipeline: ``ImageFolder`` + PIL + ``RandomResizedCrop(224)``, flip, ``ToTensor``,
   ``Normalize``;
4. ``ImageNetHalf`` torchvision preset (the same geometry on decoded tensors);
5. the caffe preset from the raw PPM copy (``--resized-format ppm``: no decoding);
6. rows 2 and 5 with ``device_preprocess`` (the loader stops at uint8 256x256 images; crop, mirror and mean
   run on the device after the transfer, not timed here).

Each loader runs in the main process (``num_workers=0``) with one torch thread, so images/s is per core;
DataLoader workers multiply it by about the number of cores. The best of ``--repeats`` passes is kept,
to discount other load on the machine.

    python -m benchmarks.loader [--images-per-class 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T
from torchvision.io import encode_jpeg

from datamodules import ImageNetHalf
from datamodules.imagenet_lists import imagenet_wnids
from datamodules.prepare import check_images
from datamodules.splits import IMAGENET_SPLITS
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD

SPLIT, HALF = "random0", "A"
SIZES = ((375, 500), (500, 375), (333, 500))  # height, width: the usual ImageNet shapes


def photo_like(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """A uint8 RGB image with smooth structure plus grain, so it compresses like a photo (~90 KB at q90)."""
    coarse = torch.rand(1, 3, height // 8, width // 8, generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    grain = torch.rand(3, height, width, generator=generator) * 40
    return (smooth * 200 + grain).clamp(0, 255).to(torch.uint8)


def make_tree(root: Path, images_per_class: int, distinct: int = 48) -> int:
    """JPEGs (quality 90) for the benchmark half's classes in ``root/{train,val}/<wnid>/``; returns the count.

    ``distinct`` different images are generated and cycled through the files (generating is slow).
    """
    generator = torch.Generator().manual_seed(0)
    images = (photo_like(*SIZES[i % len(SIZES)], generator) for i in range(distinct))
    encoded = [encode_jpeg(image, quality=90).numpy().tobytes() for image in images]
    count = 0
    for c in IMAGENET_SPLITS.classes(SPLIT, HALF):
        wnid = imagenet_wnids()[c]
        for subset, n in (("train", images_per_class), ("val", 1)):
            folder = root / subset / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                (folder / f"{wnid}_{j}.JPEG").write_bytes(encoded[(c * images_per_class + j) % distinct])
                count += subset == "train"
    return count


def images_per_second(loader: DataLoader, repeats: int) -> float:
    """Best images/s over ``repeats`` full passes of ``loader`` (after one warm-up batch)."""
    next(iter(loader))
    best = 0.0
    for _ in range(repeats):
        start, seen = time.perf_counter(), 0
        for images, _ in loader:
            seen += len(images)
        best = max(best, seen / (time.perf_counter() - start))
    return best


def half_loader(
    root: Path, preprocess: Literal["caffe", "torchvision"], batch_size: int, device_preprocess: bool = False
) -> DataLoader:
    """The training loader of ``ImageNetHalf``; with ``device_preprocess`` its batches are uint8 256x256 images
    whose crop, mirror and mean subtraction are left to the device (not timed here)."""
    dm = ImageNetHalf(
        str(root),
        SPLIT,
        HALF,
        batch_size=batch_size,
        num_workers=0,
        preprocess=preprocess,
        device_preprocess=device_preprocess,
    )
    dm.setup("fit")  # the caffe preprocessing computes the mean image here, outside the timing
    return dm.train_dataloader()


def reference_loader(root: Path, batch_size: int) -> DataLoader:
    transform = T.Compose(
        [T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    return DataLoader(datasets.ImageFolder(str(root / "train"), transform), batch_size=batch_size, shuffle=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-per-class", type=int, default=2, help="train images for each of the 500 classes")
    parser.add_argument("--repeats", type=int, default=3, help="passes per loader; the best is kept")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        root, resized, raw = Path(tmp) / "imagenet", Path(tmp) / "imagenet_256", Path(tmp) / "imagenet_256_ppm"
        start = time.perf_counter()
        n = make_tree(root, args.images_per_class)
        print(f"generated {n} train JPEGs in {time.perf_counter() - start:.1f} s")
        sizes = [p.stat().st_size for p in (root / "train").glob("*/*.JPEG")]
        start = time.perf_counter()
        check_images(root, resized, workers=1)
        prepare_rate = (n + 500) / (time.perf_counter() - start)
        sizes_256 = [p.stat().st_size for p in (resized / "train").glob("*/*.JPEG")]
        check_images(root, raw, workers=1, fmt="ppm")

        rows = [
            ("caffe preset, JPEGs (ImageNetHalf)", half_loader(root, "caffe", args.batch_size)),
            ("caffe preset, pre-resized 256x256 copy", half_loader(resized, "caffe", args.batch_size)),
            ("torchvision reference: ImageFolder + PIL + RandomResizedCrop", reference_loader(root, args.batch_size)),
            ("torchvision preset, JPEGs (ImageNetHalf)", half_loader(root, "torchvision", args.batch_size)),
            (
                "caffe preset, pre-resized copy, device_preprocess (loader decodes only; crop/mean on the device)",
                half_loader(resized, "caffe", args.batch_size, device_preprocess=True),
            ),
            ("caffe preset, raw PPM copy (--resized-format ppm)", half_loader(raw, "caffe", args.batch_size)),
            (
                "caffe preset, raw PPM copy, device_preprocess (loader reads only; crop/mean on the device)",
                half_loader(raw, "caffe", args.batch_size, device_preprocess=True),
            ),
        ]
        rates = [(name, images_per_second(loader, args.repeats)) for name, loader in rows]

    reference = next(rate for name, rate in rates if name.startswith("torchvision reference"))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (load average {load}), "
        f"{torch.get_num_threads()} torch thread, "
        f"torch {torch.__version__}; {n} train images, mean JPEG {sum(sizes) / len(sizes) / 1e3:.0f} KB "
        f"(256x256 copy {sum(sizes_256) / len(sizes_256) / 1e3:.0f} KB), batch {args.batch_size}\n"
    )
    print("| training loader (one core, num_workers=0) | images/s per core | vs reference |")
    print("|---|---:|---:|")
    for name, rate in rates:
        print(f"| {name} | {rate:.0f} | {rate / reference:.2f}x |")
    print(f"\nprepare (decode + warp + encode the 256x256 copy, 1 process): {prepare_rate:.0f} images/s")


if __name__ == "__main__":
    main()
