"""Two studies compared: planted differences recovered per n with Welch's interval, CKA and stage names, a
pretrained base's rows apart."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from experiments.report.cka_table import PairCKA, write_cka_table
from experiments.report.compare import Study, compare
from experiments.report.compare_files import markdown
from experiments.report.intervals import welch_interval
from experiments.report.table import write_table
from tests.helpers.planted import EXTRA_LOSS, TRANSFER, network, planted_rows, right_rows


def by_key(rows: list) -> dict[tuple[str, int], object]:
    return {(row.contrast, row.n): row for row in rows}


def test_a_planted_difference_is_found_where_it_is_and_nowhere_else() -> None:
    left, right = Study("left", planted_rows(seeds=5), []), Study("right", right_rows(), [])
    rows = by_key(compare(left, right))
    at7 = rows["AnB - base", 7]
    assert at7.left.estimate == pytest.approx(TRANSFER[7], abs=1e-12)
    assert at7.right.estimate == pytest.approx(TRANSFER[7] - EXTRA_LOSS, abs=1e-12)
    assert at7.difference.estimate == pytest.approx(EXTRA_LOSS, abs=1e-12)
    assert (at7.left.count, at7.right.count, at7.verdict) == (5, 5, "differs")
    assert rows["AnB - BnB", 7].verdict == "differs"
    for n in range(1, 7):
        assert rows["AnB - base", n].difference.estimate == pytest.approx(0.0, abs=1e-12)
        assert rows["AnB - base", n].verdict == "no difference shown"
    assert rows["BnB+ - base", 3].verdict == "no difference shown"
    # every quantity of the planted study is compared, at n = 0 for the bases, 1..7 for the rest
    assert {contrast for contrast, _ in rows} == {
        "base top-1",
        "BnB - base",
        "AnB - base",
        "AnB - BnB",
        "BnB+ - base",
        "AnB+ - base",
        "AnB+ - BnB+",
        "AnB, dissimilar split",
        "random features",
    }
    assert rows["base top-1", 0].left.count == 5


def test_the_difference_is_welchs_interval_over_the_two_studies_units() -> None:
    left, right = Study("left", planted_rows(seeds=3), []), Study("right", planted_rows(seeds=4), [])
    row = by_key(compare(left, right))["base top-1", 0]
    bases = [[r["top1_best_k_mean"] for r in study.rows if r["family"] == "baseB"] for study in (left, right)]
    expected = welch_interval(*bases)
    assert (row.difference.low, row.difference.high) == pytest.approx((expected.low, expected.high))
    assert row.left.count == 3 and row.right.count == 4


def test_cka_and_stage_names_come_from_the_studies_cka_tables() -> None:
    caffenet = [
        {"n": 1, "stage": "conv1", "values": {"s0": 0.9, "s1": 0.8}, "chance": 0.01},
        {"n": 2, "stage": "conv2", "values": {"s0": 0.7, "s1": 0.7}, "chance": 0.0},
    ]
    vit = [
        {"n": 1, "stage": "embed", "values": {"s0": 0.5, "s1": 0.6}, "chance": 0.0},
        {"n": 2, "stage": "block1", "values": {"s0": math.nan, "s1": None}, "chance": None},
    ]  # undefined
    left, right = Study("CaffeNet", planted_rows(seeds=2), caffenet), Study("ViT", planted_rows(seeds=2), vit)
    rows = by_key(compare(left, right))
    assert rows["CKA(A, B)", 1].difference.estimate == pytest.approx(0.3)
    assert ("CKA(A, B)", 2) not in rows  # only where both have a defined value
    table = markdown(left, right, list(rows.values()))
    assert "| layer similarity | CKA(A, B) | 1 | conv1 / embed | 0.850 (" in table
    assert "| frozen transfer | AnB - base | 7 | - / - |" in table  # no stage name beyond the ViT's table


def test_a_biased_cka_table_is_left_out_and_said() -> None:
    """A CKA table without the chance column predates the debiased estimator: no CKA row, a note instead."""
    old = [{"n": 1, "stage": "conv1", "values": {"s0": 0.9, "s1": 0.8}, "chance": None}]
    new = [{"n": 1, "stage": "conv1", "values": {"s0": 0.5, "s1": 0.6}, "chance": 0.0}]
    left, right = Study("old", planted_rows(seeds=2), old), Study("new", planted_rows(seeds=2), new)
    rows = compare(left, right)
    assert not any(row.contrast == "CKA(A, B)" for row in rows)
    assert "old's CKA table predates the debiased estimator" in markdown(left, right, rows)


def test_holm_over_the_rows_and_the_convergence_status_in_the_header() -> None:
    """Each row's p is Welch's; Holm's adjusted p is at least it, and 'differs' only where Holm rejects. Both
    studies' convergence status heads the table."""
    left, right = Study("left", planted_rows(seeds=5), []), Study("right", right_rows(), [])
    rows = compare(left, right)
    tested = [row for row in rows if row.p is not None]
    assert tested and all(row.p_holm >= row.p for row in tested)
    assert all((row.verdict == "differs") == (row.p_holm <= 0.05) for row in tested)
    smallest = min(tested, key=lambda row: row.p)
    assert smallest.p_holm == pytest.approx(min(1.0, len(tested) * smallest.p))
    assert smallest.adjusted_level == pytest.approx(1 - 0.05 / len(tested))
    assert f"Holm's step-down procedure over the {len(tested)} rows" in markdown(left, right, rows)
    assert f"left **{left.convergence.status}**, right **{right.convergence.status}**" in markdown(left, right, rows)


