"""The paper's grid of networks: cells named in its vocabulary, and the expansion of a study's grid into cells.

A cell is one network of Yosinski et al. (2014): ``(split, base half or none, target half, n, mode,
seed)``. Its family is the paper's name for it: ``baseA``/``baseB`` (a base network on a random
half; ``base`` on a named half or the whole label set), ``BnB``/``BnB+`` (selffer: base half =
target half, frozen / fine-tuned), ``AnB``/``AnB+`` (transfer to the other half) and ``random``
(random, untrained, frozen first n layers) and ``reduced`` (a base network on the first N training
images of each class: the paper's supplementary reduced-data networks).

A cell whose base half is ``pretrained`` copies a weights file (``Grid.pretrained``): its "A" is the data the file
was trained on (ImageNet, for torchvision's weights), not a half of the study's data; it keeps the family names
``AnB``/``AnB+`` (its target's own base and selffers are ``base``, ``BnB``, ``BnB+``), and nothing is trained for
its base.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from experiments.families import (
    BASE,
    FIGURE2_FAMILIES,
    PRETRAINED,
    RANDOM_FEATURES,
    REDUCED_DATA,
    Figure2Family,
)
from models.caffenet import STAGE_NAMES
from models.transfer import TransferMode, check_base, check_count, check_depth, check_mode, depths

DEPTHS = depths(STAGE_NAMES)  # the default network's n = 1..7 (CaffeNet: fc8 is always new)


@dataclass(frozen=True)
class Cell:
    """One network of the study.

    Args:
        split: The class split (``random0``, ``natman``, ``dissimilar``, ``whole``, ...).
        base: The half the base network was trained on, or None (a base network, or random features).
        target: The half this network is trained on.
        n: How many layers come from the base (or stay random and frozen); 0 for a base network.
        mode: ``frozen`` or ``finetune`` for n > 0; None for a base network.
        seed: The replicate: the seed of the data stream, which every network of a replicate on a half reads
            in the same order (as the paper's networks read one database), and of the base it copies.
            Its own initialisation and dropout come from :attr:`network_seed`.
        images_per_class: A base network of the reduced-data panel: trained on the first this many
            training images of each class (None: all of them, every other cell).
    """

    split: str
    base: str | None
    target: str
    n: int
    mode: TransferMode | None
    seed: int
    images_per_class: int | None = None

    def __post_init__(self) -> None:
        if self.n == 0 and (self.base is not None or self.mode is not None):
            raise ValueError(f"a base network (n=0) has no base half and no mode: {self}")
        check_count(self.n, f"cell {self.split} {self.base}->{self.target}: n")
        if self.n != 0:
            check_mode(self.mode, what=f"cell {self.split} {self.base}->{self.target} n={self.n}: mode")
        check_base(self.mode, self.base is not None, f"a base network: {self}")
        if self.images_per_class is not None and (self.n != 0 or self.images_per_class < 1):
            raise ValueError(f"reduced data applies to base networks (n=0), with images_per_class >= 1: {self}")

    @property
    def family(self) -> str:
        """The paper's name of the cell's condition (see the module docstring)."""
        if self.images_per_class is not None:
            return REDUCED_DATA
        if self.n == 0:
            return f"{BASE}{self.target}" if self.target in ("A", "B") else BASE
        if self.base is None:
            return RANDOM_FEATURES
        name = "BnB" if self.base == self.target else "AnB"
        return name + ("+" if self.mode == "finetune" else "")

    @property
    def name(self) -> str:
        """A unique, readable folder and run name in the paper's notation, e.g. ``random0_A3B+_s0``."""
        if self.images_per_class is not None:
            body = f"base-{self.target}-{self.images_per_class}perclass"
        elif self.n == 0:
            body = f"base-{self.target}"
        elif self.base is None:
            body = f"random{self.n}-{self.target}"
        else:
            body = f"{self.base}{self.n}{self.target}" + ("+" if self.mode == "finetune" else "")
        return f"{self.split}_{body}_s{self.seed}"

    @property
    def network_seed(self) -> int:
        """The seed of this network's own draws (initialisation, dropout): from its identity, never its base's."""
        digest = hashlib.sha256(f"transferability/network/{self.name}".encode()).digest()
        return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF

    @property
    def base_cell(self) -> Cell | None:
        """The base network whose final weights this cell copies, or None (none, or a pretrained weights file)."""
        if self.base is None or self.base == PRETRAINED:
            return None
        return Cell(self.split, None, self.base, 0, None, self.seed)

    def describe(self) -> str:
        """One line for progress output, e.g. ``AnB+ n=3 random0 A->B seed 0``."""
        source = "pretrained weights->" if self.base == PRETRAINED else f"{self.base}->" if self.base else ""
        n = f" n={self.n}" if self.n else ""
        images = f" {self.images_per_class} images per class" if self.images_per_class is not None else ""
        return f"{self.family}{n} {self.split} {source}{self.target}{images} seed {self.seed}"


@dataclass
class Figure2Cells:
    """Figure 2: base networks on both halves of random splits, with BnB, AnB, BnB+ and AnB+.

    Args:
        splits: Random splits (``random<seed>``); the paper used ``random0``..``random3``.
        families: Which of BnB, AnB, BnB+, AnB+ to train.
        selffer_targets: Halves BnB and BnB+ are trained on (None: both). The paper: ``[A]``.
        transfer_targets: Target halves of AnB and AnB+ (None: both directions, as the paper).
        finetune_splits: Splits that get the "+" families (None: all). The paper: random0, random1.
        bases: Halves whose base networks the panel trains even where no network of the panel copies them
            (None: both halves, as the paper). A base that a transfer copies is always trained; ``[B]`` with
            ``families: [BnB+]`` and ``selffer_targets: [B]`` trains base B and its selffers alone (a schedule
            search, ``experiments/configs/studies/schedule_search/``).
        n: Layer counts of this panel (None: the grid's ``n``).
        seeds: Seeds of this panel (None: the grid's ``seeds``).
    """

    splits: list[str] = field(default_factory=lambda: ["random0"])
    families: list[Figure2Family] = field(default_factory=lambda: list(FIGURE2_FAMILIES))
    selffer_targets: list[str] | None = None
    transfer_targets: list[str] | None = None
    finetune_splits: list[str] | None = None
    bases: list[str] | None = None
    n: list[int] | None = None
    seeds: list[int] | None = None


@dataclass
class DissimilarCells:
    """The dissimilar-split panel: AnB (frozen) in both directions across a dissimilar split, with its bases.

    Args:
        split: ``natman`` (ImageNet: man-made / natural) or ``dissimilar`` (Fashion-MNIST).
        n: Layer counts (None: the grid's ``n``).
        seeds: Seeds of this panel (None: the grid's ``seeds``).
    """

    split: str = "natman"
    n: list[int] | None = None
    seeds: list[int] | None = None


@dataclass
class RandomFeaturesCells:
    """The random-features panel: random, untrained, frozen first n layers, with the base on the same labels.

    Args:
        split: The split whose single half is trained on (``whole``: every class, as the paper).
        n: Layer counts (None: the grid's ``n``).
        seeds: Seeds of this panel (None: the grid's ``seeds``).
    """

    split: str = "whole"
    n: list[int] | None = None
    seeds: list[int] | None = None


@dataclass
class ReducedDataCells:
    """The reduced-data panel (the paper's supplement): base networks on the first N training images per class.

    Args:
        split: The split whose single half is trained on (``whole``: every class, as the paper).
        images_per_class: The values of N. The paper: 1, 2, 5, 10, 25, 50, 100, 250, 500, 750, 1000 and
            1300 (every image: no ImageNet class has more).
        overrides: A config merged over these cells' fit config only: their solver (the paper's reduced-data
            networks: lr 0.0125, x0.1 every 64k iterations, 200k iterations).
        seeds: Seeds of this panel (None: the grid's ``seeds``).
    """

    split: str = "whole"
    images_per_class: list[int] = field(default_factory=lambda: [1, 2, 5, 10, 25, 50, 100, 250, 500, 750, 1000, 1300])
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] | None = None


