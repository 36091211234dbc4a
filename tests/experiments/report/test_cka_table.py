"""The layer-similarity table (``cka.csv``): written and read back, the report's points and summary rows, a table
written before the chance baseline, and a corrupt one named."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from experiments.report import cka_table
from experiments.report.cka_table import PairCKA
from experiments.report.intervals import mean_interval
from experiments.report.table import TableError
from tests.helpers.cka import STAGES


def pair(label: str, offset: float, chance: float | None = None) -> PairCKA:
    return PairCKA(
        label,
        {stage: 0.9 - 0.1 * n + offset for n, stage in enumerate(STAGES)},
        None if chance is None else dict.fromkeys(STAGES, chance),
    )


def test_table_has_one_row_per_stage_with_the_mean_and_interval_over_pairs(tmp_path: Path):
    pairs = [pair("random0_s0", 0.0, 0.002), pair("random0_s1", 0.02, -0.001), pair("random0_s2", -0.01, 0.005)]
    rows = cka_table.write_cka_table(tmp_path / "cka.csv", pairs)
    back = cka_table.read_cka_table(tmp_path / "cka.csv")
    assert [row["stage"] for row in back] == list(STAGES) and [row["n"] for row in back] == list(range(1, 8))
    assert back == rows
    third = back[2]
    interval = mean_interval([0.7, 0.72, 0.69])
    assert (third["count"], third["mean"]) == (3, pytest.approx(interval.estimate, abs=1e-6))
    assert (third["ci_low"], third["ci_high"]) == (
        pytest.approx(interval.low, abs=1e-6),
        pytest.approx(interval.high, abs=1e-6),
    )
    assert third["values"] == {
        "random0_s0": pytest.approx(0.7),
        "random0_s1": pytest.approx(0.72),
        "random0_s2": pytest.approx(0.69),
    }
    assert third["chance"] == pytest.approx(0.002) and third["chance_values"] == {
        "random0_s0": pytest.approx(0.002),
        "random0_s1": pytest.approx(-0.001),
        "random0_s2": pytest.approx(0.005),
    }
    with open(tmp_path / "cka.csv", newline="") as file:
        header = next(csv.reader(file))
    labels = ["random0_s0", "random0_s1", "random0_s2"]
    assert header == [*cka_table.FIELDS, "chance", *labels, *(f"chance_{label}" for label in labels)]
    points = cka_table.cka_points(back)
    assert sorted(points) == list(range(1, 8)) and len(points[1]) == 3
    assert cka_table.chance_points(back) == {
        n: [pytest.approx(0.002), pytest.approx(-0.001), pytest.approx(0.005)] for n in range(1, 8)
    }
    summary = cka_table.summary_rows(back)
    assert {row["panel"] for row in summary} == {"cka"}
    assert [row["n"] for row in summary if row["curve"] == "CKA(A, B)"] == list(range(1, 8))
    chance = [row for row in summary if row["curve"] == "chance (permuted examples)"]
    assert [row["n"] for row in chance] == list(range(1, 8)) and chance[0]["count"] == 3
    assert chance[0]["mean"] == pytest.approx(0.002) and chance[0]["ci_low"] < 0 < chance[0]["ci_high"]
    assert "conv1 0.903 (chance 0.002)" in cka_table.describe(back)


def test_a_table_written_before_the_chance_baseline_still_reads(tmp_path: Path):
    """The old format (no chance columns): the same CKA rows, every chance None, no chance curve; pairs without a
    chance baseline write empty chance cells."""
    old = tmp_path / "old.csv"
    old.write_text(
        "n,stage,count,mean,ci_low,ci_high,std,min,max,random0_s0,random0_s1\n"
        "1,conv1,2,0.85,0.2,1.5,0.07,0.8,0.9,0.8,0.9\n"
        "2,conv2,1,0.5,,,,0.5,0.5,0.5,\n"
    )
    table = cka_table.read_cka_table(old)
    assert [(row["n"], row["stage"], row["mean"], row["chance"]) for row in table] == [
        (1, "conv1", 0.85, None),
        (2, "conv2", 0.5, None),
    ]
    assert table[1]["values"] == {"random0_s0": 0.5, "random0_s1": None}
    assert table[0]["chance_values"] == {"random0_s0": None, "random0_s1": None}
    assert cka_table.chance_points(table) == {} and cka_table.cka_points(table) == {1: [0.8, 0.9], 2: [0.5]}
    assert {row["curve"] for row in cka_table.summary_rows(table)} == {"CKA(A, B)"}
    assert "chance" not in cka_table.describe(table)
    rows = cka_table.write_cka_table(tmp_path / "new.csv", [pair("random0_s0", 0.0)])  # no chance measured
    assert rows[0]["chance"] is None and cka_table.read_cka_table(tmp_path / "new.csv") == rows
    (tmp_path / "bad.csv").write_text(
        old.read_text()
        .replace("random0_s1\n", "random0_s1,chance\n", 1)
        .replace(
            "n,stage,count,mean,ci_low,ci_high,std,min,max,", "n,stage,count,mean,ci_low,ci_high,std,min,max,chance,"
        )
    )
    with pytest.raises(TableError, match="bad.csv is corrupt"):  # chance columns that do not match the pairs
        cka_table.read_cka_table(tmp_path / "bad.csv")


def test_one_pair_has_no_interval_and_a_corrupt_table_is_named(tmp_path: Path):
    rows = cka_table.write_cka_table(tmp_path / "cka.csv", [pair("random0_s0", 0.0)])
    assert rows[0]["count"] == 1 and rows[0]["ci_low"] is None and rows[0]["ci_high"] is None
    assert cka_table.read_cka_table(tmp_path / "cka.csv")[0]["ci_low"] is None
    (tmp_path / "bad.csv").write_text("n,stage\n1,conv1\n")
    with pytest.raises(TableError, match="bad.csv is corrupt"):
        cka_table.read_cka_table(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="different stages|has stages"):
        cka_table.cka_rows([pair("a", 0.0), PairCKA("b", {"conv1": 0.5})])
