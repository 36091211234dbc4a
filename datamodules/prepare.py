"""``transferability-prepare-imagenet``: the ILSVRC2012 archives into the layout ``ImageNetHalf`` reads.

    transferability-prepare-imagenet ROOT --train ILSVRC2012_img_train.tar --val ILSVRC2012_img_val.tar \\
        [--resized ROOT_256 [--resized-format jpeg|ppm]]

1. ``--train``: the train tar of per-class tars (or a folder of those tars) -> ``ROOT/train/<wnid>/``.
   A class is written to ``<wnid>.partial`` and renamed when complete, so a rerun resumes.
2. ``--val``: the flat val tar (or folder) -> ``ROOT/val/<wnid>/``, labelled by ``--val-labels``
   (``filename class_index`` lines in the sorted-wnid order; default: the list shipped with the project).
3. Checks that all 1000 wnids have images in both subsets, decodes every image (listing the bad ones in
   ``ROOT/bad_images.txt``) and, with ``--resized``, writes a 256x256 warped copy, as Caffe's
   ``convert_imageset`` did, which loads several times faster: JPEG (quality 95, about 46 KB an image) or,
   with ``--resized-format ppm``, raw RGB pixels in binary PPM files (196 KB an image, no decoding at all;
   Caffe's database held raw pixels too).

Without ``--train``/``--val`` it checks (and resizes) an existing ``ROOT``. Exit status 1 when classes
are missing or images are bad.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import torch
from torchvision.io import encode_jpeg

from datamodules.image_codecs import DECODE_ERRORS, encode_ppm, read_rgb
from datamodules.imagenet_lists import imagenet_val_files, imagenet_wnids, parse_file_list
from datamodules.progress import progress
from datamodules.transforms import warp
from experiments.errors import InputFileError
from models.files import write_atomic

BAD_LIST = "bad_images.txt"
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".ppm")
RESIZED_FORMATS = ("jpeg", "ppm")


def _member_file(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    """The contents of ``member``, a regular file (``extractfile`` gives None only for other kinds of member)."""
    fileobj = tar.extractfile(member)
    if fileobj is None:
        raise ValueError(f"tar member {member.name!r} is not a regular file")
    return fileobj


def _class_tars(train: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """``(wnid, file object)`` of each per-class tar in the train tar or folder."""
    if train.is_dir():
        for path in sorted(train.glob("*.tar")):
            with path.open("rb") as f:
                yield path.stem, f
        return
    with tarfile.open(train, mode="r|*") as outer:
        for member in outer:
            if member.isfile() and member.name.endswith(".tar"):
                yield Path(member.name).stem, _member_file(outer, member)


def extract_train(train: Path, out: Path) -> int:
    """Unpack the per-class tars into ``out/<wnid>/``; classes already there are skipped.

    Returns:
        The number of classes written.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for wnid, fileobj in progress(_class_tars(train), "train classes", "class", total=1000):
        final = out / wnid
        if final.is_dir():
            continue
        partial = out / f"{wnid}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        with tarfile.open(fileobj=fileobj, mode="r|*") as inner:
            for member in inner:
                if member.isfile():  # basename: never write outside the class folder
                    (partial / Path(member.name).name).write_bytes(_member_file(inner, member).read())
        os.replace(partial, final)
        written += 1
    return written


def _val_images(val: Path) -> Iterator[tuple[str, bytes]]:
    """``(file name, bytes)`` of each image in the flat val tar or folder."""
    if val.is_dir():
        for path in sorted(val.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                yield path.name, path.read_bytes()
        return
    with tarfile.open(val, mode="r|*") as tar:
        for member in tar:
            if member.isfile():
                yield Path(member.name).name, _member_file(tar, member).read()


def sort_val(val: Path, out: Path, labels: dict[str, int]) -> list[str]:
    """Write each val image to ``out/<wnid>/<name>`` by its label.

    Returns:
        The names of images that have no label (left out).
    """
    wnids = imagenet_wnids()
    unlabelled = []
    for name, data in progress(_val_images(val), "val images", "img", total=len(labels)):
        if name not in labels:
            unlabelled.append(name)
            continue
        folder = out / wnids[labels[name]]
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / name, data)
    return unlabelled


