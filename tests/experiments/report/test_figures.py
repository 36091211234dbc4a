"""The figures and the curves behind them: the paper's aggregation reproduced, intervals drawn, files written."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer
from matplotlib.text import Text

from experiments.report import figures
from experiments.report.curves import (
    base_label,
    dissimilar_points,
    figure2_differences,
    figure2_points,
    mean_curve,
    random_features_points,
    relative_curves,
)
from experiments.report.intervals import mean_interval
from experiments.report.paper import DATA_DIR, paper_rows
from experiments.report.summary import SUMMARY_FIELDS, summary
from experiments.report.write import write_report
from tests.helpers.planted import planted_rows


@pytest.fixture(autouse=True)
def close_figures():
    """Every test's figures closed after it (pyplot keeps them open)."""
    yield
    plt.close("all")


def read_csv(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(newline="") as file:
        return list(csv.DictReader(file))


def row(
    family: str, n: int, value: float, split: str = "random0", target: str = "B", base: str | None = "A", seed: int = 0
) -> dict:
    mode = None if n == 0 else "finetune" if family.endswith("+") else "frozen"
    return {
        "split": split,
        "base_half": None if n == 0 else base,
        "target_half": target,
        "n": n,
        "mode": mode,
        "family": family,
        "seed": seed,
        "top1_best_k_mean": value,
        "cell": f"{family}{n}{split}{target}{seed}",
    }


def test_paper_rows_reproduce_the_papers_figure2_means():
    """Our Figure 2 aggregation of the paper's per-run numbers gives the paper's plotted means and counts."""
    curves = figure2_points(list(paper_rows()))
    names = {
        "base": "base",
        "selffer_frozen": "BnB",
        "transfer_frozen": "AnB",
        "selffer_finetuned": "BnB+",
        "transfer_finetuned": "AnB+",
    }
    for expected in read_csv("figure2_random_split_by_layer.csv"):
        points = curves[names[expected["condition"]]][int(expected["n"])]
        assert len(points) == int(expected["n_networks"])
        assert sum(points) / len(points) == pytest.approx(float(expected["mean_top1"]), abs=1e-6)


def test_paper_rows_reproduce_the_dissimilar_random_and_relative_panels():
    """The natman, random-features and relative-degradation panels match the paper's data to 1e-6."""
    paper = list(paper_rows())
    natman = {target: mean_curve(points) for target, points in dissimilar_points(paper).items()}
    for expected in read_csv("figure_natman_by_layer.csv"):
        target = "manmade" if expected["target_group"].startswith("man-made") else "natural"
        assert natman[target][int(expected["n"])] == pytest.approx(float(expected["top1"]), abs=1e-6)
    random = mean_curve(random_features_points(paper))
    for expected in read_csv("figure_random_features_by_layer.csv"):
        assert random[int(expected["n"])] == pytest.approx(float(expected["top1"]), abs=1e-6)
    relative = relative_curves(paper)
    columns = {
        "AnB, random splits": "mean_AnB_random_splits_minus_base",
        "AnB, dissimilar split": "mean_AnB_natman_minus_base",
        "random features": "random_features_minus_base",
    }
    for expected in read_csv("figure_relative_degradation.csv"):
        for name, column in columns.items():
            assert relative[name][int(expected["n"])] == pytest.approx(float(expected[column]), abs=2e-6)


def test_relative_curve_is_each_curve_minus_its_own_base():
    """A hand-made table: AnB minus the random-split base mean; the dissimilar curve averages both directions."""
    rows = [
        row("baseA", 0, 0.6, target="A"),
        row("baseB", 0, 0.8, target="B"),
        row("AnB", 1, 0.5),
        row("AnB", 1, 0.9, target="A", base="B"),
        row("base", 0, 0.5, split="natman", target="manmade"),
        row("base", 0, 0.7, split="natman", target="natural"),
        row("AnB", 1, 0.4, split="natman", target="manmade", base="natural"),
        row("AnB", 1, 0.4, split="natman", target="natural", base="manmade"),
        row("base", 0, 0.9, split="whole", target="all"),
        row("random", 1, 0.3, split="whole", target="all", base=None),
    ]
    relative = relative_curves(rows)
    assert relative["AnB, random splits"] == pytest.approx({0: 0.0, 1: 0.0})
    assert relative["AnB, dissimilar split"] == pytest.approx({0: 0.0, 1: -0.2})
    assert relative["random features"] == pytest.approx({0: 0.0, 1: -0.6})
    stats = {(r["panel"], r["curve"], r["n"]): r for r in summary(rows)}
    assert stats["figure2", "base", 0]["count"] == 2 and stats["figure2", "base", 0]["mean"] == pytest.approx(0.7)
    assert stats["figure2", "base", 0]["std"] == pytest.approx(0.141421, abs=1e-6)


def test_figure2_has_one_base_point_for_every_family():
    """Transfers towards B only: the one n=0 point is base B (not the mean of bases A and B); families start at n=1."""
    rows = [
        row("baseA", 0, 0.9, target="A"),
        row("baseB", 0, 0.7, target="B"),
        row("baseB", 0, 0.6, target="B", seed=1),
        row("AnB", 7, 0.5),
        row("BnB", 7, 0.65, base="B", seed=1),
    ]
    curves = figure2_points(rows)
    assert curves["base"][0] == [0.7, 0.6] and base_label(rows) == "base B"
    assert curves["AnB"] == {7: [0.5]} and curves["BnB"] == {7: [0.65]}
    assert curves["AnB+"] == {}
    differences = figure2_differences(rows)
    assert set(differences) == {"AnB", "BnB"}
    assert differences["AnB"][7] == pytest.approx([-0.2]) and differences["BnB"][7] == pytest.approx([0.05])
    assert relative_curves(rows)["AnB, random splits"] == pytest.approx({0: 0.0, 7: -0.2})


def test_draw_writes_png_and_svg_and_the_bottom_panel_plots_paired_differences(tmp_path: Path):
    """Both figures are written in both formats; Figure 2's bottom point is the mean of network minus its own base."""
    rows = [
        row("baseB", 0, 0.70, target="B"),
        row("baseB", 0, 0.80, target="B", seed=1),
        row("BnB", 3, 0.60, base="B"),
        row("BnB", 3, 0.64, base="B", seed=1),
    ]
    files = figures.draw(rows, tmp_path / "figs", note="convergence check: converged")
    assert sorted(p.name for p in files) == ["figure2.png", "figure2.svg", "figure3.png", "figure3.svg"]
    assert all(p.stat().st_size > 1000 for p in files)
    figure = figures.figure2(rows)
    bottom = figure.axes[1]
    line = next(container for container in bottom.containers if container.get_label() == "BnB").lines[0]
    assert list(line.get_xdata()) == pytest.approx([3 + figures.OFFSETS["BnB"]])
    assert list(line.get_ydata()) == pytest.approx([-0.13])  # (0.60 - 0.70 + 0.64 - 0.80) / 2, not 0.62 - 0.75
    assert any(
        line.get_label() == figures.ZERO_LABEL and list(line.get_ydata()) == [0, 0] for line in bottom.get_lines()
    )
    assert "minus the base of its replicate" in bottom.get_ylabel()


def test_paper_overlay_only_when_asked(tmp_path: Path):
    """With the paper's rows the panels carry a dashed 'paper' line; without them none."""
    rows = [row("baseB", 0, 0.7, target="B"), row("AnB", 1, 0.6)]
    with_paper = figures.figure2(rows, paper_rows())
    top, bottom = with_paper.axes
    assert all(figures.PAPER_LABEL in [line.get_label() for line in axes.get_lines()] for axes in (top, bottom))
    absolute = [line for line in top.get_lines() if line.get_linestyle() == "--"]
    assert any(list(line.get_ydata())[-1] == pytest.approx(0.542486, abs=1e-6) for line in absolute)  # AnB, n=7
    paired = [line for line in bottom.get_lines() if line.get_linestyle() == "--"]
    anb = relative_curves(list(paper_rows()))["AnB, random splits"][7]  # the paper's AnB(7) - its own base
    assert any(list(line.get_ydata())[-1] == pytest.approx(anb, abs=1e-9) for line in paired)
    without = figures.figure2(rows)
    assert figures.PAPER_LABEL not in [line.get_label() for axes in without.axes for line in axes.get_lines()]
    combined = figures.figure3(rows, paper_rows())
    assert all(figures.PAPER_LABEL in [line.get_label() for line in axes.get_lines()] for axes in combined.axes)


def bars(axes, label: str) -> dict[int, tuple[float, float]]:
    """The error bars of the curve ``label`` on ``axes``: n (x less its offset) -> (bottom, top); points without a
    bar left out."""
    container = next(c for c in axes.containers if isinstance(c, ErrorbarContainer) and c.get_label() == label)
    segments = container.lines[2][0].get_segments()
    return {round(float(s[0][0])): (float(s[0][1]), float(s[1][1])) for s in segments if len(s)}


def test_every_curve_has_its_95_percent_interval_as_bars():
    """Figure 2's bottom and every panel of Figure 3 draw a t-interval bar at each point of every curve."""
    rows = planted_rows(seeds=3)
    bottom = figures.figure2(rows).axes[1]
    bnb = figure2_differences(rows)["BnB"]
    for family in ("BnB", "AnB", "BnB+", "AnB+"):
        assert sorted(bars(bottom, family)) == list(range(1, 8))
    interval = mean_interval(bnb[5])
    assert bars(bottom, "BnB")[5] == pytest.approx((interval.low, interval.high))
    dissimilar, random, relative = figures.figure3(rows).axes
    assert sorted(bars(dissimilar, "to clothing")) == sorted(bars(dissimilar, "to footwear_bags")) == list(range(8))
    assert sorted(bars(random, "random, frozen")) == list(range(8))
    for curve in ("AnB, random splits", "AnB, dissimilar split", "random features"):
        assert sorted(bars(relative, curve)) == list(range(8))
    stats = {(r["panel"], r["curve"], r["n"]): r for r in summary(rows)}
    assert (
        stats["figure2_minus_base", "BnB", 5]["ci_low"],
        stats["figure2_minus_base", "BnB", 5]["ci_high"],
    ) == pytest.approx((interval.low, interval.high), abs=1e-6)
    assert stats["relative", "random features", 3]["mean"] == pytest.approx(-0.3)


def texts(figure) -> list[str]:
    """Every text drawn on ``figure``: titles, labels, tick labels, legends, annotations and the caption."""
    return [text.get_text() for text in figure.findobj(Text) if text.get_text()]


def test_one_seed_points_are_hollow_without_a_bar_and_say_one_seed():
    """With one seed there is no interval: no bars, hollow markers, a legend entry 'one seed', empty CI cells; no
    count reads as a layer ('n=1')."""
    rows = planted_rows(seeds=1)
    figure = figures.figure2(rows)
    bottom = figure.axes[1]
    assert bars(bottom, "BnB") == {}
    assert figures.SINGLE_LABEL == "one seed: no interval"
    assert figures.SINGLE_LABEL in bottom.get_legend_handles_labels()[1]
    hollow = [
        c
        for c in bottom.collections
        if isinstance(c, PathCollection) and len(c.get_offsets()) and (c.get_facecolors() == 1).all()
    ]
    assert [len(c.get_offsets()) for c in hollow] == [7] * 4  # every point of every family, white inside
    for drawn in (figure, figures.figure3(rows), figures.figure2(planted_rows(seeds=3))):
        assert not [text for text in texts(drawn) if "n=1" in text.replace(" ", "")]
    assert any("1 seed per point" in text for text in texts(figure))
    assert any("3 seeds per point" in text for text in texts(figures.figure2(planted_rows(seeds=3))))
    row = next(r for r in summary(rows) if r["panel"] == "figure2_minus_base" and r["curve"] == "BnB" and r["n"] == 5)
    assert (row["count"], row["ci_low"], row["ci_high"]) == (1, None, None)


def test_paper_overlay_starts_every_family_at_the_mean_of_its_8_bases():
    """On the top panel the paper's n=0 is one point, 0.6251, for BnB, AnB, BnB+ and AnB+ alike."""
    figure = figures.figure2(planted_rows(seeds=3), paper_rows())
    dashed = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == "--" and len(line.get_xdata())]
    assert len(dashed) == 4
    assert all(line.get_xdata()[0] == 0 and line.get_ydata()[0] == pytest.approx(0.625101, abs=1e-6) for line in dashed)


