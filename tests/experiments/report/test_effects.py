"""The effects table: planted effects recovered with covering intervals and the right verdicts; the paper's Table 1."""

from __future__ import annotations

import csv
import math
import random
import statistics

import pytest

from experiments.report.claims import Effect
from experiments.report.convergence import Convergence
from experiments.report.effects import effects, pooled_difference
from experiments.report.intervals import holm, t_cdf, t_quantile
from experiments.report.paper import DATA_DIR, paper_rows
from tests.helpers import REPO
from tests.helpers.planted import BOOST, DIP, DISSIMILAR_EXTRA, RANDOM_FEATURES, TRANSFER, network, planted_rows


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
    """Exact zero-mean noise: every estimate is the planted size, paired over the 5 seeds; Holm's verdicts."""
    table = effects(planted_rows(seeds=5))
    assert len(table) == 28
    for row in table:
        size = planted_size(row.effect)
        assert row.interval.estimate == pytest.approx(size, abs=1e-12), row.effect
        assert row.interval.low <= size + 1e-12 and size - 1e-12 <= row.interval.high
        assert (row.interval.count, row.method) == (5, "paired t over 5 seeds; Holm over 28 row(s)")
        assert row.adjusted.low <= row.interval.low and row.interval.high <= row.adjusted.high  # wider
        assert row.paper is None  # not an ImageNet study
        assert row.verdict == row.test  # no convergence check given: nothing to read against
    rows = by_name(table)
    assert rows["BnB - base", "3-5"].test == "shown"
    assert rows["BnB - base", "3"].test == "not shown"  # planted 0
    assert rows["AnB - BnB", "7"].test == "shown"
    assert all(rows["AnB+ - base", span].test == "shown" for span in ("1-7", "3-7", "5-7"))
    assert rows["dissimilar - random split (AnB - base)", "1-7"].test == "reversed"  # planted against the paper
    assert rows["random features - AnB (each - base)", "1"].test == "shown"


def test_pairing_by_seed_by_hand():
    """Three seeds: BnB(3) - base per seed is -0.03, -0.02, -0.04; the interval is t(0.975, 2) * 0.01 / sqrt(3)."""
    rows = []
    for seed, (base, bnb) in enumerate([(0.80, 0.77), (0.81, 0.79), (0.79, 0.75)]):
        rows += [
            network("random0", None, "B", 0, None, seed, base),
            network("random0", "B", "B", 3, "frozen", seed, bnb),
        ]
    [row] = effects(rows)
    half = t_quantile(0.975, 2) * 0.01 / math.sqrt(3)
    assert (row.effect.contrast, row.effect.label) == ("BnB - base", "3")
    assert row.method == "paired t over 3 seeds; Holm over 1 row(s)"
    assert (row.interval.estimate, row.interval.low, row.interval.high) == pytest.approx(
        (-0.03, -0.03 - half, -0.03 + half)
    )
    t = 0.03 / (0.01 / math.sqrt(3))
    assert row.p == pytest.approx(2 * (1 - t_cdf(t, 2))) and row.p_holm == row.p  # one row: Holm is the test
    assert row.adjusted == row.interval and row.test == row.verdict == "shown"


def test_holm_adjusts_over_the_rows_of_one_report():
    """Two rows with raw p 0.035 and 0.047: Holm multiplies the smaller by 2 (0.07): neither is shown, though
    each alone would be; the adjusted interval of the first is its 97.5 % interval."""
    assert [step.adjusted_p for step in holm([0.035, 0.047])] == pytest.approx([0.07, 0.07])
    assert [step.level for step in holm([0.035, 0.047])] == pytest.approx([0.975, 0.95])
    assert [step.adjusted_p for step in holm([0.01, 0.04, 0.03, 0.005])] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rows = []
    for seed, (base, bnb3, bnb5) in enumerate([(0.80, 0.77, 0.78), (0.81, 0.79, 0.80), (0.79, 0.75, 0.76)]):
        rows += [
            network("random0", None, "B", 0, None, seed, base),
            network("random0", "B", "B", 3, "frozen", seed, bnb3),
            network("random0", "B", "B", 5, "frozen", seed, bnb5),
        ]
    table = effects(rows)
    assert len(table) == 3 and all(row.method.endswith("Holm over 3 row(s)") for row in table)
    ordered = sorted(table, key=lambda row: row.p)
    assert ordered[0].p_holm == pytest.approx(3 * ordered[0].p)
    assert ordered[0].adjusted_level == pytest.approx(1 - 0.05 / 3)
    half = t_quantile(1 - 0.05 / 6, 2) * ordered[0].interval.std / math.sqrt(3)
    assert ordered[0].adjusted.high - ordered[0].adjusted.estimate == pytest.approx(half)