def missing_classes(root: Path) -> dict[str, list[str]]:
    """The wnids with no image folder (or an empty one) in ``root/train`` and ``root/val``."""

    def has_images(folder: Path) -> bool:
        return folder.is_dir() and any(folder.iterdir())

    return {subset: [w for w in imagenet_wnids() if not has_images(root / subset / w)] for subset in ("train", "val")}


def _images(root: Path) -> list[str]:
    """The images under ``root/{train,val}/<wnid>/``, as sorted paths relative to ``root``."""
    found = []
    for subset in ("train", "val"):
        base = root / subset
        wnids = sorted(os.listdir(base)) if base.is_dir() else []
        for wnid in (w for w in wnids if not w.endswith(".partial") and (base / w).is_dir()):
            names = sorted(n for n in os.listdir(base / wnid) if n.lower().endswith(IMAGE_SUFFIXES))
            found += [f"{subset}/{wnid}/{name}" for name in names]
    return found


def _check_one(task: tuple[Path, str, Path | None, int, int, str]) -> tuple[str, str | None]:
    """Decode one image; write its warped copy if asked. Returns its relative path and the error, if any.

    An image whose copy exists is skipped (a copy is written atomically, and only for an image that decodes),
    so a rerun resumes the copy where it stopped.
    """
    root, relative, resized, size, quality, fmt = task
    copy = None
    if resized is not None:  # the PPM copy keeps the name with its own suffix
        copy = (resized / relative).with_suffix(".ppm") if fmt == "ppm" else resized / relative
    if copy is not None and copy.exists():
        return relative, None
    try:
        image = read_rgb(os.fspath(root / relative))
    except DECODE_ERRORS as err:
        return relative, str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    if copy is not None:
        warped = warp(image, size)
        data = encode_ppm(warped) if fmt == "ppm" else encode_jpeg(warped, quality=quality).numpy().tobytes()
        copy.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(copy, data)
    return relative, None


def _one_thread() -> None:
    torch.set_num_threads(1)


