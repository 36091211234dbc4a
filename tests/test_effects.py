"""The effects table: planted effects recovered with covering intervals and the right verdicts; the paper's Table 1."""

from __future__ import annotations

import csv
import math
import random
import statistics
from pathlib import Path

import pytest

from experiments.report.effects import Effect, effects, estimate, plan, write_effects
from experiments.report.intervals import t_quantile
from experiments.report.paper import DATA_DIR, paper_rows
from tests.planted import BOOST, DIP, DISSIMILAR_EXTRA, RANDOM_FEATURES, TRANSFER, network, planted_rows


def planted_size(effect: Effect) -> float:
    """The size planted in tests/planted.py for ``effect`` (its layers averaged)."""
    per_n = {
        "BnB - base": lambda n: DIP[n],
        "AnB - BnB": lambda n: TRANSFER[n] - DIP[n],
        "AnB+ - base": lambda n: BOOST,
        "AnB+ - BnB+": lambda n: BOOST,
        "dissimilar - random split (AnB - base)": lambda n: DISSIMILAR_EXTRA,
        "random features - AnB (each - base)": lambda n: RANDOM_FEATURES - TRANSFER[n],
    }[effect.contrast]
    return statistics.fmean(per_n(n) for n in effect.layers)


def by_name(rows: list) -> dict[tuple[str, str], object]:
    return {(row.effect.contrast, row.effect.label): row for row in rows}


def test_planted_effects_are_recovered_with_covering_intervals_and_verdicts():
    """Exact zero-mean noise: every estimate is the planted size, paired over the 5 seeds; all three verdicts."""
    table = effects(planted_rows(seeds=5))
    assert len(table) == 28
    for row in table:
        size = planted_size(row.effect)
        assert row.interval.estimate == pytest.approx(size, abs=1e-12), row.effect
        assert row.interval.low <= size + 1e-12 and size - 1e-12 <= row.interval.high
        assert (row.interval.count, row.method) == (5, "paired, 5 seeds")
        assert row.paper is None  # not an ImageNet study
    rows = by_name(table)
    assert rows["BnB - base", "3-5"].verdict == "shown"
    assert rows["BnB - base", "3"].verdict == "not shown"  # planted 0
    assert rows["AnB - BnB", "7"].verdict == "shown"
    assert all(rows["AnB+ - base", span].verdict == "shown" for span in ("1-7", "3-7", "5-7"))
    assert rows["dissimilar - random split (AnB - base)", "1-7"].verdict == "reversed"  # planted against the paper
    assert rows["random features - AnB (each - base)", "1"].verdict == "shown"


def test_pairing_by_seed_by_hand():
    """Three seeds: BnB(3) - base per seed is -0.03, -0.02, -0.04; the interval is t(0.975, 2) * 0.01 / sqrt(3)."""
    rows = []
    for seed, (base, bnb) in enumerate([(0.80, 0.77), (0.81, 0.79), (0.79, 0.75)]):
        rows += [network("random0", None, "B", 0, None, seed, base),
                 network("random0", "B", "B", 3, "frozen", seed, bnb)]
    [row] = effects(rows)
    half = t_quantile(0.975, 2) * 0.01 / math.sqrt(3)
    assert (row.effect.contrast, row.effect.label, row.method) == ("BnB - base", "3", "paired, 3 seeds")
    assert (row.interval.estimate, row.interval.low, row.interval.high) == pytest.approx((-0.03, -0.03 - half,
                                                                                          -0.03 + half))
    assert row.verdict == "shown"


def test_one_seed_falls_back_to_welch_and_one_network_has_no_interval():
    """With one seed nothing pairs: Welch over networks; with one network a side, no interval at all."""
    one_seed = [row for row in planted_rows(seeds=5) if row["seed"] == 0]
    rows = by_name(effects(one_seed))
    pooled = rows["BnB - base", "3-5"]
    assert pooled.method == "unpaired (Welch), 3 vs 1 networks" and pooled.verdict == "no interval"
    assert not pooled.interval.defined
    two_splits = planted_rows(seeds=3) + [{**row, "split": "random1", "cell": row["cell"] + "r1"}
                                          for row in planted_rows(seeds=3) if row["split"] == "random0"]
    paired = by_name(effects(two_splits))["BnB - base", "3-5"]
    assert paired.method == "paired, 6 replicates (split, half, seed)"


