"""The figures and the curves behind them: the paper's aggregation reproduced, files written, overlays drawn."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from experiments.report import figures
from experiments.report.paper import DATA_DIR, paper_rows
from experiments.report.table import (
    dissimilar_points,
    figure2_points,
    mean_curve,
    random_features_points,
    relative_curves,
    summary,
)


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
    """Transfers towards B only are compared with base B, not with the mean of bases A and B."""
    rows = [row("baseA", 0, 0.9, target="A"), row("baseB", 0, 0.7, target="B"),
            row("baseB", 0, 0.6, target="B", seed=1), row("AnB", 7, 0.5), row("BnB", 7, 0.65, base="B", seed=1)]
    curves = figure2_points(rows)
    assert curves["base"][0] == [0.9, 0.7, 0.6]
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