def check_images(
    root: Path, resized: Path | None = None, size: int = 256, quality: int = 95, workers: int = 1, fmt: str = "jpeg"
) -> list[tuple[str, str]]:
    """Decode every image under ``root/{train,val}``, optionally writing warped copies under ``resized``.

    Args:
        root: The ImageNet root.
        resized: Root of the ``size`` x ``size`` copy (same layout); None: no copy.
        size: Side of the copy (256, the paper's warp).
        quality: JPEG quality of the copy.
        workers: Decoding processes.
        fmt: The copy's format: ``jpeg`` (same file names), or ``ppm`` (raw pixels, suffix ``.ppm``).

    Returns:
        ``(path relative to root, error)`` of each image that does not decode, sorted.
    """
    if fmt not in RESIZED_FORMATS:
        raise ValueError(f"unknown resized format {fmt!r}; valid: {', '.join(RESIZED_FORMATS)}")
    tasks = [(root, relative, resized, size, quality, fmt) for relative in _images(root)]
    bad = []
    # forkserver: a fork of a process with live threads (W&B's, torch's) can deadlock its children
    with multiprocessing.get_context("forkserver").Pool(workers, initializer=_one_thread) as pool:
        results = pool.imap_unordered(_check_one, tasks, chunksize=64)
        desc = "decode" + (" + resize" if resized else "")
        for relative, error in progress(results, desc, "img", total=len(tasks)):
            if error is not None:
                bad.append((relative, error))
    return sorted(bad)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transferability-prepare-imagenet",
        description="Turn the ILSVRC2012 archives into ROOT/{train,val}/<wnid>/, check every image decodes, "
        "optionally write a 256x256 copy.",
    )
    parser.add_argument("root", type=Path, help="output (or existing) ImageNet root")
    parser.add_argument(
        "--train", type=Path, help="ILSVRC2012_img_train.tar (a tar of per-class tars) or a folder of them"
    )
    parser.add_argument("--val", type=Path, help="ILSVRC2012_img_val.tar (flat) or a folder of the val images")
    parser.add_argument(
        "--val-labels", type=Path, help="'filename class_index' lines, sorted-wnid indices (default: the shipped list)"
    )
    parser.add_argument(
        "--resized",
        type=Path,
        help=(
            "also write warped size x size copies under this root (images already copied there are skipped, so a "
            "rerun resumes: use a new folder for another size, quality or format)"
        ),
    )
    parser.add_argument("--size", type=int, default=256, help="side of the resized copy (256)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality of the resized copy (95)")
    parser.add_argument(
        "--resized-format",
        choices=RESIZED_FORMATS,
        default="jpeg",
        help="jpeg (default, ~46 KB an image) or ppm: raw pixels, ~196 KB an image, read without decoding",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding processes")
    parser.add_argument("--no-verify", action="store_true", help="do not decode every image")
    return parser


def check_inputs(root: Path, train: Path | None, val: Path | None, val_labels: Path | None) -> None:
    """Check every input before anything is written: each named archive, folder or list must exist.

    Raises:
        InputFileError: the missing ones, each with the folder it was looked for in (a relative name is read
            from the current folder), or ``root`` when there is nothing to make it from.
    """
    missing = [
        f"{flag} {path} (looked for in {path.absolute().parent})"
        for flag, path in (("--train", train), ("--val", val), ("--val-labels", val_labels))
        if path is not None and not path.exists()
    ]
    if missing:
        raise InputFileError(
            "not found: " + "; ".join(missing) + ". Give each archive's path (relative to the "
            "current folder or absolute); nothing was created"
        )
    if not (train or val or root.is_dir()):
        raise InputFileError(
            f"{root} does not exist (looked for in {root.absolute().parent}): give --train "
            "ILSVRC2012_img_train.tar and --val ILSVRC2012_img_val.tar to make it"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the prepare command; returns the exit status (0 = complete and every image decodes).

    Raises:
        InputFileError: an input is missing (:func:`check_inputs`); nothing was created.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.no_verify and args.resized:
        parser.error("--resized decodes every image: drop --no-verify")
    if args.resized_format != "jpeg" and not args.resized:
        parser.error("--resized-format applies to the --resized copy: give --resized DIR")
    root: Path = args.root
    check_inputs(root, args.train, args.val, args.val_labels)
    if args.train:
        print(f"wrote {extract_train(args.train, root / 'train')} train classes to {root / 'train'}")
    if args.val:
        entries = parse_file_list(args.val_labels.read_text().splitlines()) if args.val_labels else imagenet_val_files()
        unlabelled = sort_val(args.val, root / "val", dict(entries))
        if unlabelled:
            print(
                f"{len(unlabelled)} val images have no label and were left out, e.g. {unlabelled[0]}", file=sys.stderr
            )
    status = 0
    for subset, wnids in missing_classes(root).items():
        if wnids:
            status = 1
            print(f"{len(wnids)} classes have no images in {root / subset}: {', '.join(wnids[:10])}", file=sys.stderr)
    if args.no_verify:
        return status
    bad = check_images(root, args.resized, args.size, args.quality, args.workers, args.resized_format)
    (root / BAD_LIST).write_text("".join(f"{path}\t{error}\n" for path, error in bad))
    if bad:
        status = 1
        print(f"{len(bad)} images do not decode (listed in {root / BAD_LIST}):", file=sys.stderr)
        for path, error in bad[:20]:
            print(f"  {path}: {error}", file=sys.stderr)
    else:
        print(f"every image decodes{f'; resized copy in {args.resized}' if args.resized else ''}")
    return status


if __name__ == "__main__":
    from experiments.entry import prepare_imagenet

    sys.exit(prepare_imagenet())
