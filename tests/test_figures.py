"""The figures and the curves behind them: the paper's aggregation reproduced, intervals drawn, files written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import ErrorbarContainer

from experiments.report import figures
from experiments.report.paper import DATA_DIR, paper_rows
from experiments.report.curves import (
    base_label,
    dissimilar_points,
    figure2_points,
    mean_curve,
    random_features_points,
    relative_curves,
)
from experiments.report.intervals import mean_interval
from experiments.report.table import SUMMARY_FIELDS, summary
from experiments.report.write import write_report
from tests.planted import planted_rows


def read_csv(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(newline="") as file:
        return list(csv.DictReader(file))


def row(family: str, n: int, value: float, split: str = "random0", target: str = "B", base: str | None = "A",
        seed: int = 0) -> dict:
    mode = None if n == 0 else "finetune" if family.endswith("+") else "frozen"
    return {"split": split, "base_half": None if n == 0 else base, "target_half": target, "n": n, "mode": mode,
            "family": family, "seed": seed, "top1_best_k_mean": value, "cell": f"{family}{n}{split}{target}{seed}"}


def test_paper_rows_reproduce_the_papers_figure2_means():
    """Our Figure 2 aggregation of the paper's per-run numbers gives the paper's plotted means and counts."""
    curves = figure2_points(list(paper_rows()))
    names = {"base": "base", "selffer_frozen": "BnB", "transfer_frozen": "AnB", "selffer_finetuned": "BnB+",
             "transfer_finetuned": "AnB+"}
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
    columns = {"AnB, random splits": "mean_AnB_random_splits_minus_base",
               "AnB, dissimilar split": "mean_AnB_natman_minus_base", "random features": "random_features_minus_base"}
    for expected in read_csv("figure_relative_degradation.csv"):
        for name, column in columns.items():
            assert relative[name][int(expected["n"])] == pytest.approx(float(expected[column]), abs=2e-6)


def test_relative_curve_is_each_curve_minus_its_own_base():
    """A hand-made table: AnB minus the random-split base mean; the dissimilar curve averages both directions."""
    rows = [row("baseA", 0, 0.6, target="A"), row("baseB", 0, 0.8, target="B"),
            row("AnB", 1, 0.5), row("AnB", 1, 0.9, target="A", base="B"),
            row("base", 0, 0.5, split="natman", target="manmade"),
            row("base", 0, 0.7, split="natman", target="natural"),
            row("AnB", 1, 0.4, split="natman", target="manmade", base="natural"),
            row("AnB", 1, 0.4, split="natman", target="natural", base="manmade"),
            row("base", 0, 0.9, split="whole", target="all"),
            row("random", 1, 0.3, split="whole", target="all", base=None)]
    relative = relative_curves(rows)
    assert relative["AnB, random splits"] == pytest.approx({0: 0.0, 1: 0.0})
    assert relative["AnB, dissimilar split"] == pytest.approx({0: 0.0, 1: -0.2})
    assert relative["random features"] == pytest.approx({0: 0.0, 1: -0.6})
    stats = {(r["panel"], r["curve"], r["n"]): r for r in summary(rows)}
    assert stats["figure2", "base", 0]["count"] == 2 and stats["figure2", "base", 0]["mean"] == pytest.approx(0.7)
    assert stats["figure2", "base", 0]["std"] == pytest.approx(0.141421, abs=1e-6)


def test_each_figure2_curve_starts_at_the_bases_of_its_own_targets():
    """Transfers towards B only are compared with base B, not with the mean of bases A and B; base A is not drawn."""
    rows = [row("baseA", 0, 0.9, target="A"), row("baseB", 0, 0.7, target="B"),
            row("baseB", 0, 0.6, target="B", seed=1), row("AnB", 7, 0.5), row("BnB", 7, 0.65, base="B", seed=1)]
    curves = figure2_points(rows)
    assert curves["base"][0] == [0.7, 0.6] and base_label(rows) == "base B"
    assert curves["AnB"] == {0: [0.7], 7: [0.5]} and curves["BnB"] == {0: [0.6], 7: [0.65]}
    assert curves["AnB+"] == {}
    assert relative_curves(rows)["AnB, random splits"] == pytest.approx({0: 0.0, 7: -0.2})


def test_draw_writes_png_and_svg_and_the_bottom_panel_plots_means(tmp_path: Path):
    """Both figures are written in both formats; Figure 2's bottom lines are the means, starting at the base mean."""
    rows = [row("baseB", 0, 0.70, target="B"), row("baseB", 0, 0.80, target="B", seed=1),
            row("BnB", 3, 0.60, base="B"), row("BnB", 3, 0.64, base="B", seed=1)]
    files = figures.draw(rows, tmp_path / "figs")
    assert sorted(p.name for p in files) == ["figure2.png", "figure2.svg", "figure3.png", "figure3.svg"]
    assert all(p.stat().st_size > 1000 for p in files)
    figure = figures.figure2(rows)
    bottom = figure.axes[1]
    line = next(container for container in bottom.containers if container.get_label() == "BnB").lines[0]
    assert list(line.get_xdata()) == [0, 3]
    assert list(line.get_ydata()) == pytest.approx([0.75, 0.62])