def test_figure2_base_points_are_the_target_halfs_bases():
    """Planted study towards B: the top panel's base points are base B's three seeds, labelled so."""
    rows = planted_rows(seeds=3)
    top = figures.figure2(rows).axes[0]
    labels = top.get_legend_handles_labels()[1]
    assert "base B" in labels and not any(label.startswith("baseA") for label in labels)
    base = next(c for c in top.collections if c.get_label() == "base B")
    expected = [r["top1_best_k_mean"] for r in rows if r["family"] == "baseB"]
    assert sorted(base.get_offsets()[:, 1]) == pytest.approx(sorted(expected))


def test_the_convergence_status_is_the_caption_of_every_figure(tmp_path: Path):
    """The note is drawn on every figure, red where it is not a pass, dark grey where it is; None: no caption."""
    rows = planted_rows(seeds=3)
    cka = {n: [0.9, 0.8] for n in range(1, 8)}
    failed = "NOT CONVERGED: BnB+ at n=7 minus base outside +-1.5 points (dip and boost not interpretable)"
    passed = "convergence check: passed (BnB+ - base inside +-1.5 points at every n)"
    reduced = [
        row("reduced", 0, 0.4 + 0.1 * index, split="whole", target="all") | {"images_per_class": images}
        for index, images in enumerate((10, 100))
    ]
    for note, color in (
        (failed, figures.ALARM_COLOR),
        ("Convergence check FAILED: x", figures.ALARM_COLOR),
        (passed, figures.STATUS_COLOR),
    ):
        for figure in (
            figures.figure2(rows, note=note, cka=cka),
            figures.figure3(rows, note=note),
            figures.reduced_data(reduced, note=note),
        ):
            caption = [text for text in figure.findobj(Text) if " ".join(text.get_text().split()) == note]
            assert len(caption) == 1 and to_hex(caption[0].get_color()) == color
    assert figures.ALARM_COLOR != figures.STATUS_COLOR
    assert not [text for text in texts(figures.figure2(rows)) if "converge" in text.lower()]
    assert figures.figure2(rows)._suptitle is None