def test_one_seed_gives_no_interval_not_a_verdict() -> None:
    rows = by_key(compare(Study("a", planted_rows(seeds=1), []), Study("b", planted_rows(seeds=3), [])))
    assert rows["AnB - base", 7].verdict == "no interval"
    assert "(one unit)" in markdown(Study("a", [], []), Study("b", [], []), list(rows.values()))


def test_a_results_table_copied_elsewhere_is_a_study_with_its_cka_table_beside_it(tmp_path: Path) -> None:
    write_table(tmp_path / "vit_results.csv", planted_rows(seeds=2))
    write_cka_table(tmp_path / "vit_cka.csv", [PairCKA("random0_s0", {"embed": 0.9})])
    study = Study.read(tmp_path / "vit_results.csv")
    assert (study.label, study.stage(1), len(study.rows)) == ("vit", "embed", len(planted_rows(seeds=2)))
    write_table(tmp_path / "table.csv", planted_rows(seeds=2))
    assert Study.read(tmp_path / "table.csv").cka == []  # no "results" in the name: no CKA table to find


def with_pretrained(rows: list[dict], gain_at_2: float = 0.0) -> list[dict]:
    """``rows`` with AnB and AnB+ from a pretrained weights file on the whole data (its target base is planted)."""
    seeds = sorted({row["seed"] for row in rows})
    pattern = {seed: 0.001 * (seed - (len(seeds) - 1) / 2) for seed in seeds}  # zero mean over seeds
    added = [
        network("whole", "pretrained", "all", n, mode, seed, 0.82 + 0.01 * n + gain + pattern[seed])
        for seed in seeds
        for n in (1, 2, 3)
        for mode, gain in (("frozen", gain_at_2 if n == 2 else 0.0), ("finetune", 0.03))
    ]
    return rows + added


def test_a_pretrained_bases_transfer_is_compared_apart_from_the_random_splits() -> None:
    left = Study("left", with_pretrained(planted_rows(seeds=4)), [])
    right = Study("right", with_pretrained(planted_rows(seeds=4), gain_at_2=0.2), [])
    rows = {(row.quantity, row.n): row for row in compare(left, right)}
    frozen = "frozen transfer (A: pretrained weights)"
    assert {n for quantity, n in rows if quantity == frozen} == {1, 2, 3}
    assert rows[frozen, 2].difference.estimate == pytest.approx(-0.2, abs=1e-9)
    assert rows[frozen, 2].verdict == "differs" and rows[frozen, 1].verdict == "no difference shown"
    assert rows[frozen, 3].left.estimate == pytest.approx(0.03, abs=1e-9)  # each network minus the whole data's base
    assert rows["fine-tuned transfer (A: pretrained weights)", 1].left.estimate == pytest.approx(0.04, abs=1e-9)
    # the random splits' rows are what they were without the pretrained networks
    assert rows["frozen transfer", 2].difference.estimate == pytest.approx(0.0, abs=1e-12)
    assert "frozen transfer (A: pretrained weights)" in markdown(left, right, compare(left, right))


def test_a_study_without_the_pretrained_panel_has_no_pretrained_rows() -> None:
    left, right = Study("left", planted_rows(seeds=3), []), Study("right", with_pretrained(planted_rows(seeds=3)), [])
    assert not [row for row in compare(left, right) if "pretrained" in row.quantity]