@dataclass
class PretrainedCells:
    """The measured curve from a pretrained base: its stages 1..n copied into networks on the study's data.

    AnB (frozen) and AnB+ (fine-tuned) copy stages 1..n of the weights file, whose "A" is the data it was trained
    on (ImageNet for torchvision's weights), not a half; the control is the target's own base trained from
    scratch (``base``) with its selffers BnB and BnB+, as in Figure 2.

    Args:
        weights: The weights file: a torchvision-format state dict of the study's backbone
            (``torch.save(torchvision.models.resnet18(weights="IMAGENET1K_V1").state_dict(), path)``), or a staged
            network's checkpoint. Its sha256 is recorded in every cell that copies it: a changed file is refused.
        split: The split whose single half is the target (``whole``: every class of the study's data).
        families: Which of AnB, AnB+ (from the weights) and BnB, BnB+ (from the target's own base) to train.
        n: Stage counts (None: the grid's ``n``).
        seeds: Seeds of this panel (None: the grid's ``seeds``).
    """

    weights: str
    split: str = "whole"
    families: list[Figure2Family] = field(default_factory=lambda: list(FIGURE2_FAMILIES))
    n: list[int] | None = None
    seeds: list[int] | None = None


@dataclass
class Grid:
    """Which cells a study trains.

    Args:
        n: Layer counts of every panel that does not set its own.
        seeds: Seeds of every panel that does not set its own; a cell is trained once per seed (a
            transfer uses the base network of its seed).
        figure2: Figure 2's cells, or None.
        dissimilar: The dissimilar-split panel's cells, or None.
        random_features: The random-features panel's cells, or None.
        reduced_data: The reduced-data panel's cells, or None.
        pretrained: The pretrained-base panel's cells, or None.
    """

    n: list[int] = field(default_factory=lambda: list(DEPTHS))
    seeds: list[int] = field(default_factory=lambda: [0])
    figure2: Figure2Cells | None = field(default_factory=Figure2Cells)
    dissimilar: DissimilarCells | None = None
    random_features: RandomFeaturesCells | None = None
    reduced_data: ReducedDataCells | None = None
    pretrained: PretrainedCells | None = None


