"""The paper's class splits: random halves by seed, named halves from lists, and the whole label set.

A split is a name (``random0``, ``natman``, ``whole``, ...) with two halves (one, ``all``, for
``whole``). A half is a sorted tuple of original class indices; a network trained on it sees the
labels 0..K-1 in that order (the authors' re-indexing).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import yaml

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


# A half's name becomes part of folder and run names.
_HALF_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SPLIT_FILE_FORMATS = (
    ".txt: the classes of half A, one a line (B: the others); .yaml/.yml/.json: half -> list of classes (A alone, "
    "or two halves), or class -> super-class; .csv/.tsv: class,super-class rows"
)


def file_checksum(path: str | Path) -> str:
    """The sha256 of a file (hex), what a run records of each split file it reads."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_split_file(path: str | Path, class_names: Sequence[str], seed: int = 0) -> dict[str, tuple[int, ...]]:
    """The halves a split file makes of ``class_names``: an explicit list of A's (and B's) classes, or a grouping.

    A grouping (class -> super-class) keeps every super-class whole in one half, as the paper's man-made / natural
    split: with two super-classes they are the halves (named after them); with more, the paper's
    :func:`random_halves` of ``seed`` over the sorted super-classes puts its first draw in A, the rest in B.

    Args:
        path: The file; its format by suffix (see ``SPLIT_FILE_FORMATS``). Lines starting with ``#`` are comments.
        class_names: The dataset's classes (sorted): class k is index k.
        seed: The seed of the super-class draw of a grouping of more than two super-classes.

    Returns:
        Half name -> the sorted indices of its classes; the halves partition the classes.

    Raises:
        FileNotFoundError: No such file.
        ValueError: An unknown format, a class the data does not have, a class in two halves or in none, a half name
            that cannot name a folder (each message names the file and the class).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} does not exist: give an existing file ({SPLIT_FILE_FORMATS})")
    suffix = path.suffix.lower()
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if suffix == ".txt":
        return _listed_halves(path, {"A": [line.strip() for line in lines]}, class_names)
    if suffix in (".csv", ".tsv"):
        separator = "," if suffix == ".csv" else "\t"
        rows = [[field.strip() for field in row] for row in csv.reader(lines, delimiter=separator)]
        if rows and rows[0][0].lower() in ("class", "class_name", "fine_label") and rows[0][0] not in class_names:
            rows = rows[1:]  # a header
        bad = [row for row in rows if len(row) != 2]
        if bad:
            raise ValueError(f"split file {path}: every row is class{separator}super-class, got {bad[0]}")
        return _grouped_halves(path, {row[0]: row[1] for row in rows}, class_names, seed)
    if suffix in (".yaml", ".yml", ".json"):
        data = yaml.safe_load("\n".join(lines)) or {}
        if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
            return _listed_halves(path, {str(k): [str(c) for c in v] for k, v in data.items()}, class_names)
        if isinstance(data, dict) and data and all(isinstance(v, (str, int)) for v in data.values()):
            return _grouped_halves(path, {str(k): str(v) for k, v in data.items()}, class_names, seed)
        raise ValueError(
            f"split file {path} is neither half -> [classes] nor class -> super-class ({SPLIT_FILE_FORMATS})"
        )
    raise ValueError(f"split file {path}: unknown format {suffix!r} ({SPLIT_FILE_FORMATS})")


def _unknown_classes(path: Path, named: Iterable[str], class_names: Sequence[str]) -> None:
    known = set(class_names)
    unknown = sorted({name for name in named if name not in known})
    if unknown:
        raise ValueError(
            f"split file {path} names {len(unknown)} class(es) that are not class folders of the data: "
            f"{_shown(unknown)}. Fix the names in the file, or add the folders (the data's classes: "
            f"{_shown(list(class_names))})"
        )


def _listed_halves(
    path: Path, listed: Mapping[str, list[str]], class_names: Sequence[str]
) -> dict[str, tuple[int, ...]]:
    """The halves of an explicit file: A's classes (B the rest) or both halves'."""
    if (len(listed) == 1 and "A" not in listed) or len(listed) > 2:
        raise ValueError(
            f"split file {path} lists halves {list(listed)}: list half A alone (B: every other class) "
            "or exactly two halves"
        )
    for half, members in listed.items():
        _check_half_name(path, half)
        _unknown_classes(path, members, class_names)
    seen: dict[str, str] = {}
    for half, members in listed.items():
        for name in members:
            if name in seen and seen[name] != half:
                raise ValueError(
                    f"split file {path} puts class {name!r} in both halves {seen[name]} and {half}: keep it in one"
                )
            seen[name] = half
    if len(listed) == 1:
        return {
            "A": _indices(listed["A"], class_names),
            "B": _indices([c for c in class_names if c not in seen], class_names),
        }
    unassigned = [name for name in class_names if name not in seen]
    if unassigned:
        raise ValueError(
            f"split file {path} leaves {len(unassigned)} class(es) in neither half: {_shown(unassigned)}. "
            "Add each to a half, or list half A alone (B: every other class)"
        )
    return {half: _indices(members, class_names) for half, members in listed.items()}


def _grouped_halves(
    path: Path, groups: Mapping[str, str], class_names: Sequence[str], seed: int
) -> dict[str, tuple[int, ...]]:
    """The halves of a grouping: whole super-classes on each side."""
    _unknown_classes(path, groups, class_names)
    ungrouped = [name for name in class_names if name not in groups]
    if ungrouped:
        raise ValueError(
            f"split file {path} gives no super-class to {len(ungrouped)} class(es): {_shown(ungrouped)}. "
            "Add a row for each"
        )
    supers = sorted(set(groups.values()))
    if len(supers) < 2:
        raise ValueError(f"split file {path} has one super-class ({supers[0]!r}): a dissimilar split needs two or more")
    if len(supers) == 2:
        for name in supers:
            _check_half_name(path, name)
        return {name: _indices([c for c, g in groups.items() if g == name], class_names) for name in supers}
    first, _ = random_halves(len(supers), seed)
    in_a = {supers[i] for i in first}
    return {
        "A": _indices([c for c, g in groups.items() if g in in_a], class_names),
        "B": _indices([c for c, g in groups.items() if g not in in_a], class_names),
    }


def _check_half_name(path: Path, half: str) -> None:
    if not _HALF_NAME.fullmatch(half) or half == ALL:
        raise ValueError(
            f"split file {path}: half {half!r} cannot name a half (it names run folders): use letters, "
            "digits, '_', '-' or '.', and not 'all'"
        )


def _indices(members: Iterable[str], class_names: Sequence[str]) -> tuple[int, ...]:
    index = {name: i for i, name in enumerate(class_names)}
    return tuple(sorted(index[name] for name in members))


def _shown(names: Sequence[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def file_splits(
    class_names: Sequence[str],
    split_files: Mapping[str, str] | None = None,
    split_checksums: Mapping[str, str] | None = None,
) -> ClassSplits:
    """The splits of any class set: ``random<seed>`` halves and ``whole`` always, and one named split per file.

    Args:
        class_names: The dataset's classes, sorted (class k is index k).
        split_files: Split name -> split file (see :func:`read_split_file`).
        split_checksums: Split name -> the sha256 a run recorded of its file; a file that no longer has it is
            refused.

    Raises:
        ValueError: A split name taken by ``random<seed>`` or ``whole``, a checksum of a split with no file, a
            split file that changed since its checksum was recorded, or a bad file (see :func:`read_split_file`).
    """
    files = dict(split_files or {})
    recorded = dict(split_checksums or {})
    strays = sorted(set(recorded) - set(files))
    if strays:
        raise ValueError(
            f"data.split_checksums names split(s) {strays} that data.split_files does not give: "
            "remove them or add their files"
        )
    named = {}
    for name, path in files.items():
        if _RANDOM.fullmatch(name) or name == WHOLE or not _HALF_NAME.fullmatch(name):
            raise ValueError(
                f"data.split_files: {name!r} cannot name a file's split (random<seed> and whole are the "
                "built-in splits; use letters, digits, '_', '-' or '.'): name it e.g. 'dissimilar'"
            )
        if name in recorded and Path(path).is_file() and file_checksum(path) != recorded[name]:
            raise ValueError(
                f"split file {path} (split {name!r}) changed since its networks were trained: its sha256 is now "
                f"{file_checksum(path)[:16]}..., the run recorded {recorded[name][:16]}.... Restore the file, or train "
                f"on the new split in a new run (drop data.split_checksums.{name}) or a new study output_dir"
            )
        named[name] = read_split_file(path, class_names)
    return ClassSplits(len(class_names), named)


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
                f"half {half!r} of split {split!r} has {len(members)} class(es) ({_shown(members) or 'none'}): a half "
                f"needs at least {minimum} to train a classifier. The data has {len(class_names)} classes; {where}"
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
