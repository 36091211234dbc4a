"""The effects table's claims: each claim's layer range (the paper's for seven stages, counted from the top
otherwise), a table deeper than the stated stages refused, and the rows planned from the n a study has."""

from __future__ import annotations

import pytest

from experiments.report.claims import ClaimStages, Effect, plan
from experiments.report.effects import EffectRow, effects, estimate
from tests.helpers.planted import DIP, TRANSFER, planted_rows


def test_plan_follows_the_layers_present():
    """Only the n a study has: a pooled row over what exists, Table-1 ranges merged when they coincide."""
    rows = [row for row in planted_rows(seeds=3) if row["n"] in (0, 5, 7)]
    labels = {(effect.contrast, effect.label) for effect in plan(rows)}
    assert ("BnB - base", "5") in labels and ("BnB - base", "3-5") not in labels
    assert {label for contrast, label in labels if contrast == "AnB+ - base"} == {"5,7"}
    assert ("AnB - BnB", "6") not in labels
    assert estimate(Effect("specificity", "AnB - BnB", (6,), -1), rows) is None


def test_claim_ranges_are_the_papers_for_seven_stages_and_counted_from_the_top_otherwise():
    """S = 7 (CaffeNet) gives Table 1's and Figure 2's ranges; a deeper network keeps the dip in the middle and
    specificity at its own top two; a shallow one drops the ranges it has no room for."""
    paper = ClaimStages(7)
    assert (paper.dip, paper.specificity, paper.boost_starts) == ((3, 4, 5), (6, 7), (1, 3, 5))
    resnet = ClaimStages(9)  # ResNet-18 at block granularity
    assert (resnet.dip, resnet.specificity, resnet.boost_starts) == ((3, 4, 5, 6, 7), (8, 9), (1, 3, 7))
    shallow = ClaimStages(2)
    assert (shallow.dip, shallow.specificity, shallow.boost_starts) == ((), (1, 2), (1,))
    with pytest.raises(ValueError, match="stages must be at least 1"):
        ClaimStages(0)


def test_a_deeper_network_pools_its_own_top_and_middle():
    """The planted table shifted up by two stages (n = 3..9 of a 9-stage network): the rows pool the same networks
    as the paper's ranges did on the unshifted table, and the same estimates come out."""
    rows = planted_rows(seeds=3)
    deeper = [{**row, "n": row["n"] + 2 if row["n"] else 0} for row in rows]
    labels = {(effect.claim, effect.contrast, effect.label) for effect in plan(deeper, ClaimStages(9))}
    assert ("specificity", "AnB - BnB", "8") in labels and ("specificity", "AnB - BnB", "9") in labels
    assert ("specificity", "AnB - BnB", "6") not in labels
    assert ("co-adaptation dip", "BnB - base", "3-7") in labels
    assert {label for claim, contrast, label in labels if contrast == "AnB+ - base"} == {"3-9", "7-9"}

    def specificity(found: list[EffectRow]) -> dict[str, float]:
        return {row.effect.label: row.interval.estimate for row in found if row.effect.claim == "specificity"}

    shallow, deep = specificity(effects(rows)), specificity(effects(deeper, stages=9))
    assert deep == {str(int(n) + 2): mean for n, mean in shallow.items()}
    assert deep["9"] == pytest.approx(TRANSFER[7] - DIP[7])


def test_a_table_deeper_than_the_stated_stages_is_refused_by_name():
    """A 9-stage network's table read with the paper's 7 stages would leave n = 8, 9 out of every claim."""
    deeper = [{**row, "n": row["n"] + 2 if row["n"] else 0} for row in planted_rows(seeds=2)]
    with pytest.raises(ValueError, match=r"n = 9, deeper than stages=7: pass the network's number"):
        effects(deeper)
