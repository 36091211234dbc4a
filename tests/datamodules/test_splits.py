"""The paper's class splits: the shipped facts, the halves and their errors (the shipped ImageNet lists and the
authors' md5 sums: ``test_imagenet_lists.py``)."""

from __future__ import annotations

import pytest
from torchvision.datasets import FashionMNIST

from datamodules import FashionMNISTHalf, ImageNetHalf
from datamodules.splits import (
    DATA_DIR,
    FASHION_MNIST_SPLITS,
    IMAGENET_SPLITS,
    ClassSplits,
    authors_name,
    first_per_class,
)
from tests.helpers.shared_paper import HALVES, SHARED_PAPER, needs_shared


@needs_shared
@pytest.mark.parametrize(
    "name", ["synsets.txt", "synset_words.txt", "half_man_idx.txt", "half_nat_idx.txt", "split_files_md5sums.txt"]
)
def test_shipped_files_are_the_reference_files(name: str) -> None:
    """The data files shipped in the package are byte copies of the reference data."""
    assert (DATA_DIR / name).read_bytes() == (SHARED_PAPER / name).read_bytes()


@needs_shared
@pytest.mark.parametrize(("split", "half"), HALVES)
def test_halves_match_the_reference_class_lists(split: str, half: str) -> None:
    """Each half's classes equal the class list derived in shared/paper/splits."""
    path = SHARED_PAPER / "splits" / f"{authors_name(split, half)}_class_idx.txt"
    assert IMAGENET_SPLITS.classes(split, half) == tuple(int(x) for x in path.read_text().split())


@pytest.mark.parametrize("seed", range(4))
def test_random_halves_partition_the_classes(seed: int) -> None:
    """A and B are sorted, 500 each, disjoint, and together all 1000 classes."""
    a, b = (IMAGENET_SPLITS.classes(f"random{seed}", h) for h in ("A", "B"))
    assert len(a) == len(b) == 500 and list(a) == sorted(a) and list(b) == sorted(b)
    assert sorted(a + b) == list(range(1000))


def test_random_halves_differ_between_seeds() -> None:
    """The four paper seeds give four different splits."""
    assert len({IMAGENET_SPLITS.classes(f"random{s}", "A") for s in range(4)}) == 4


def test_natman_halves_are_the_authors_lists() -> None:
    """Man-made: 551 classes, 398-935, 959-969, 971, 999; natural: the other 449."""
    manmade = IMAGENET_SPLITS.classes("natman", "manmade")
    expected = [*range(398, 936), *range(959, 970), 971, 999]
    assert list(manmade) == expected
    assert IMAGENET_SPLITS.classes("natman", "natural") == tuple(i for i in range(1000) if i not in set(expected))


@pytest.mark.parametrize(
    ("split", "half", "name"),
    [
        ("random0", "A", "half0A"),
        ("random3", "B", "half3B"),
        ("natman", "natural", "halfnatmanA"),
        ("natman", "manmade", "halfnatmanB"),
        ("whole", "all", "whole"),
    ],
)
def test_authors_names(split: str, half: str, name: str) -> None:
    """Halves map to the authors' run and list names (their A/B of natman is natural/man-made)."""
    assert authors_name(split, half) == name


def test_fashion_mnist_random_halves_are_pinned() -> None:
    """The authors' recipe on 10 classes (``seed([s])``, choose 5), pinned so a seeding change shows."""
    expected = {0: (0, 1, 3, 7, 8), 1: (2, 3, 6, 8, 9), 2: (0, 1, 2, 4, 6), 3: (0, 1, 3, 8, 9)}
    for seed, a in expected.items():
        assert FASHION_MNIST_SPLITS.classes(f"random{seed}", "A") == a
        assert FASHION_MNIST_SPLITS.classes(f"random{seed}", "B") == tuple(i for i in range(10) if i not in a)


def test_fashion_mnist_dissimilar_split_by_name() -> None:
    """Clothing versus footwear and bags, by the dataset's class names."""
    names = FashionMNIST.classes
    clothing = [names[i] for i in FASHION_MNIST_SPLITS.classes("dissimilar", "clothing")]
    rest = [names[i] for i in FASHION_MNIST_SPLITS.classes("dissimilar", "footwear_bags")]
    assert clothing == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Shirt"]
    assert rest == ["Sandal", "Sneaker", "Bag", "Ankle boot"]


@pytest.mark.parametrize(
    ("module", "split", "halves"),
    [
        (ImageNetHalf, "random2", ("A", "B")),
        (ImageNetHalf, "natman", ("manmade", "natural")),
        (ImageNetHalf, "whole", ("all",)),
        (FashionMNISTHalf, "dissimilar", ("clothing", "footwear_bags")),
        (FashionMNISTHalf, "random7", ("A", "B")),
    ],
)
def test_split_halves_for_the_study_runner(module: type, split: str, halves: tuple[str, ...]) -> None:
    """Each module lists a split's halves (``split_halves`` and its alias ``halves``)."""
    assert module.split_halves(split) == module.halves(split) == halves


def test_whole_split_is_every_class() -> None:
    """``whole``/``all`` is all classes in order."""
    assert IMAGENET_SPLITS.classes("whole", "all") == tuple(range(1000))
    assert FASHION_MNIST_SPLITS.classes("whole", "all") == tuple(range(10))


def test_unknown_split_lists_the_valid_ones() -> None:
    """An unknown split name fails with the valid names."""
    with pytest.raises(ValueError, match=r"random0, random1, random2, random3, natman, whole"):
        IMAGENET_SPLITS.halves("random")
    with pytest.raises(ValueError, match=r"dissimilar"):
        FashionMNISTHalf(split="natman", half="manmade")


def test_unknown_half_lists_the_valid_ones() -> None:
    """A half of another split fails with the split's halves."""
    with pytest.raises(ValueError, match=r"valid halves: manmade, natural"):
        ImageNetHalf(split="natman", half="A")
    with pytest.raises(ValueError, match=r"valid halves: A, B"):
        ImageNetHalf(split="random0", half="A", mean_half="natural")


def test_class_splits_must_partition() -> None:
    """A named split that leaves out or repeats a class is refused."""
    with pytest.raises(ValueError, match="partition"):
        ClassSplits(4, {"bad": {"x": (0, 1), "y": (1, 2)}})


def test_first_per_class_keeps_order() -> None:
    """The first N of each class, in the original order (interleaved classes too)."""
    assert first_per_class([0, 1, 0, 2, 1, 0, 2, 2], 2) == [0, 1, 2, 3, 4, 6]