Halves = Callable[[str], tuple[str, ...]]


def expand(grid: Grid, halves: Halves, stage_names: tuple[str, ...] = STAGE_NAMES) -> list[Cell]:
    """Every cell of ``grid`` once, in dependency order: per seed, the cells without a base, then the transfers.

    Args:
        grid: The study's grid.
        halves: The half names of a split (the data module's ``halves``).
        stage_names: The network's stages, the head last (the default network CaffeNet's by default): the range of n.

    Raises:
        ValueError: A split without two halves where two are needed, an unknown half, or an n beyond the
            network's stages (the message lists them).
    """
    panels = [
        (spec, build)
        for spec, build in (
            (grid.figure2, _figure2),
            (grid.dissimilar, _dissimilar),
            (grid.random_features, _random_features),
            (grid.reduced_data, _reduced_data),
            (grid.pretrained, _pretrained),
        )
        if spec is not None
    ]

    def seeds_of(
        spec: Figure2Cells | DissimilarCells | RandomFeaturesCells | ReducedDataCells | PretrainedCells,
    ) -> list[int]:
        return grid.seeds if spec.seeds is None else spec.seeds

    cells: list[Cell] = []
    for seed in dict.fromkeys(seed for spec, _ in panels for seed in seeds_of(spec)):
        per_seed = [cell for spec, build in panels if seed in seeds_of(spec) for cell in build(grid, halves, seed)]
        per_seed += [cell.base_cell for cell in per_seed if cell.base_cell is not None]
        unique = list(dict.fromkeys(per_seed))
        cells += [cell for cell in unique if cell.base is None] + [cell for cell in unique if cell.base is not None]
    for cell in cells:
        if cell.n:
            check_depth(cell.n, stage_names, "grid n", allow_zero=False)
    return cells


