"""The paper's figures, drawn from a results table only (PNG and SVG).

``figure2``: Figure 2, top (every network as a point, means as lines: base, BnB, BnB+, AnB, AnB+
against n) and bottom (the means with their spread). ``figure3``: the paper's combined figure:
the dissimilar split, random frozen features, and each curve minus its own n=0. With ``paper=True``
the paper's numbers are overlaid as dashed lines.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from experiments.report.table import (  # noqa: E402
    Points,
    Row,
    dissimilar_points,
    figure2_points,
    mean_curve,
    random_features_points,
    relative_curves,
)

STYLE = {  # the paper's colours: selffers blue, transfers red, fine-tuned lighter
    "base": {"color": "black", "marker": "o", "facecolor": "white"},
    "BnB": {"color": "#1f3fbf", "marker": "o"},
    "BnB+": {"color": "#6fa8ff", "marker": "o"},
    "AnB": {"color": "#b01a1a", "marker": "D"},
    "AnB+": {"color": "#ff8a8a", "marker": "D"},
}
OFFSETS = {"base": 0.0, "BnB": -0.15, "BnB+": -0.05, "AnB": 0.05, "AnB+": 0.15}
EXTRA_COLORS = ("#2a9d8f", "#e76f51", "#6a4c93", "#8a8a8a")
RELATIVE_COLORS = {"AnB, random splits": STYLE["AnB"]["color"], "AnB, dissimilar split": EXTRA_COLORS[1],
                   "random features": EXTRA_COLORS[2]}
PAPER_LABEL = "paper (Yosinski et al. 2014)"



def draw(rows: list[Row], folder: Path, paper: Sequence[Row] | None = None) -> list[Path]:
    """Draw every figure of ``rows`` into ``folder``; return the files written.

    Args:
        rows: The results table.
        folder: Where ``figure2.{png,svg}`` and ``figure3.{png,svg}`` go.
        paper: The paper's rows to overlay (``experiments.report.paper.paper_rows()``), or None.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in (("figure2", figure2(rows, paper)), ("figure3", figure3(rows, paper))):
        for suffix in ("png", "svg"):
            path = folder / f"{name}.{suffix}"
            figure.savefig(path, dpi=150, bbox_inches="tight")
            written.append(path)
        plt.close(figure)
    return written


def figure2(rows: list[Row], paper: Sequence[Row] | None = None) -> Figure:
    """Figure 2: every network (top) and the means with their spread (bottom), against n."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 8), sharex=True)
    curves = figure2_points(rows)
    for name, points in curves.items():
        style = STYLE[name]
        # a family's n=0 point is base networks, drawn once as "base"
        shown = points if name == "base" else {n: values for n, values in points.items() if n > 0}
        for index, (n, values) in enumerate(shown.items()):
            top.scatter([n + OFFSETS[name]] * len(values), values, s=22, marker=style["marker"],
                        facecolors=style.get("facecolor", style["color"]), edgecolors=style["color"],
                        linewidths=0.8, zorder=3, label=name if index == 0 else None)
        if name != "base" and points:
            line = mean_curve(points)
            top.plot(list(line), list(line.values()), color=style["color"], lw=1, alpha=0.7)
            _mean_with_spread(bottom, points, style["color"], style["marker"], name)
    if paper:
        for name, points in figure2_points(list(paper)).items():
            if name != "base" and points:
                _paper_line(bottom, points, STYLE[name]["color"])
        _paper_legend(bottom)
    top.set_title("Figure 2: random A/B splits (every network)")
    bottom.set_title("Figure 2, bottom: means (bars: min to max over networks)")
    for axes in (top, bottom):
        _finish(axes, "layer n at which the network is chopped and retrained", _metric_label(rows))
    figure.tight_layout()
    return figure


def figure3(rows: list[Row], paper: Sequence[Row] | None = None) -> Figure:
    """The combined figure: the dissimilar split, random frozen features, and each curve minus its n=0."""
    figure = plt.figure(figsize=(11, 8))
    grid = figure.add_gridspec(2, 2)
    dissimilar, random, relative = (figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1]),
                                    figure.add_subplot(grid[1, :]))
    for index, (target, points) in enumerate(dissimilar_points(rows).items()):
        color = EXTRA_COLORS[index % len(EXTRA_COLORS)]
        _mean_with_spread(dissimilar, points, color, "o", f"to {target}", scatter=True)
    _mean_with_spread(random, random_features_points(rows), EXTRA_COLORS[2], "s", "random, frozen", scatter=True)
    for name, curve in relative_curves(rows).items():
        relative.plot(list(curve), list(curve.values()), marker="o", color=RELATIVE_COLORS[name], label=name)
    if paper:
        paper = list(paper)
        for index, points in enumerate(dissimilar_points(paper).values()):
            _paper_line(dissimilar, points, EXTRA_COLORS[index % len(EXTRA_COLORS)])
        _paper_line(random, random_features_points(paper), EXTRA_COLORS[2])
        for name, curve in relative_curves(paper).items():
            relative.plot(list(curve), list(curve.values()), ls="--", lw=1, color=RELATIVE_COLORS[name], alpha=0.6)
        for axes in (dissimilar, random, relative):
            _paper_legend(axes)
    relative.axhline(0, color="black", lw=0.5)
    dissimilar.set_title("dissimilar split: frozen transfer to each half")
    random.set_title("random, untrained, frozen first n layers")
    relative.set_title("each curve minus its own n=0")
    for axes in (dissimilar, random):
        _finish(axes, "layer n", _metric_label(rows))
    _finish(relative, "layer n", "top-1 accuracy minus n=0")
    figure.tight_layout()
    return figure


def _mean_with_spread(axes: Axes, points: Points, color: str, marker: str, label: str, scatter: bool = False) -> None:
    if not points:
        return
    ns = list(points)
    means = [statistics.fmean(points[n]) for n in ns]
    low = [mean - min(points[n]) for n, mean in zip(ns, means)]
    high = [max(points[n]) - mean for n, mean in zip(ns, means)]
    axes.errorbar(ns, means, yerr=[low, high], color=color, marker=marker, ms=5, capsize=3, lw=1.5, label=label)
    if scatter:
        for n in ns:
            axes.scatter([n] * len(points[n]), points[n], s=10, color=color, alpha=0.5)


def _paper_line(axes: Axes, points: Points, color: str) -> None:
    curve = mean_curve(points)
    axes.plot(list(curve), list(curve.values()), ls="--", lw=1, color=color, alpha=0.7, marker="x", ms=4, zorder=1)


def _paper_legend(axes: Axes) -> None:
    axes.plot([], [], ls="--", color="gray", marker="x", label=PAPER_LABEL)


def _metric_label(rows: list[Row]) -> str:
    """The y label: the paper's metric with the study's k (mean of the k best validation top-1 values)."""
    ks = {row.get("best_k") for row in rows}
    k = ks.pop() if len(ks) == 1 else None
    return f"top-1 accuracy (mean of {k} best validations)" if k else "top-1 accuracy (the paper's metric)"


def _finish(axes: Axes, xlabel: str, ylabel: str) -> None:
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_xticks(range(0, 8))
    axes.ticklabel_format(axis="y", useOffset=False)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, loc="best")
    else:
        axes.text(0.5, 0.5, "no cells of this panel in the study", ha="center", va="center", transform=axes.transAxes)
