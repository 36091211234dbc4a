"""The convergence check over the results table, and the validation history column it reads."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from experiments.report.convergence import check, write_convergence
from experiments.report.table import COLUMNS, TableError, read_table, write_table
from tests.planted import planted_rows


def rewrite(source: Path, target: Path, change: Callable[[list[str]], list[str]]) -> None:
    """Write ``source``'s CSV lines, each changed by ``change`` (the header too), to ``target``."""
    with source.open(newline="") as file:
        lines = [change(line) for line in csv.reader(file)]
    with target.open("w", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows(lines)


def test_a_converged_study_passes():
    """Every base on a plateau (last 3 within 0.002) and BnB+ n=7 at its base: passed, no lines, no note."""
    verdict = check(planted_rows(seeds=3))
    assert (verdict.status, verdict.failures, verdict.unchecked, verdict.note()) == ("passed", [], [], None)
    # what was measured is said even when it passes: one line per base and one for the selffer rule
    bases = [row for row in planted_rows(seeds=3) if row["n"] == 0]
    assert len(verdict.measured) == len(bases) + 1
    assert verdict.measured[-1].startswith("BnB+ n=7 minus its base: mean ") and "measured: " in verdict.text()


def test_a_base_still_climbing_fails_with_one_line_naming_it():
    """A base whose last 3 validations span 0.01 > 0.005 fails; the line names the cell and the span."""
    rows = planted_rows(seeds=3)
    climbing = next(row for row in rows if row["cell"] == "random0_base-B_s1")
    climbing["val_top1_history"] = [0.5, 0.78, 0.79, 0.80]
    verdict = check(rows)
    assert verdict.status == "failed" and len(verdict.failures) == 1
    assert verdict.failures[0].startswith("random0_base-B_s1: not on a plateau") and "0.0200" in verdict.failures[0]
    assert verdict.note().startswith("Convergence check FAILED: random0_base-B_s1")
    assert check(rows, plateau_tolerance=0.03).status == "passed"


def test_selffer_far_from_its_base_fails_one_line_per_network_unless_seeds_spread_as_much():
    """BnB+ n=7 0.03 above its base: beyond 0.015, one line per BnB+ network; within a seed std of 0.03 it passes."""
    rows = planted_rows(seeds=3)
    for row in rows:
        if row["family"] == "BnB+" and row["n"] == 7:
            row["top1_best_k_mean"] += 0.03
    verdict = check(rows)
    assert verdict.status == "failed"
    assert [line.split(":")[0] for line in verdict.failures] == [f"random0_B7B+_s{seed}" for seed in range(3)]
    assert "the mean over 3 is +0.0300" in verdict.failures[0]
    spread = planted_rows(seeds=3, seed_effect=0.04)  # base std over seeds 0.04
    for row in spread:
        if row["family"] == "BnB+" and row["n"] == 7:
            row["top1_best_k_mean"] += 0.03
    assert check(spread).status == "passed"


def test_missing_history_or_selffers_is_unchecked_not_failed():
    """No history (an old table) or no BnB+ network: unchecked, each said once; a failure still wins."""
    rows = [row for row in planted_rows(seeds=3) if row["family"] != "BnB+"]
    for row in rows:
        row["val_top1_history"] = None
    verdict = check(rows)
    assert verdict.status == "unchecked" and verdict.failures == [] and verdict.note() is None
    assert sum("validations recorded" in line for line in verdict.unchecked) == 15  # 5 bases x 3 seeds
    assert "no BnB+ network in the table" in verdict.unchecked[-1]
    rows[0]["val_top1_history"] = [0.1, 0.5, 0.9]
    assert check(rows).status == "failed"


def test_write_convergence(tmp_path: Path):
    """convergence.json is the verdict's fields; convergence.txt states the rules and every line."""
    rows = planted_rows(seeds=3)
    rows[0]["val_top1_history"] = [0.1, 0.5, 0.9]
    files = write_convergence(tmp_path, check(rows))
    record = json.loads(files[0].read_text())
    assert record["status"] == "failed" and record["settings"] == {"last": 3, "plateau_tolerance": 0.005,
                                                                   "min_gap": 0.015}
    assert record["failures"][0].startswith(rows[0]["cell"])
    text = files[1].read_text()
    assert text.startswith("convergence check: failed\nrules: plateau") and "FAIL random0_base-A_s0" in text


def test_table_keeps_the_validation_history_and_reads_old_tables(tmp_path: Path):
    """The history is a JSON list in its CSV cell; a table without the column reads with the history None."""
    rows = planted_rows(seeds=1)[:2]
    rows[1]["val_top1_history"] = None
    table = tmp_path / "results.csv"
    write_table(table, rows)
    back = read_table(table)
    assert back[0]["val_top1_history"] == rows[0]["val_top1_history"] and back[1]["val_top1_history"] is None
    old = tmp_path / "old.csv"
    rewrite(table, old, lambda line: line[:-2])  # a table from before the history and images_per_class columns
    assert old.read_text().splitlines()[0] == ",".join(COLUMNS[:-2])
    assert [row["val_top1_history"] for row in read_table(old)] == [None, None]
    assert [row["cell"] for row in read_table(old)] == [row["cell"] for row in rows]


def test_a_history_that_is_not_a_list_of_numbers_is_a_corrupt_table(tmp_path: Path):
    """A hand-edited history is refused with the column named, like any corrupt cell."""
    table = tmp_path / "results.csv"
    write_table(table, planted_rows(seeds=1)[:1])
    column = COLUMNS.index("val_top1_history")
    rewrite(table, table, lambda line: line if line[0] == "split" else
            [*line[:column], '["x", 1]', *line[column + 1:]])
    with pytest.raises(TableError, match="val_top1_history.*not a JSON list of numbers"):
        read_table(table)
