"""The effects table's claims: which contrast of which networks, over which n, in which direction (what is estimated).

Every row is a difference of top-1 accuracy (the paper's metric), left minus right:

- **co-adaptation dip**: BnB(n) - base, n = 3..5 pooled and each n; the paper: negative.
- **specificity**: AnB(n) - BnB(n) at n = 6 and 7; the paper: negative.
- **lasting boost**: AnB+ - base and AnB+ - BnB+, pooled over the n run within 1..7, 3..7 and 5..7 (Table 1's
  ranges; the label lists the n actually pooled); the paper: positive.
- **dissimilar split**: (AnB - its base) on the dissimilar split minus (AnB - its base) on the random
  splits, pooled over their shared n and each n; the paper: negative (a dissimilar base task transfers worse).
- **random features**: (random frozen features - their base) minus (AnB - its base) on the random
  splits, pooled and each n; the paper: negative.

These ranges are the paper's for its 7 layers (CaffeNet's transferable stages). For a network with S transferable
stages they are read from the top (:class:`ClaimStages`): the dip at 3..S-2, specificity at S-1 and S, the boosts
over 1..S, 3..S and S-2..S; S = 7 gives the paper's ranges.

A study with a pretrained base (``experiments.study.grid.PretrainedCells``) gets the Figure-2 rows (dip,
specificity, boost) a second time for it, marked ``(A: pretrained weights)``: there A is the data the weights file
was trained on (e.g. ImageNet), not a half, and B the target data; "base" is B's own network trained from scratch.

How each row is estimated, tested and read: :mod:`experiments.report.effects`; the files it is written to:
:mod:`experiments.report.effects_table`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

from experiments.report.curves import (
    COMPARISONS,
    Comparison,
    figure2_rows,
    figure2_target_bases,
    relative_values,
    replicate,
    value,
)
from experiments.report.table import Row

# (unit, n) -> values; n None: a reference that holds at every n (a base network)
Side = dict[tuple[Hashable, int | None], list[float]]
PAPER_STAGES = 7  # the paper's transferable layers (CaffeNet conv1..fc7), where its ranges are stated


@dataclass(frozen=True)
class Effect:
    """One row to estimate.

    Args:
        claim: The paper's claim, e.g. ``co-adaptation dip``.
        contrast: Left minus right, one of ``CONTRASTS``.
        layers: The n pooled over (within each unit).
        sign: The paper's direction: -1 (left below right) or +1.
        comparison: Which Figure-2 networks (``experiments.report.curves.COMPARISONS``): the random splits', or a
            pretrained base's (A: its pretraining data).
    """

    claim: str
    contrast: str
    layers: tuple[int, ...]
    sign: Literal[-1, 1]
    comparison: Comparison = "random"

    @property
    def title(self) -> str:
        """The claim as the table prints it: marked where A is a pretrained weights file's data, not a half."""
        return self.claim + (" (A: pretrained weights)" if self.comparison == "pretrained" else "")

    @property
    def label(self) -> str:
        """The n actually pooled, as text: ``3-5`` for a run of consecutive n, else ``1,3,5,7``."""
        first, last = self.layers[0], self.layers[-1]
        if len(self.layers) > 1 and self.layers == tuple(range(first, last + 1)):
            return f"{first}-{last}"
        return ",".join(map(str, self.layers))


SideOf = Callable[[list[Row], Comparison], Side]


def _family(name: str) -> SideOf:
    def side(rows: list[Row], comparison: Comparison) -> Side:
        values: Side = defaultdict(list)
        for row in figure2_rows(rows, comparison):
            if row["family"] == name and (metric := value(row)) is not None:
                values[replicate(row), row["n"]].append(metric)
        return values

    return side


def _bases(rows: list[Row], comparison: Comparison) -> Side:
    return {
        (replicate(row), None): [metric]
        for row in figure2_target_bases(rows, comparison)
        if (metric := value(row)) is not None
    }


def _relative(curve: str) -> SideOf:
    def side(rows: list[Row], comparison: Comparison) -> Side:
        values: Side = defaultdict(list)
        for n, units in relative_values(rows).get(curve, {}).items():
            for unit, difference in units.items():
                if n > 0:
                    values[unit[-1], n].append(difference)  # every unit ends with its seed
        return values

    return side


CONTRASTS: dict[str, tuple[SideOf, SideOf]] = {
    "BnB - base": (_family("BnB"), _bases),
    "AnB - base": (_family("AnB"), _bases),
    "BnB+ - base": (_family("BnB+"), _bases),
    "AnB - BnB": (_family("AnB"), _family("BnB")),
    "AnB+ - base": (_family("AnB+"), _bases),
    "AnB+ - BnB+": (_family("AnB+"), _family("BnB+")),
    "dissimilar - random split (AnB - base)": (_relative("AnB, dissimilar split"), _relative("AnB, random splits")),
    "random features - AnB (each - base)": (_relative("random features"), _relative("AnB, random splits")),
}
CROSS_PANEL: tuple[tuple[str, str], ...] = (
    ("dissimilar split", "dissimilar - random split (AnB - base)"),
    ("random features", "random features - AnB (each - base)"),
)


