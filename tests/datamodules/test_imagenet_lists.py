"""The shipped ImageNet file lists: the wnids' order, and the val lists of every half against the authors' md5 sums."""

from __future__ import annotations

import hashlib

import pytest

from datamodules.imagenet_lists import (
    authors_md5sums,
    imagenet_val_files,
    imagenet_wnids,
    parse_file_list,
    relabel_file_list,
)
from datamodules.splits import IMAGENET_SPLITS, authors_name
from tests.helpers.shared_paper import HALVES, SHARED_PAPER


def _val_entries(source: str) -> tuple[tuple[str, int], ...]:
    if source == "shipped":
        return imagenet_val_files()
    if not (SHARED_PAPER / "whole_valid_files.txt").is_file():
        pytest.skip(f"the reference data {SHARED_PAPER} is absent (it is not part of the project)")
    return parse_file_list((SHARED_PAPER / "whole_valid_files.txt").read_text().splitlines())


@pytest.mark.parametrize("source", ["shipped", "shared"])
@pytest.mark.parametrize(("split", "half"), HALVES)
def test_val_lists_match_the_authors_md5(source: str, split: str, half: str) -> None:
    """Each half's val list, regenerated from the 50k list, is byte-identical to the authors' file."""
    text = relabel_file_list(_val_entries(source), IMAGENET_SPLITS.classes(split, half))
    expected = authors_md5sums()[f"{authors_name(split, half)}_valid/files.txt"]
    assert hashlib.md5(text.encode()).hexdigest() == expected


def test_shipped_val_list_is_the_authors_whole_list() -> None:
    """The shipped 50k val list is the authors' ``whole_valid/files.txt`` (their md5)."""
    text = relabel_file_list(imagenet_val_files(), range(1000))
    assert len(imagenet_val_files()) == 50_000
    assert hashlib.md5(text.encode()).hexdigest() == authors_md5sums()["whole_valid/files.txt"]


def test_wnids_are_sorted_so_folder_order_is_class_order() -> None:
    """Sorted wnid folders (ImageFolder's order) are the class-index order."""
    wnids = imagenet_wnids()
    assert len(set(wnids)) == 1000 and list(wnids) == sorted(wnids)