def test_write_report_writes_the_whole_report(tmp_path: Path):
    """One call: figures, summary with intervals, effects, and convergence (failed here, so noted)."""
    rows = planted_rows(seeds=3)
    rows[0]["val_top1_history"] = [0.1, 0.5, 0.9]
    files = write_report(rows, tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in files) == sorted(
        [
            "figures/figure2.png",
            "figures/figure2.svg",
            "figures/figure3.png",
            "figures/figure3.svg",
            "summary.csv",
            "effects.csv",
            "effects.md",
            "convergence.json",
            "convergence.txt",
        ]
    )
    assert all(p.stat().st_size > 100 for p in files)
    with (tmp_path / "summary.csv").open(newline="") as file:
        assert tuple(next(csv.reader(file))) == SUMMARY_FIELDS
    assert json.loads((tmp_path / "convergence.json").read_text())["status"] == "not converged"


def paired_table() -> list[dict]:
    """Bases B of seeds 0-2 and A of seed 0; BnB at n=1 (seeds 0, 1) and n=3 (seeds 0-2); AnB towards A (seed 0)
    and towards B with seed 3, whose base B was never trained; a transfer on another split."""
    return [
        row("baseB", 0, 0.80, target="B"),
        row("baseB", 0, 0.70, target="B", seed=1),
        row("baseB", 0, 0.90, target="B", seed=2),
        row("baseA", 0, 0.85, target="A"),
        row("BnB", 1, 0.78, base="B"),
        row("BnB", 1, 0.71, base="B", seed=1),
        row("BnB", 3, 0.75, base="B"),
        row("BnB", 3, 0.66, base="B", seed=1),
        row("BnB", 3, 0.86, base="B", seed=2),
        row("AnB", 3, 0.60, target="A", base="B"),
        row("AnB", 3, 0.50, seed=3),
        row("base", 0, 0.5, split="dissimilar", target="clothing"),
        row("AnB", 3, 0.4, split="dissimilar", target="clothing", base="footwear_bags"),
    ]