def _layers(values: list[int] | None, grid: Grid) -> list[int]:
    chosen = grid.n if values is None else values
    for n in chosen:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"grid n must be integers >= 1 (the stages to transfer), got {n!r}")
    return list(chosen)


def _two_halves(split: str, halves: Halves, panel: str) -> tuple[str, str]:
    names = halves(split)
    if len(names) != 2:
        raise ValueError(f"the {panel} panel needs a split with two halves; {split!r} has {list(names)}")
    return names[0], names[1]


def _one_half(split: str, halves: Halves, panel: str) -> str:
    names = halves(split)
    if len(names) != 1:
        raise ValueError(f"the {panel} panel trains on a split with one half (whole); {split!r} has {list(names)}")
    return names[0]


def _subset(chosen: Iterable[str] | None, allowed: tuple[str, ...], what: str, split: str) -> list[str]:
    if chosen is None:
        return list(allowed)
    unknown = [half for half in chosen if half not in allowed]
    if unknown:
        raise ValueError(f"{what} {unknown} are not halves of split {split!r}; its halves are {list(allowed)}")
    return list(chosen)


def _figure2(grid: Grid, halves: Halves, seed: int) -> Iterable[Cell]:
    spec = grid.figure2
    if spec is None:
        return
    layers = _layers(spec.n, grid)
    finetune_splits = spec.splits if spec.finetune_splits is None else spec.finetune_splits
    for split in spec.splits:
        pair = _two_halves(split, halves, "Figure 2")
        for half in _subset(spec.bases, pair, "bases", split):
            yield Cell(split, None, half, 0, None, seed)
        selffer = _subset(spec.selffer_targets, pair, "selffer_targets", split)
        transfer = _subset(spec.transfer_targets, pair, "transfer_targets", split)
        for family in spec.families:
            if family.endswith("+") and split not in finetune_splits:
                continue
            mode: TransferMode = "finetune" if family.endswith("+") else "frozen"
            if family.startswith("BnB"):
                sources = [(half, half) for half in selffer]
            else:
                sources = [(pair[1] if half == pair[0] else pair[0], half) for half in transfer]
            for base, target in sources:
                for n in layers:
                    yield Cell(split, base, target, n, mode, seed)


def _dissimilar(grid: Grid, halves: Halves, seed: int) -> Iterable[Cell]:
    spec = grid.dissimilar
    if spec is None:
        return
    first, second = _two_halves(spec.split, halves, "dissimilar-split")
    for base, target in ((second, first), (first, second)):
        yield Cell(spec.split, None, target, 0, None, seed)
        for n in _layers(spec.n, grid):
            yield Cell(spec.split, base, target, n, "frozen", seed)


def _random_features(grid: Grid, halves: Halves, seed: int) -> Iterable[Cell]:
    spec = grid.random_features
    if spec is None:
        return
    half = _one_half(spec.split, halves, "random-features")
    yield Cell(spec.split, None, half, 0, None, seed)
    for n in _layers(spec.n, grid):
        yield Cell(spec.split, None, half, n, "frozen", seed)


def _reduced_data(grid: Grid, halves: Halves, seed: int) -> Iterable[Cell]:
    spec = grid.reduced_data
    if spec is None:
        return
    half = _one_half(spec.split, halves, "reduced-data")
    for count in spec.images_per_class:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"grid reduced_data images_per_class must be positive integers, got {count!r}")
        yield Cell(spec.split, None, half, 0, None, seed, images_per_class=count)


def _pretrained(grid: Grid, halves: Halves, seed: int) -> Iterable[Cell]:
    spec = grid.pretrained
    if spec is None:
        return
    half = _one_half(spec.split, halves, "pretrained-base")
    yield Cell(spec.split, None, half, 0, None, seed)
    for family in spec.families:
        mode: TransferMode = "finetune" if family.endswith("+") else "frozen"
        base = half if family.startswith("BnB") else PRETRAINED
        for n in _layers(spec.n, grid):
            yield Cell(spec.split, base, half, n, mode, seed)
