"""The shipped ImageNet file lists (``datamodules/data/``): the wnids, class names, val images and authors' md5s.

The class splits and the data folder are :mod:`datamodules.splits`; a researcher's own split file is
:mod:`datamodules.split_files`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

from datamodules.splits import read_data_lines


@cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC2012 wnids in class-index order (sorted; Caffe's ``synsets.txt``)."""
    return tuple(read_data_lines("synsets.txt"))


@cache
def imagenet_class_names() -> tuple[str, ...]:
    """The human-readable name of each ILSVRC2012 class, in class-index order."""
    return tuple(line.split(" ", 1)[1] for line in read_data_lines("synset_words.txt"))


@cache
def imagenet_val_files() -> tuple[tuple[str, int], ...]:
    """The 50,000 ILSVRC2012 val images as ``(filename, class_index)`` (the authors' ``whole_valid/files.txt``)."""
    return parse_file_list(read_data_lines("ilsvrc12_val_files.txt.gz"))


@cache
def authors_md5sums() -> dict[str, str]:
    """The md5 the authors list for each split file, keyed by its path (``half0A_valid/files.txt``)."""
    return {path: digest for digest, path in (line.split() for line in read_data_lines("split_files_md5sums.txt"))}


def parse_file_list(lines: Iterable[str]) -> tuple[tuple[str, int], ...]:
    """Parse Caffe ``filename class_index`` lines."""
    return tuple((name, int(idx)) for name, idx in (line.split() for line in lines if line.strip()))


def relabel_file_list(entries: Iterable[tuple[str, int]], classes: Sequence[int]) -> str:
    """Write a Caffe file list restricted to ``classes`` and re-indexed, byte for byte as the authors did.

    Args:
        entries: ``(filename, original_class_index)`` pairs, in list order.
        classes: The half's sorted original class indices.

    Returns:
        The text of the half's ``files.txt``.
    """
    new_label = {c: k for k, c in enumerate(classes)}
    return "".join(f"{name} {new_label[c]}\n" for name, c in entries if c in new_label)
