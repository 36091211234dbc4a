"""The layout of a researcher's image folder: reading and checking its class folders, the images' channel count,
and the seeded hold-out of a single folder's validation images."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from datamodules.folder_dataset import Samples
from datamodules.image_codecs import image_channels

LAYOUT = """\
  {root}/<class>/*.png|*.jpg|...                  (one folder per class; data.val_fraction of each held out)
or
  {root}/train/<class>/*  and  {root}/val/<class>/*  (the same class folders in both)"""


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and has_file_allowed_extension(p.name, IMG_EXTENSIONS))


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_layout(root: str | Path, classes: Sequence[str] | None = None) -> tuple[list[Path], list[str]]:
    """The folders of class folders under ``root`` (``[train, val]``, or ``[root]`` for a hold-out) and the classes.

    Args:
        root: The image folder (see ``LAYOUT``).
        classes: The classes to use (None: every class folder); they must all be there.

    Returns:
        The folders holding class folders, and the sorted class names.

    Raises:
        FileNotFoundError: No root, a train folder without val (or the reverse), no class folder, or a listed class
            missing.
        ValueError: An empty class folder, or val classes that differ from train's (each named, with what to do).
    """
    root = Path(root)
    layout = LAYOUT.format(root=root)
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder {root} (data.init_args.root). Expected layout:\n{layout}")
    train, val = root / "train", root / "val"
    if train.is_dir() != val.is_dir():
        missing = val if train.is_dir() else train
        raise FileNotFoundError(
            f"{root} has {'train' if train.is_dir() else 'val'}/ but no {missing}: add it with the "
            f"same class folders, or put the class folders in {root} itself. Expected:\n{layout}"
        )
    folders = [train, val] if train.is_dir() else [root]
    found = _class_dirs(folders[0])
    if not found:
        raise FileNotFoundError(f"no class folders in {folders[0]}. Expected layout:\n{layout}")
    if len(folders) == 2:
        in_val = _class_dirs(val)
        only_train, only_val = sorted(set(found) - set(in_val)), sorted(set(in_val) - set(found))
        if only_train or only_val:
            raise ValueError(
                f"the classes of {val} differ from those of {train}: only in train: {only_train or 'none'}; only in "
                f"val: {only_val or 'none'}. Give both the same class folders (a class needs validation images)"
            )
    chosen = sorted(found if classes is None else classes)
    missing_classes = [name for name in chosen if name not in found]
    if missing_classes:
        raise FileNotFoundError(
            f"data.classes names {len(missing_classes)} class(es) with no folder in "
            f"{folders[0]}: {', '.join(missing_classes)}. Restore the folders or drop them from "
            "data.classes"
        )
    for folder in folders:
        for name in chosen:
            if not any(has_file_allowed_extension(e.name, IMG_EXTENSIONS) for e in os.scandir(folder / name)):
                raise ValueError(
                    f"class folder {folder / name} holds no image file ({', '.join(IMG_EXTENSIONS)}): add images, "
                    f"or delete the folder{' (and list the others in data.classes)' if classes else ''}"
                )
    return folders, chosen


def detect_channels(folders: Sequence[Path], classes: Sequence[str]) -> int:
    """The one channel count of every readable image of ``classes`` (headers only; unreadable files are left to the
    loader, which skips and counts them).

    Raises:
        ValueError: Images of several channel counts (counts and an example file of each), or none readable.
    """
    found: dict[int, list[Path]] = {}
    for folder in folders:
        for name in classes:
            for path in _image_files(folder / name):
                channels = image_channels(str(path))
                if channels is not None:
                    found.setdefault(channels, []).append(path)
    if not found:
        raise ValueError(f"no readable image in the class folders of {folders[0]}: check the files")
    if len(found) > 1:
        counts = "; ".join(
            f"{c} channel(s): {len(paths)} file(s), e.g. {paths[0]}" for c, paths in sorted(found.items())
        )
        most = max(found, key=lambda c: len(found[c]))
        raise ValueError(
            f"the images of {folders[0].parent if len(folders) == 2 else folders[0]} have mixed channel "
            f"counts ({counts}). Set data.init_args.channels (e.g. {most}) to read every image with that "
            "many channels, or convert the odd files"
        )
    return next(iter(found))


def holdout(fraction: float, seed: int, val: bool) -> Callable[[Samples], list[int]]:
    """The hold-out of a single folder: ``fraction`` of each class's images (at least one, never all) for val.

    Which images is a seeded permutation of the class's sorted files, drawn from ``(seed, class folder name)``: the
    same whichever half or subset of classes a run reads.
    """
    return functools.partial(_holdout_indices, fraction, seed, val)


def _holdout_indices(fraction: float, seed: int, val: bool, samples: Samples) -> list[int]:
    by_class: dict[str, list[int]] = {}
    for index, (path, _) in enumerate(samples):
        by_class.setdefault(Path(path).parent.name, []).append(index)
    kept = []
    for name, indices in by_class.items():
        count = len(indices)
        held = min(count - 1, max(1, round(fraction * count))) if count > 1 else 0
        draw = int.from_bytes(hashlib.sha256(f"holdout/{seed}/{name}".encode()).digest()[:8], "little")
        chosen = set(np.random.default_rng(draw).permutation(count)[:held].tolist())
        kept += [i for k, i in enumerate(indices) if (k in chosen) == val]
    return sorted(kept)
