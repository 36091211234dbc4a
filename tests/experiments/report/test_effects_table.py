"""The effects table's files: effects.csv in fractions, effects.md in percentage points, each with the verdicts and
the convergence status."""

from __future__ import annotations

import csv
from pathlib import Path

from experiments.report.convergence import Convergence
from experiments.report.effects import effects
from experiments.report.effects_table import markdown, stage_note, write_effects
from tests.helpers.planted import planted_rows


def test_write_effects_files(tmp_path: Path):
    """effects.csv holds fractions, the adjusted interval, Holm's p, the verdict and the convergence status;
    effects.md the same rows in percentage points under the status."""
    verdict = Convergence("not converged", ["BnB+ - base, n=7: too far"], settings={"tolerance": 0.005})
    files = write_effects(tmp_path, effects(planted_rows(seeds=3), convergence=verdict), verdict)
    assert [path.name for path in files] == ["effects.csv", "effects.md"]
    with files[0].open(newline="") as file:
        records = list(csv.DictReader(file))
    first = records[0]
    assert (first["claim"], first["contrast"], first["layers"], first["test"], first["verdict"]) == (
        "co-adaptation dip",
        "BnB - base",
        "3-5",
        "shown",
        "not interpretable: not converged (shown)",
    )
    assert float(first["adj_ci_low"]) < float(first["ci_low"]) < float(first["estimate"]) < float(first["ci_high"])
    assert first["paper_estimate"] == "" and first["units"] == "3" and float(first["p_holm"]) >= float(first["p_value"])
    assert {record["convergence"] for record in records} == {"not converged"}
    text = files[1].read_text()
    assert "Convergence: **not converged** (NOT CONVERGED: BnB+ - base, n=7: too far" in text
    assert "| co-adaptation dip | BnB - base | 3-5 | - | -2.67 |" in text and "| 3 seeds |" in text


def test_the_table_says_where_another_networks_claims_lie():
    """A 9-stage network's effects.md names its ranges; the paper's 7 stages need no such line."""
    assert "dip at n = 3, 4, 5, 6, 7, specificity at n = 8, 9, the boosts from n = 1, 3, 7 up to 9" in stage_note(9)
    assert "transferable stages" not in markdown([], None)
    assert stage_note(9) in markdown([], None, stages=9)