def test_bottom_panel_points_are_each_network_minus_the_base_of_its_replicate():
    """By hand: BnB(n, seed s) - base B(seed s); AnB towards A against base A; seed 3 (no base) left out."""
    differences = figure2_differences(paired_table())
    assert set(differences) == {"BnB", "AnB"}
    assert sorted(differences["BnB"]) == [1, 3]
    assert sorted(differences["BnB"][1]) == pytest.approx(sorted([0.78 - 0.80, 0.71 - 0.70]))
    assert sorted(differences["BnB"][3]) == pytest.approx(sorted([0.75 - 0.80, 0.66 - 0.70, 0.86 - 0.90]))
    assert list(differences["AnB"]) == [3]  # seed 3 has no base: its 0.50 is paired with nothing
    assert differences["AnB"][3] == pytest.approx([0.60 - 0.85])
    bottom = figures.figure2(paired_table()).axes[1]
    drawn = next(c for c in bottom.containers if c.get_label() == "BnB").lines[0]
    assert [y for y in drawn.get_ydata() if not math.isnan(y)] == pytest.approx([-0.005, -0.0433333333])
    counts = [text.get_text() for text in bottom.texts]  # the counts differ between points: each says its own
    assert counts.count("2 seeds") == 1 and counts.count("3 seeds") == 1 and counts.count("1 seed") == 1
    assert "1-3 seeds per point" in bottom.get_title()