def test_intervals_cover_planted_effects_95_percent_of_the_time():
    """200 noisy studies of 3 seeds (seed effects 5x the network noise): every row's interval covers ~95 %."""
    rng = random.Random(0)
    covered = total = 0
    for _ in range(200):
        for row in effects(planted_rows(seeds=3, noise=0.004, seed_effect=0.02, rng=rng)):
            size = planted_size(row.effect)
            covered += row.interval.low <= size <= row.interval.high
            total += 1
    assert 0.93 < covered / total < 0.97


def test_paper_rows_unpaired_reproduce_table1():
    """Pooled as the paper pooled, its own runs give Table 1 (AnB+ over the 8 bases and over BnB+)."""
    with (DATA_DIR / "table1_anbplus_boost.csv").open(newline="") as file:
        table1 = {row["layers"]: row for row in csv.DictReader(file)}
    rows = by_name(effects(list(paper_rows()), pairing="unpaired"))
    for layers, expected in table1.items():
        over_base, over_selffer = rows["AnB+ - base", layers], rows["AnB+ - BnB+", layers]
        assert over_base.interval.estimate == pytest.approx(float(expected["boost_over_baseB_mean8"]), abs=5e-5)
        assert over_selffer.interval.estimate == pytest.approx(float(expected["boost_over_BnBplus"]), abs=5e-5)
        assert over_base.method == f"unpaired (Welch), {expected['n_AnBplus_nets']} vs 8 networks"


def test_imagenet_study_gets_the_papers_value_beside_each_row():
    """A table with the natman split is an ImageNet study: each row carries the paper's pooled estimate."""
    paper = list(paper_rows())
    rows = by_name(effects(paper))  # the paper's runs as a study: auto pairing, paper column unpaired
    assert rows["BnB - base", "5"].paper == pytest.approx(0.593490 - 0.625101, abs=1e-6)
    assert rows["AnB - BnB", "7"].paper == pytest.approx(0.542486 - 0.623250, abs=1e-6)
    assert rows["dissimilar - random split (AnB - base)", "7"].paper == pytest.approx(-0.250123 + 0.082615, abs=2e-6)
    assert all(row.paper is not None for row in rows.values())
    planted = effects(planted_rows(seeds=3), paper=paper)  # or on request
    assert by_name(planted)["BnB - base", "5"].paper == pytest.approx(0.593490 - 0.625101, abs=1e-6)


def test_plan_follows_the_layers_present():
    """Only the n a study has: a pooled row over what exists, Table-1 ranges merged when they coincide."""
    rows = [row for row in planted_rows(seeds=3) if row["n"] in (0, 5, 7)]
    labels = {(effect.contrast, effect.label) for effect in plan(rows)}
    assert ("BnB - base", "5") in labels and ("BnB - base", "3-5") not in labels
    assert {label for contrast, label in labels if contrast == "AnB+ - base"} == {"5,7"}
    assert ("AnB - BnB", "6") not in labels
    assert estimate(Effect("specificity", "AnB - BnB", (6,), -1), rows) is None


def test_write_effects_files(tmp_path: Path):
    """effects.csv holds fractions and the verdict; effects.md the same rows in percentage points."""
    files = write_effects(tmp_path, effects(planted_rows(seeds=3)))
    assert [path.name for path in files] == ["effects.csv", "effects.md"]
    with files[0].open(newline="") as file:
        records = list(csv.DictReader(file))
    first = records[0]
    assert (first["claim"], first["contrast"], first["layers"], first["verdict"]) == (
        "co-adaptation dip", "BnB - base", "3-5", "shown")
    assert float(first["ci_low"]) < float(first["estimate"]) < float(first["ci_high"]) and first["paper_estimate"] == ""
    text = files[1].read_text()
    assert "| co-adaptation dip | BnB - base | 3-5 | - | -2.67 |" in text and "reversed" in text
