"""A generated demo image folder to try the folder study on: 8 classes of PNGs and JPEGs, and its split files.

``python -c "from datamodules.demo_folder import write_demo_folder; write_demo_folder('data/demo_images')"``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.io import encode_jpeg, encode_png

DEMO_CLASSES = {
    "cat": "animal",
    "dog": "animal",
    "horse": "animal",
    "owl": "animal",
    "bus": "vehicle",
    "car": "vehicle",
    "ship": "vehicle",
    "truck": "vehicle",
}


def write_demo_folder(root: str | Path, images_per_class: int = 24, train_val: bool = False, seed: int = 0) -> Path:
    """A small image folder to try the study on: 8 classes (4 animals, 4 vehicles) of learnable images.

    Each class has its own colour; animals have horizontal stripes, vehicles vertical ones; every image has noise.
    Even-numbered images are 32x32 PNGs, odd-numbered 40x48 JPEGs. ``superclasses.csv`` (class,super-class) and
    ``half_a.txt`` (two classes of each super-class) are written beside the class folders.

    Args:
        root: Where to write (created).
        images_per_class: Images per class (each of train and val with ``train_val``).
        train_val: Write ``train/`` and ``val/`` (val: a quarter as many images) instead of one folder.
        seed: Seed of the noise.

    Returns:
        ``root``.
    """
    root = Path(root)
    generator = torch.Generator().manual_seed(seed)
    subsets = {"train": images_per_class, "val": max(2, images_per_class // 4)} if train_val else {"": images_per_class}
    for subset, count in subsets.items():
        for c, (name, group) in enumerate(DEMO_CLASSES.items()):
            folder = root / subset / name
            folder.mkdir(parents=True, exist_ok=True)
            colour = torch.tensor([(c * 97) % 256, (c * 53 + 80) % 256, (c * 151 + 160) % 256], dtype=torch.float32)
            for j in range(count):
                height, width = (32, 32) if j % 2 == 0 else (40, 48)
                stripes = (torch.arange(height if group == "animal" else width) // 4 % 2).float() * 60 - 30
                pattern = stripes[:, None].expand(height, width) if group == "animal" else stripes.expand(height, width)
                noise = torch.randn(3, height, width, generator=generator) * 25
                image = (colour[:, None, None] + pattern + noise).clamp(0, 255).to(torch.uint8)
                if j % 2 == 0:
                    (folder / f"{name}_{j:03d}.png").write_bytes(encode_png(image).numpy().tobytes())
                else:
                    (folder / f"{name}_{j:03d}.jpg").write_bytes(encode_jpeg(image, quality=90).numpy().tobytes())
    groups = "".join(f"{name},{group}\n" for name, group in DEMO_CLASSES.items())
    (root / "superclasses.csv").write_text("class,superclass\n" + groups)
    (root / "half_a.txt").write_text("# the classes of half A; B: the others\ncat\ndog\nbus\ncar\n")
    return root