def test_summary_has_every_bottom_panel_point_with_its_interval_and_count():
    """Panel figure2_minus_base: the mean over replicates, its t-interval (df = 1 here) and the replicate count."""
    stats = {(r["panel"], r["curve"], r["n"]): r for r in summary(paired_table())}
    point = stats["figure2_minus_base", "BnB", 1]
    half = 12.706204736 * math.sqrt(2 * 0.015**2) / math.sqrt(2)  # t(0.975, 1) * std / sqrt(2)
    assert point["count"] == 2 and point["mean"] == pytest.approx(-0.005, abs=1e-6)
    assert (point["ci_low"], point["ci_high"]) == pytest.approx((-0.005 - half, -0.005 + half), abs=1e-6)
    anb = stats["figure2_minus_base", "AnB", 3]
    assert anb["count"] == 1 and anb["ci_low"] is None
    assert ("figure2_minus_base", "BnB", 0) not in stats and ("figure2", "BnB", 0) not in stats  # n=0: the base only
    rows = planted_rows(seeds=3)
    bottom = figures.figure2(rows).axes[1]
    for family in figures.FIGURE2_FAMILIES:
        line = next(c for c in bottom.containers if c.get_label() == family).lines[0]
        drawn = {round(x): y for x, y in zip(line.get_xdata(), line.get_ydata()) if not math.isnan(x)}
        listed = {
            r["n"]: r["mean"] for r in summary(rows) if r["panel"] == "figure2_minus_base" and r["curve"] == family
        }
        assert drawn == pytest.approx(listed, abs=1e-6)


def solid_spans(axes) -> list[tuple[float, float]]:
    """Every (x, next x) that a drawn solid line joins (a NaN breaks a line, as matplotlib draws it)."""
    spans = []
    for line in axes.get_lines():
        if line.get_linestyle() == "-" and line.get_transform() == axes.transData:
            xs = [float(x) for x in line.get_xdata()]
            spans += [(a, b) for a, b in itertools.pairwise(xs) if not (math.isnan(a) or math.isnan(b))]
    return spans