def sides(effect: Effect, rows: list[Row]) -> tuple[Side, Side]:
    """The left and right side of ``effect``'s contrast in ``rows`` (its comparison's networks)."""
    left, right = CONTRASTS[effect.contrast]
    return left(rows, effect.comparison), right(rows, effect.comparison)


@dataclass(frozen=True)
class ClaimStages:
    """The n each of the paper's layer-range claims pools, for a network with ``stages`` transferable stages.

    The paper's ranges for its 7 layers, counted from the top so that they carry over to any depth: the dip in
    the middle, stages 3..S-2 (the paper: 3..5); specificity at the top two, S-1 and S (6 and 7); Table 1's boosts
    from the bottom, from stage 3 and over the top three, each up to S (1..7, 3..7, 5..7).

    Args:
        stages: S, the network's transferable stages (``models.transfer.max_depth``; CaffeNet: 7).
    """

    stages: int = PAPER_STAGES

    def __post_init__(self) -> None:
        if self.stages < 1:
            raise ValueError(f"stages must be at least 1 (a network's transferable stages), got {self.stages}")

    @property
    def dip(self) -> tuple[int, ...]:
        """The middle: stages 3..S-2."""
        return tuple(range(3, self.stages - 1))

    @property
    def specificity(self) -> tuple[int, ...]:
        """The top two stages."""
        return tuple(n for n in (self.stages - 1, self.stages) if n >= 1)

    @property
    def boost_starts(self) -> tuple[int, ...]:
        """Where Table 1's boost ranges start (each ends at S): the bottom, stage 3, the top three."""
        return tuple(sorted({n for n in (1, 3, self.stages - 2) if 1 <= n <= self.stages}))

    def check(self, rows: Sequence[Row]) -> None:
        """Refuse a table with a transfer deeper than S: the ranges would be another network's.

        Raises:
            ValueError: A row's n is above ``stages``.
        """
        deepest = max((row["n"] for row in rows if row["n"] is not None), default=0)
        if deepest > self.stages:
            raise ValueError(
                f"the results table has transfers at n = {deepest}, deeper than stages={self.stages}: pass the "
                f"network's number of transferable stages (models.transfer.max_depth of its stage names), so that "
                f"the effects pool the right stages"
            )


def plan(rows: list[Row], stages: ClaimStages | None = None) -> list[Effect]:
    """The effects that ``rows`` hold networks for, in the module docstring's order (a pretrained base's after).

    Args:
        rows: The study's results table.
        stages: The claims' ranges for the study's network (None: the paper's 7 stages).
    """
    stages = stages or ClaimStages()
    stages.check(rows)
    effects: list[Effect] = []
    for comparison in COMPARISONS:
        effects += _figure2_effects(rows, comparison, stages)
        if comparison == "random":
            effects += _cross_panel_effects(rows)
    return list(dict.fromkeys(effects))  # a study with few n can make two Table-1 ranges the same


def _figure2_effects(rows: list[Row], comparison: Comparison, stages: ClaimStages) -> list[Effect]:
    """The dip, specificity and boost rows of one comparison's networks, over ``stages``' ranges."""

    def layers(contrast: str, side: int) -> set[int]:
        return {n for _, n in CONTRASTS[contrast][side](rows, comparison) if n is not None}

    bnb, anb = layers("BnB - base", 0), layers("AnB - BnB", 0)
    anb_plus, bnb_plus = layers("AnB+ - base", 0), layers("AnB+ - BnB+", 1)
    effects: list[Effect] = []
    dip = sorted(bnb & set(stages.dip))
    if dip:
        effects += [Effect("co-adaptation dip", "BnB - base", tuple(dip), -1, comparison)]
        effects += [Effect("co-adaptation dip", "BnB - base", (n,), -1, comparison) for n in dip if len(dip) > 1]
    top = sorted(anb & bnb & set(stages.specificity))
    effects += [Effect("specificity", "AnB - BnB", (n,), -1, comparison) for n in top]
    boosts = [("AnB+ - base", anb_plus)] + ([("AnB+ - BnB+", anb_plus | bnb_plus)] if bnb_plus else [])
    for contrast, present in boosts:
        for low in stages.boost_starts:  # Table 1's ranges
            pooled = tuple(n for n in range(low, stages.stages + 1) if n in present)
            if anb_plus & set(pooled):
                effects.append(Effect("lasting boost", contrast, pooled, 1, comparison))
    return effects


def _cross_panel_effects(rows: list[Row]) -> list[Effect]:
    """The dissimilar-split and random-features rows (the random splits' AnB against another panel's curve)."""
    effects: list[Effect] = []
    for claim, contrast in CROSS_PANEL:
        left, right = (side(rows, "random") for side in CONTRASTS[contrast])
        shared = sorted({n for _, n in left if n is not None} & {n for _, n in right if n is not None})
        if shared:
            effects.append(Effect(claim, contrast, tuple(shared), -1))
            effects += [Effect(claim, contrast, (n,), -1) for n in shared if len(shared) > 1]
    return effects
