"""Reading a researcher's own split file: the halves it makes of any class set (a list, super-classes, seeded).

The splits themselves (``ClassSplits``, ``random_halves``, the paper's registries) are :mod:`datamodules.splits`;
the shipped ImageNet file lists are :mod:`datamodules.imagenet_lists`.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml

from datamodules.splits import ALL, RANDOM_SPLIT, WHOLE, ClassSplits, random_halves, shown_names

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
            f"{shown_names(unknown)}. Fix the names in the file, or add the folders (the data's classes: "
            f"{shown_names(list(class_names))})"
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
            f"split file {path} leaves {len(unassigned)} class(es) in neither half: {shown_names(unassigned)}. "
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
            f"split file {path} gives no super-class to {len(ungrouped)} class(es): {shown_names(ungrouped)}. "
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
        if RANDOM_SPLIT.fullmatch(name) or name == WHOLE or not _HALF_NAME.fullmatch(name):
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