def test_no_solid_line_crosses_a_layer_that_was_not_run():
    """n = 0, 1, 3, 5, 7 run: solid lines join only adjacent n, a dotted one crosses 2, 4, 6, whose ticks are grey."""
    rows = [r for r in planted_rows(seeds=3) if r["n"] in (0, 1, 3, 5, 7)]
    cka = {n: [0.9, 0.8, 0.85] for n in (1, 2, 3, 5)}
    figure = figures.figure2(rows, paper_rows(), cka=cka, cka_chance={n: [0.01, -0.01, 0.0] for n in cka})
    panels = figure.axes + figures.figure3(rows).axes
    for axes in panels:
        assert all(b - a <= 1 + 1e-9 for a, b in solid_spans(axes)), axes.get_title()
        dotted = [line for line in axes.get_lines() if line.get_linestyle() == ":"]
        assert any(max(line.get_xdata()) - min(line.get_xdata()) == pytest.approx(2) for line in dotted)
    for axes in figure.axes[:2] + figures.figure3(rows).axes:
        assert "n = 2, 4, 6 not run" in axes.get_xlabel()
        grey = {
            label.get_text() for label in axes.get_xticklabels() if to_hex(label.get_color()) == figures.NOT_RUN_COLOR
        }
        assert grey == {"2", "4", "6"}
    assert "n = 4 not run" in figure.axes[2].get_xlabel()
    assert (0.0, 1.0) in solid_spans(figure.axes[0]) and (1.0, 2.0) in solid_spans(figure.axes[2])  # adjacent: solid


def test_top_panel_draws_the_base_once_at_n0():
    """One n=0 for all families: base B's three seeds, one marker set; no family draws a point at n=0."""
    rows = planted_rows(seeds=3)
    top = figures.figure2(rows).axes[0]
    at_zero = [c for c in top.collections if any(abs(x) < 0.5 for x in c.get_offsets()[:, 0])]  # offsets too
    assert [c.get_label() for c in at_zero] == ["base B"] and len(at_zero[0].get_offsets()) == 3
    marked = [
        line
        for line in top.get_lines()
        if line.get_marker() not in (None, "None", "none", "") and any(abs(x) < 0.5 for x in line.get_xdata())
    ]
    assert marked == []
    base = mean_interval([r["top1_best_k_mean"] for r in rows if r["family"] == "baseB"]).estimate
    starts = [line.get_ydata()[0] for line in top.get_lines() if line.get_xdata()[0] == 0]
    assert len(starts) == 4 and starts == pytest.approx([base] * 4)  # every family's mean line starts at the base


def test_cka_panel_draws_the_chance_baseline():
    """The CKA panel: y label debiased linear CKA, a grey dashed 'chance (permuted examples)' line at its means."""
    rows = planted_rows(seeds=3)
    cka = {n: [0.9 - 0.05 * n, 0.92 - 0.05 * n] for n in range(1, 8)}
    chance = {n: [0.01, -0.03] for n in range(1, 8)}
    similarity = figures.figure2(rows, cka=cka, cka_chance=chance).axes[2]
    assert similarity.get_ylabel() == "debiased linear CKA(A, B)"
    line = next(line for line in similarity.get_lines() if line.get_label() == figures.CHANCE_LABEL)
    assert line.get_linestyle() == "--" and to_hex(line.get_color()) == figures.CHANCE_COLOR
    assert list(line.get_xdata()) == list(range(1, 8)) and list(line.get_ydata()) == pytest.approx([-0.01] * 7)
    assert similarity.collections and similarity.get_ylim()[0] < -0.03  # the band, and room for it below 0
    without = figures.figure2(rows, cka=cka).axes[2]
    assert figures.CHANCE_LABEL not in without.get_legend_handles_labels()[1]
