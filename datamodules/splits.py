"""The paper's class splits: random halves by seed, named halves from lists, and the whole label set.

A split is a name (``random0``, ``natman``, ``whole``, ...) with two halves (one, ``all``, for
``whole``). A half is a sorted tuple of original class indices; a network trained on it sees the
labels 0..K-1 in that order (the authors' re-indexing).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).with_name("data")

WHOLE = "whole"
ALL = "all"
_RANDOM = re.compile(r"random(\d+)")


def random_halves(num_classes: int, seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split ``range(num_classes)`` into halves A and B as the authors' ``make_reduced_dataset.py`` did.

    Their script seeded numpy's legacy generator with the argparse *list* ``[seed]``; an integer seed
    gives a different stream. ``RandomState([seed])`` is that stream without touching the global one.

    Args:
        num_classes: Number of classes; A gets ``num_classes // 2`` of them.
        seed: The split's seed (0..3 in the paper).

    Returns:
        The sorted original indices of A and of B.
    """
    rng = np.random.RandomState([seed])
    a = sorted(int(i) for i in rng.choice(np.arange(num_classes), num_classes // 2, replace=False))
    chosen = set(a)
    return tuple(a), tuple(i for i in range(num_classes) if i not in chosen)


class ClassSplits:
    """The splits of one dataset: ``random<seed>`` (halves ``A``/``B``), named splits, and ``whole``.

    Args:
        num_classes: Number of classes in the dataset.
        named: Named splits, each a mapping from half name to its original class indices.
        paper_seeds: The random seeds the paper used; listed in errors (any ``random<seed>`` works).
    """

    def __init__(
        self,
        num_classes: int,
        named: Mapping[str, Mapping[str, Iterable[int]]],
        paper_seeds: Sequence[int] = (0, 1, 2, 3),
    ) -> None:
        self.num_classes = num_classes
        self.paper_seeds = tuple(paper_seeds)
        self._named = {split: {h: tuple(sorted(idx)) for h, idx in halves.items()} for split, halves in named.items()}
        for split, halves in self._named.items():
            members = sorted(i for idx in halves.values() for i in idx)
            if members != list(range(num_classes)):
                raise ValueError(f"split {split!r} does not partition the {num_classes} classes")

    def names(self) -> tuple[str, ...]:
        """The split names to list in messages (random seeds of the paper, named splits, ``whole``)."""
        return (*(f"random{s}" for s in self.paper_seeds), *self._named, WHOLE)

    def halves(self, split: str) -> tuple[str, ...]:
        """The half names of ``split``: ``("A", "B")``, the named halves, or ``("all",)`` for ``whole``.

        Raises:
            ValueError: Unknown split.
        """
        if _RANDOM.fullmatch(split):
            return ("A", "B")
        if split in self._named:
            return tuple(self._named[split])
        if split == WHOLE:
            return (ALL,)
        raise ValueError(
            f"unknown split {split!r}; valid splits: {', '.join(self.names())} (or random<seed> for any integer seed)"
        )

    def classes(self, split: str, half: str) -> tuple[int, ...]:
        """The sorted original class indices of one half; label k of the half is entry k.

        Raises:
            ValueError: Unknown split or half.
        """
        halves = self.halves(split)
        if half not in halves:
            raise ValueError(f"unknown half {half!r} of split {split!r}; valid halves: {', '.join(halves)}")
        if split == WHOLE:
            return tuple(range(self.num_classes))
        match = _RANDOM.fullmatch(split)
        if match:
            a, b = random_halves(self.num_classes, int(match.group(1)))
            return a if half == "A" else b
        return self._named[split][half]


def first_per_class(labels: Sequence[int], images_per_class: int) -> list[int]:
    """Indices of the first ``images_per_class`` items of each class, in their original order.

    The authors' reduced-data sets (``--perclass N``) kept the first N images of each class of their list.
    """
    taken: dict[int, int] = {}
    kept = []
    for index, label in enumerate(labels):
        if taken.get(label, 0) < images_per_class:
            taken[label] = taken.get(label, 0) + 1
            kept.append(index)
    return kept


def _read_lines(name: str) -> list[str]:
    path = DATA_DIR / name
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return f.read().splitlines()


@cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC2012 wnids in class-index order (sorted; Caffe's ``synsets.txt``)."""
    return tuple(_read_lines("synsets.txt"))


@cache
def imagenet_class_names() -> tuple[str, ...]:
    """The human-readable name of each ILSVRC2012 class, in class-index order."""
    return tuple(line.split(" ", 1)[1] for line in _read_lines("synset_words.txt"))


@cache
def imagenet_val_files() -> tuple[tuple[str, int], ...]:
    """The 50,000 ILSVRC2012 val images as ``(filename, class_index)`` (the authors' ``whole_valid/files.txt``)."""
    return parse_file_list(_read_lines("ilsvrc12_val_files.txt.gz"))


@cache
def authors_md5sums() -> dict[str, str]:
    """The md5 the authors list for each split file, keyed by its path (``half0A_valid/files.txt``)."""
    return {path: digest for digest, path in (line.split() for line in _read_lines("split_files_md5sums.txt"))}


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


def _read_indices(name: str) -> list[int]:
    return [int(line) for line in _read_lines(name) if line.strip()]


# The paper's A is man-made and B natural; the authors' code had them the other way round. Names by
# meaning avoid the trap.
IMAGENET_SPLITS = ClassSplits(
    1000, {"natman": {"manmade": _read_indices("half_man_idx.txt"), "natural": _read_indices("half_nat_idx.txt")}}
)

FASHION_MNIST_SPLITS = ClassSplits(
    10,
    # T-shirt/top, Trouser, Pullover, Dress, Coat, Shirt versus Sandal, Sneaker, Bag, Ankle boot.
    {"dissimilar": {"clothing": (0, 1, 2, 3, 4, 6), "footwear_bags": (5, 7, 8, 9)}},
)


def authors_name(split: str, half: str) -> str:
    """The authors' name of an ImageNet half (``half0A``, ``halfnatmanB``, ``whole``), as in their runs and lists.

    Raises:
        ValueError: Unknown split or half.
    """
    IMAGENET_SPLITS.classes(split, half)
    if split == WHOLE:
        return WHOLE
    if split == "natman":
        return "halfnatmanA" if half == "natural" else "halfnatmanB"
    return f"half{split.removeprefix('random')}{half}"
