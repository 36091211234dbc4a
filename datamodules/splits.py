"""The paper's class splits: random halves by seed, named halves from lists, and the whole label set.

A split is a name (``random0``, ``natman``, ``whole``, ...) with two halves (one, ``all``, for
``whole``). A half is a sorted tuple of original class indices; a network trained on it sees the
labels 0..K-1 in that order (the authors' re-indexing).

A researcher's own split file is read by :mod:`datamodules.split_files`; the shipped ImageNet file lists are
:mod:`datamodules.imagenet_lists`. Both import from here, never the reverse.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).with_name("data")

WHOLE = "whole"
ALL = "all"
RANDOM_SPLIT = re.compile(r"random(\d+)")


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
        if RANDOM_SPLIT.fullmatch(split):
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
        match = RANDOM_SPLIT.fullmatch(split)
        if match:
            a, b = random_halves(self.num_classes, int(match.group(1)))
            return a if half == "A" else b
        return self._named[split][half]


def shown_names(names: Sequence[str], limit: int = 10) -> str:
    """The first ``limit`` of ``names`` for an error message, and how many more there are."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_half_sizes(splits: ClassSplits, split: str, class_names: Sequence[str], where: str, minimum: int = 2) -> None:
    """Every half of ``split`` has at least ``minimum`` classes (a classifier of one class learns nothing).

    Args:
        splits: The dataset's splits.
        split: The split to check.
        class_names: The dataset's classes, to name a half's members.
        where: What to change, said in the message (the root, or the split's file).

    Raises:
        ValueError: A half that is too small, named with its classes and what to change.
    """
    for half in splits.halves(split):
        members = [class_names[i] for i in splits.classes(split, half)]
        if len(members) < minimum:
            raise ValueError(
                f"half {half!r} of split {split!r} has {len(members)} class(es) "
                f"({shown_names(members) or 'none'}): a half needs at least {minimum} to train a classifier. "
                f"The data has {len(class_names)} classes; {where}"
            )


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


def read_data_lines(name: str) -> list[str]:
    """The lines of the shipped data file ``datamodules/data/<name>`` (gzip read as text)."""
    path = DATA_DIR / name
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return f.read().splitlines()


def _read_indices(name: str) -> list[int]:
    return [int(line) for line in read_data_lines(name) if line.strip()]


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