def test_one_seed_has_no_interval_and_unpaired_networks_are_counted():
    """With one seed a row has no interval (and is left out of Holm's family); a network without its base is
    counted in the method, not silently dropped."""
    one_seed = [row for row in planted_rows(seeds=5) if row["seed"] == 0]
    rows = by_name(effects(one_seed))
    pooled = rows["BnB - base", "3-5"]
    assert pooled.method == "paired t over 1 seed" and pooled.test == "no interval (1 seed)"
    assert not pooled.interval.defined and pooled.p is None and pooled.adjusted is None
    two_splits = planted_rows(seeds=3) + [
        {**row, "split": "random1", "cell": row["cell"] + "r1"}
        for row in planted_rows(seeds=3)
        if row["split"] == "random0"
    ]
    paired = by_name(effects(two_splits))["BnB - base", "3-5"]
    assert paired.method.startswith("paired t over 6 replicates (split, half, seed);")
    orphaned = [row for row in planted_rows(seeds=3) if row["cell"] != "random0_base-B_s2"]
    dip = by_name(effects(orphaned))["BnB - base", "3-5"]
    assert dip.interval.count == 2 and "3 network(s) without a partner not used" in dip.method


def test_verdicts_are_read_against_the_convergence_check():
    """Not converged: the dip and the boost read 'not interpretable', specificity does not; converged: a shown
    effect under twice tau is within the tolerance."""
    rows = planted_rows(seeds=5, noise=0.001)
    failed = by_name(effects(rows, convergence=Convergence("not converged", ["x"], settings={"tolerance": 0.005})))
    assert failed["BnB - base", "3-5"].verdict == "not interpretable: not converged (shown)"
    assert failed["AnB+ - base", "1-7"].verdict == "not interpretable: not converged (shown)"
    assert failed["AnB - BnB", "7"].verdict == "shown"
    unchecked = by_name(effects(rows, convergence=Convergence("unchecked", unchecked=["y"])))
    assert unchecked["AnB+ - BnB+", "1-7"].verdict == "not interpretable: convergence unchecked (shown)"
    passed = by_name(effects(rows, convergence=Convergence("converged", settings={"tolerance": 0.015})))
    assert passed["AnB+ - base", "1-7"].verdict == "shown, within the convergence tolerance"  # 2 < 2 x 1.5 points
    assert passed["AnB - BnB", "7"].verdict == "shown"  # -10 points


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


def test_paper_pooling_reproduces_table1():
    """Pooled as the paper pooled, its own runs give Table 1 (AnB+ over the 8 bases and over BnB+)."""
    with (DATA_DIR / "table1_anbplus_boost.csv").open(newline="") as file:
        table1 = {row["layers"]: row for row in csv.DictReader(file)}
    paper = list(paper_rows())
    for layers, expected in table1.items():
        first, last = (int(n) for n in layers.split("-"))
        span = tuple(range(first, last + 1))
        over_base = pooled_difference(Effect("lasting boost", "AnB+ - base", span, 1), paper)
        over_selffer = pooled_difference(Effect("lasting boost", "AnB+ - BnB+", span, 1), paper)
        assert over_base == pytest.approx(float(expected["boost_over_baseB_mean8"]), abs=5e-5)
        assert over_selffer == pytest.approx(float(expected["boost_over_BnBplus"]), abs=5e-5)


def test_the_papers_value_is_beside_each_row_where_asked_for():
    """Given the paper's rows (a study with paper_overlay), each row carries the paper's pooled estimate; not given
    (a ResNet-50 on ImageNet: the paper's numbers are CaffeNet's), no row does."""
    paper = list(paper_rows())
    assert all(row.paper is None for row in effects(paper))
    rows = by_name(effects(paper, paper=paper))  # the paper's runs as a study: auto pairing, paper column unpaired
    assert rows["BnB - base", "5"].paper == pytest.approx(0.593490 - 0.625101, abs=1e-6)
    assert rows["AnB - BnB", "7"].paper == pytest.approx(0.542486 - 0.623250, abs=1e-6)
    assert rows["dissimilar - random split (AnB - base)", "7"].paper == pytest.approx(-0.250123 + 0.082615, abs=2e-6)
    assert all(row.paper is not None for row in rows.values())
    planted = effects(planted_rows(seeds=3), paper=paper)  # or on request
    assert by_name(planted)["BnB - base", "5"].paper == pytest.approx(0.593490 - 0.625101, abs=1e-6)


def test_the_imagenet_preset_pairs_every_network_with_replicates_for_every_claim():
    """Every network of the ImageNet preset's grid (a table of its cells with made-up accuracies) has its partner in
    every Figure-2 claim, and every claim rests on at least 2 replicates (AnB+ - BnB+: 4, df = 3)."""
    from datamodules.splits import IMAGENET_SPLITS
    from experiments.study.config import build_parser
    from experiments.study.grid import expand

    parser = build_parser()
    study = REPO / "experiments" / "configs" / "studies" / "imagenet_paper.yaml"
    cells = expand(parser.instantiate(parser.parse_args(["--config", str(study)])).grid, IMAGENET_SPLITS.halves)
    rng = random.Random(0)
    rows = [
        network(cell.split, cell.base, cell.target, cell.n, cell.mode, cell.seed, 0.6 + rng.uniform(-0.02, 0.02))
        for cell in cells
        if cell.images_per_class is None
    ]
    table = by_name(effects(rows))
    figure2 = [row for (contrast, _), row in table.items() if not contrast.startswith(("dissimilar", "random"))]
    assert figure2 and not any("without a partner" in row.method for row in figure2)
    assert all(row.interval.count >= 2 for row in figure2)
    assert table["AnB+ - BnB+", "1-7"].interval.count == 4
    assert table["AnB - BnB", "7"].interval.count == 8