def test_paper_overlay_only_when_asked(tmp_path: Path):
    """With the paper's rows the panels carry a dashed 'paper' line; without them none."""
    rows = [row("baseB", 0, 0.7, target="B"), row("AnB", 1, 0.6)]
    with_paper = figures.figure2(rows, paper_rows())
    labels = [line.get_label() for line in with_paper.axes[1].get_lines()]
    assert figures.PAPER_LABEL in labels
    paper_lines = [line for line in with_paper.axes[1].get_lines() if line.get_linestyle() == "--"]
    assert any(list(line.get_ydata())[-1] == pytest.approx(0.542486, abs=1e-6) for line in paper_lines)  # AnB, n=7
    without = figures.figure2(rows)
    assert figures.PAPER_LABEL not in [line.get_label() for line in without.axes[1].get_lines()]
    combined = figures.figure3(rows, paper_rows())
    assert all(figures.PAPER_LABEL in [line.get_label() for line in axes.get_lines()] for axes in combined.axes)


def bars(axes, label: str) -> dict[float, tuple[float, float]]:
    """The error bars of the curve ``label`` on ``axes``: x -> (bottom, top); points without a bar left out."""
    container = next(c for c in axes.containers if isinstance(c, ErrorbarContainer) and c.get_label() == label)
    segments = container.lines[2][0].get_segments()
    return {float(s[0][0]): (float(s[0][1]), float(s[1][1])) for s in segments if len(s)}


def test_every_curve_has_its_95_percent_interval_as_bars():
    """Figure 2's bottom and every panel of Figure 3 draw a t-interval bar at each point of every curve."""
    rows = planted_rows(seeds=3)
    bottom = figures.figure2(rows).axes[1]
    bnb = figure2_points(rows)["BnB"]
    for family in ("BnB", "AnB", "BnB+", "AnB+"):
        assert sorted(bars(bottom, family)) == list(range(8))
    interval = mean_interval(bnb[5])
    assert bars(bottom, "BnB")[5] == pytest.approx((interval.low, interval.high))
    dissimilar, random, relative = figures.figure3(rows).axes
    assert sorted(bars(dissimilar, "to clothing")) == sorted(bars(dissimilar, "to footwear_bags")) == list(range(8))
    assert sorted(bars(random, "random, frozen")) == list(range(8))
    for curve in ("AnB, random splits", "AnB, dissimilar split", "random features"):
        assert sorted(bars(relative, curve)) == list(range(8))
    stats = {(r["panel"], r["curve"], r["n"]): r for r in summary(rows)}
    assert (stats["figure2", "BnB", 5]["ci_low"], stats["figure2", "BnB", 5]["ci_high"]) == pytest.approx(
        (interval.low, interval.high), abs=1e-6)
    assert stats["relative", "random features", 3]["mean"] == pytest.approx(-0.3)


def test_one_network_points_are_hollow_without_a_bar_and_say_n1():
    """With one seed there is no interval: no bars, hollow markers, a legend entry for n=1, empty CI cells."""
    rows = planted_rows(seeds=1)
    bottom = figures.figure2(rows).axes[1]
    assert bars(bottom, "BnB") == {}
    assert figures.SINGLE_LABEL in bottom.get_legend_handles_labels()[1]
    hollow = [c for c in bottom.collections if isinstance(c, PathCollection) and len(c.get_offsets())
              and (c.get_facecolors() == 1).all()]
    assert [len(c.get_offsets()) for c in hollow] == [8] * 4  # every point of every family, white inside
    row = next(r for r in summary(rows) if r["curve"] == "BnB" and r["n"] == 5)
    assert (row["count"], row["ci_low"], row["ci_high"]) == (1, None, None)


def test_paper_overlay_starts_every_family_at_the_mean_of_its_8_bases():
    """The paper's n=0 is one point, 0.6251, for BnB, AnB, BnB+ and AnB+ alike."""
    figure = figures.figure2(planted_rows(seeds=3), paper_rows())
    dashed = [line for line in figure.axes[1].get_lines() if line.get_linestyle() == "--" and len(line.get_xdata())]
    assert len(dashed) == 4
    assert all(line.get_xdata()[0] == 0 and line.get_ydata()[0] == pytest.approx(0.625101, abs=1e-6)
               for line in dashed)


def test_figure2_base_points_are_the_target_halfs_bases():
    """Planted study towards B: the top panel's base points are base B's three seeds, labelled so."""
    rows = planted_rows(seeds=3)
    top = figures.figure2(rows).axes[0]
    labels = top.get_legend_handles_labels()[1]
    assert "base B" in labels and not any(label.startswith("baseA") for label in labels)
    base = next(c for c in top.collections if c.get_label() == "base B")
    expected = [r["top1_best_k_mean"] for r in rows if r["family"] == "baseB"]
    assert sorted(base.get_offsets()[:, 1]) == pytest.approx(sorted(expected))


def test_note_is_printed_on_the_figures():
    rows = planted_rows(seeds=3)
    assert figures.figure2(rows, note="Convergence check FAILED: x")._suptitle.get_text().endswith("FAILED: x")
    assert figures.figure3(rows, note="Convergence check FAILED: x")._suptitle.get_text().endswith("FAILED: x")
    assert figures.figure2(rows)._suptitle is None


def test_write_report_writes_the_whole_report(tmp_path: Path):
    """One call: figures, summary with intervals, effects, and convergence (failed here, so noted)."""
    rows = planted_rows(seeds=3)
    rows[0]["val_top1_history"] = [0.1, 0.5, 0.9]
    files = write_report(rows, tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in files) == sorted([
        "figures/figure2.png", "figures/figure2.svg", "figures/figure3.png", "figures/figure3.svg", "summary.csv",
        "effects.csv", "effects.md", "convergence.json", "convergence.txt"])
    assert all(p.stat().st_size > 100 for p in files)
    with (tmp_path / "summary.csv").open(newline="") as file:
        assert tuple(next(csv.reader(file))) == SUMMARY_FIELDS
    assert json.loads((tmp_path / "convergence.json").read_text())["status"] == "failed"
