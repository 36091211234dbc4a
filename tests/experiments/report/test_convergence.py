"""The convergence check over the results table, and the validation history column it reads."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from experiments.report.convergence import check, plateau_rise, read_convergence, write_convergence
from experiments.report.table import COLUMNS, TableError, read_table, write_table
from tests.helpers import REPO
from tests.helpers.planted import planted_rows


def rewrite(source: Path, target: Path, change: Callable[[list[str]], list[str]]) -> None:
    """Write ``source``'s CSV lines, each changed by ``change`` (the header too), to ``target``."""
    with source.open(newline="") as file:
        lines = [change(line) for line in csv.reader(file)]
    with target.open("w", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows(lines)


DOCS = REPO / "docs"
DATA = Path(__file__).resolve().parent / "data"


def shift_selffers(rows: list[dict], by: float) -> list[dict]:
    """``rows`` with every BnB+ network ``by`` above where it was."""
    return [
        {**row, "top1_best_k_mean": row["top1_best_k_mean"] + by} if row["family"] == "BnB+" else row for row in rows
    ]


def test_a_converged_study_passes():
    """BnB+ at its base at every n (to the planted noise) and every base flat at the end: converged."""
    verdict = check(planted_rows(seeds=3, noise=0.001))  # BnB+ - base per seed within +-0.2 points
    assert (verdict.status, verdict.failures, verdict.unchecked) == ("converged", [], [])
    assert verdict.converged and verdict.note().startswith("convergence check: converged")
    # what was measured is said even when it passes: one line per n, one pooled, one per base
    bases = [row for row in planted_rows(seeds=3, noise=0.001) if row["n"] == 0]
    assert len(verdict.measured) == 7 + 1 + len(bases)
    assert verdict.measured[0].startswith("BnB+ - base, n=1: ") and "over 3 unit(s)" in verdict.measured[0]


def test_selffers_above_their_bases_fail_even_where_the_mean_is_small():
    """BnB+ 0.6 points above its base at every n, every seed (the old 4000-step study's pattern): fails at every n.

    The old rule (|mean| <= max(1.5 points, seed spread)) passed this; equivalence within +-0.5 does not.
    """
    verdict = check(shift_selffers(planted_rows(seeds=3), 0.006))
    assert verdict.status == "not converged" and not verdict.converged
    assert [line.split(":")[0] for line in verdict.failures] == (
        [f"BnB+ - base, n={n}" for n in range(1, 8)] + ["BnB+ - base, pooled over n=1,2,3,4,5,6,7"]
    )
    assert all("not inside +-0.50 points" in line for line in verdict.failures)
    assert (
        verdict.note().startswith("NOT CONVERGED: BnB+ - base, n=1")
        and "dip and boost not interpretable" in verdict.note()
    )
    assert check(shift_selffers(planted_rows(seeds=3), 0.006), tolerance=0.02).converged  # a wider tau passes


def test_a_wide_interval_around_zero_fails():
    """Mean zero but seeds far apart: not shown equivalent to zero, so not converged (absence of evidence)."""
    rows = planted_rows(seeds=3)
    for row in rows:
        if row["family"] == "BnB+":
            row["top1_best_k_mean"] += (-0.01, 0.0, 0.01)[row["seed"]]
    verdict = check(rows)
    assert verdict.status == "not converged" and "n=1" in verdict.failures[0]


def test_one_seed_cannot_show_equivalence():
    """One unit per n gives no interval: the rule fails and says to run at least 2 seeds."""
    verdict = check(planted_rows(seeds=1))
    assert verdict.status == "not converged"
    assert "run at least 2 seeds" in verdict.failures[0] and "(no interval)" in verdict.failures[0]


def test_a_base_still_climbing_at_the_end_fails_with_one_line_naming_it():
    """A synthetic curve still rising at the end fails the plateau rule; one flat at the end passes."""
    rows = planted_rows(seeds=3, noise=0.001)
    climbing = next(row for row in rows if row["cell"] == "random0_base-B_s1")
    climbing["val_top1_history"] = [0.5, 0.6, 0.7, 0.74, 0.76, 0.78, 0.79, 0.80]  # last quarter: +2 points
    verdict = check(rows)
    assert verdict.status == "not converged" and len(verdict.failures) == 1
    assert verdict.failures[0].startswith("random0_base-B_s1: rise over its last 3 validations +2.00 points")
    assert "still rising" in verdict.failures[0]
    climbing["val_top1_history"] = [0.5, 0.6, 0.7, 0.78, 0.79, 0.80, 0.80, 0.80]  # the lr drop long before the end
    assert check(rows).converged
    assert plateau_rise([0.1] * 16 + [0.2, 0.3, 0.4, 0.5]) == pytest.approx((0.4, 5))  # a quarter of 20


def test_the_shipped_undertrained_studies_fail():
    """The default 300-step study and the old 4000-step 'converged' study (whose BnB+ beat its base in every seed,
    paired 95% CI +0.36 to +1.14 points at n = 7) are both not converged under the new rule."""
    default = check(read_table(DOCS / "default_study_results.csv"))
    assert default.status == "not converged"
    assert any("still rising" in line for line in default.failures)
    old = check(read_table(DATA / "fmnist_4000_steps_results.csv"))
    assert old.status == "not converged"
    n7 = next(line for line in old.measured if line.startswith("BnB+ - base, n=7"))
    assert "+0.75 points (95% CI +0.36 to +1.14) over 3 unit(s) (+0.59, +0.90, +0.75)" in n7
    assert not any("still rising" in line for line in old.failures)  # its bases are flat: only BnB+ tells


def test_missing_history_or_selffers_is_unchecked_not_passed():
    """No history (an old table) or no BnB+ network: unchecked, each said once; a failure still wins."""
    rows = [row for row in planted_rows(seeds=3) if row["family"] != "BnB+"]
    for row in rows:
        row["val_top1_history"] = None
    verdict = check(rows)
    assert verdict.status == "unchecked" and verdict.failures == [] and not verdict.converged
    assert sum("validations recorded" in line for line in verdict.unchecked) == 15  # 5 bases x 3 seeds
    assert "no BnB+ network with its base" in verdict.unchecked[0]
    assert verdict.note().startswith("convergence UNCHECKED")
    rows[0]["val_top1_history"] = [0.1, 0.5, 0.9]
    assert check(rows).status == "not converged"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="tolerance must be > 0"):
        check(planted_rows(seeds=2), tolerance=0.0)


def test_write_and_read_convergence(tmp_path: Path):
    """convergence.json is the verdict's fields (read back equal); convergence.txt states the rules and every line."""
    rows = planted_rows(seeds=3, noise=0.001)
    rows[0]["val_top1_history"] = [0.1, 0.5, 0.9]
    verdict = check(rows)
    files = write_convergence(tmp_path, verdict)
    record = json.loads(files[0].read_text())
    assert record["status"] == "not converged" and record["settings"] == {"tolerance": 0.005, "min_window": 3}
    assert record["failures"][0].startswith(rows[0]["cell"])
    assert read_convergence(tmp_path) == verdict and read_convergence(tmp_path / "none") is None
    text = files[1].read_text()
    assert (
        text.startswith("convergence check: not converged\nrules: BnB+(n) - base") and "FAIL random0_base-A_s0" in text
    )


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
    rewrite(
        table, table, lambda line: line if line[0] == "split" else [*line[:column], '["x", 1]', *line[column + 1 :]]
    )
    with pytest.raises(TableError, match="val_top1_history.*not a JSON list of numbers"):
        read_table(table)
