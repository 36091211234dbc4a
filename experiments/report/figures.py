"""The paper's figures, drawn from a results table only (PNG and SVG), every curve with its 95 % interval.

``figure2``: Figure 2, top (every network as a point, each family's mean as a line; the base points
are the target halves' bases) and bottom (the same means with their intervals as bars; the top
panel shows the networks themselves, which bands would hide). ``figure3``: the paper's combined
figure: the dissimilar split, random frozen features, and each curve minus its own n=0.

Intervals are 95 % t-intervals over networks (over paired differences in the bottom panel of
Figure 3, see :func:`experiments.report.curves.relative_values`); a point of one network has none
and is drawn hollow (n=1). With ``paper`` the paper's means are overlaid as dashed lines; Figure 2's
start at the paper's single n=0 point, the mean of its 8 bases (0.6251). ``note`` (e.g. a failed
convergence check) is printed in red above the figure. With ``cka`` (the layer-similarity panel,
``experiments.report.cka``) Figure 2 gets a third panel under its two, on the same layer axis: linear
CKA between base A and base B at layer n, so the layer where the halves' features stop being shared
lines up with the layers where the transfers lose accuracy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from experiments.report.curves import (  # noqa: E402
    base_label,
    dissimilar_points,
    figure2_points,
    mean_curve,
    random_features_points,
    reduced_data_points,
    relative_points,
)
from experiments.report.intervals import mean_interval  # noqa: E402
from experiments.report.table import Points, Row  # noqa: E402

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
CKA_COLOR = "#444444"
PAPER_LABEL = "paper (Yosinski et al. 2014)"
SINGLE_LABEL = "one network: no interval (n=1)"
CI_NOTE = "bars: 95% t-interval over networks"


def draw(rows: list[Row], folder: Path, paper: Sequence[Row] | None = None, note: str | None = None,
         cka: Points | None = None) -> list[Path]:
    """Draw every figure of ``rows`` into ``folder``; return the files written.

    Args:
        rows: The results table.
        folder: Where ``figure2.{png,svg}``, ``figure3.{png,svg}`` and, for a study with the reduced-data
            panel, ``reduced_data.{png,svg}`` go.
        paper: The paper's rows to overlay (``experiments.report.paper.paper_rows()``), or None.
        note: A warning printed on every figure (e.g. the convergence check's), or None.
        cka: The layer-similarity panel drawn under Figure 2 (layer n -> each seed pair's CKA), or None.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    figures = [("figure2", figure2(rows, paper, note, cka)), ("figure3", figure3(rows, paper, note))]
    if reduced_data_points(rows):
        figures.append(("reduced_data", reduced_data(rows, paper, note)))
    for name, figure in figures:
        for suffix in ("png", "svg"):
            path = folder / f"{name}.{suffix}"
            figure.savefig(path, dpi=150, bbox_inches="tight")
            written.append(path)
        plt.close(figure)
    return written


def figure2(rows: list[Row], paper: Sequence[Row] | None = None, note: str | None = None,
            cka: Points | None = None) -> Figure:
    """Figure 2: every network with its family's mean line (top), the means with interval bars (bottom), and with
    ``cka`` (layer n -> each seed pair's CKA) the layer similarity of the bases A and B under them."""
    if cka:
        figure, (top, bottom, similarity) = plt.subplots(3, 1, figsize=(7, 11.5), sharex=True,
                                                         height_ratios=(1, 1, 0.7))
    else:
        figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 8.5), sharex=True)
    for name, points in figure2_points(rows).items():
        style = STYLE[name]
        label = base_label(rows) if name == "base" else name
        # a family's n=0 point is base networks, drawn once as the base
        shown = points if name == "base" else {n: values for n, values in points.items() if n > 0}
        for index, (n, values) in enumerate(shown.items()):
            top.scatter([n + OFFSETS[name]] * len(values), values, s=22, marker=style["marker"],
                        facecolors=style.get("facecolor", style["color"]), edgecolors=style["color"],
                        linewidths=0.8, zorder=3, label=label if index == 0 else None)
        if name != "base" and points:
            line = mean_curve(points)
            top.plot(list(line), list(line.values()), color=style["color"], lw=1, alpha=0.7)
            mean_with_interval(bottom, points, style["color"], style["marker"], name)
    if paper:
        curves = figure2_points(list(paper))
        start = mean_curve(curves["base"]).get(0)  # the paper's n=0: the mean of all its bases
        for name, points in curves.items():
            if name != "base" and points:
                line = {0: start} if start is not None else {}
                _paper_line(bottom, line | {n: v for n, v in mean_curve(points).items() if n > 0}, STYLE[name]["color"])
        _paper_legend(bottom)
    top.set_title("Figure 2: random A/B splits (every network; lines: means, intervals below)")
    bottom.set_title(f"Figure 2, bottom: means ({CI_NOTE}; hollow: n=1)")
    for axes in (top, bottom):
        finish(axes, "layer n at which the network is chopped and retrained", _metric_label(rows))
    if cka:
        mean_with_interval(similarity, cka, CKA_COLOR, "s", "CKA(A, B)", scatter=True)
        similarity.set_ylim(0, 1.05)  # CKA's range: a wider t-interval (few seed pairs) runs off it (see summary.csv)
        similarity.set_title("layer similarity: linear CKA of base A and base B at layer n, on B's validation "
                             "images (bars: 95% t-interval over seed pairs)", fontsize=9)
        finish(similarity, "layer n", "linear CKA(A, B)")
    _note(figure, note)
    return figure


def figure3(rows: list[Row], paper: Sequence[Row] | None = None, note: str | None = None) -> Figure:
    """The combined figure: the dissimilar split, random frozen features, and each curve minus its n=0."""
    figure = plt.figure(figsize=(11, 8.5))
    grid = figure.add_gridspec(2, 2)
    dissimilar, random, relative = (figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1]),
                                    figure.add_subplot(grid[1, :]))
    for index, (target, points) in enumerate(dissimilar_points(rows).items()):
        color = EXTRA_COLORS[index % len(EXTRA_COLORS)]
        mean_with_interval(dissimilar, points, color, "o", f"to {target}", scatter=True)
    mean_with_interval(random, random_features_points(rows), EXTRA_COLORS[2], "s", "random, frozen", scatter=True)
    for name, points in relative_points(rows).items():
        mean_with_interval(relative, points, RELATIVE_COLORS[name], "o", name)
    if paper:
        paper = list(paper)
        for index, points in enumerate(dissimilar_points(paper).values()):
            _paper_line(dissimilar, mean_curve(points), EXTRA_COLORS[index % len(EXTRA_COLORS)])
        _paper_line(random, mean_curve(random_features_points(paper)), EXTRA_COLORS[2])
        for name, points in relative_points(paper).items():
            _paper_line(relative, mean_curve(points), RELATIVE_COLORS[name])
        for axes in (dissimilar, random, relative):
            _paper_legend(axes)
    relative.axhline(0, color="black", lw=0.5)
    dissimilar.set_title("dissimilar split: frozen transfer to each half")
    random.set_title("random, untrained, frozen first n layers")
    relative.set_title("each curve minus its own n=0 (bars: 95% t-interval over differences network - its base)")
    for axes in (dissimilar, random):
        finish(axes, "layer n", _metric_label(rows))
    finish(relative, "layer n", "top-1 accuracy minus n=0")
    figure.text(0.01, 0.005, f"{CI_NOTE}; hollow markers: one network (n=1), no interval.", fontsize=7,
                color="dimgray")
    _note(figure, note)
    return figure


def reduced_data(rows: list[Row], paper: Sequence[Row] | None = None, note: str | None = None) -> Figure:
    """The paper's supplementary panel: accuracy of a network trained on the first N images of each class."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    mean_with_interval(axes, reduced_data_points(rows), EXTRA_COLORS[0], "o", "reduced data", scatter=True)
    if paper:
        _paper_line(axes, mean_curve(reduced_data_points(list(paper))), EXTRA_COLORS[0])
        _paper_legend(axes)
    axes.set_xscale("log")
    axes.set_title("reduced data: every class, the first N training images of each")
    axes.set_xlabel("training images per class (N)")
    axes.set_ylabel(_metric_label([row for row in rows if row["family"] == "reduced"]))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.text(0.01, 0.005, f"{CI_NOTE}; hollow markers: one network (n=1), no interval.", fontsize=7,
                color="dimgray")
    _note(figure, note)
    return figure


def _intervals(points: Points) -> tuple[list[int], list[float], list[float], list[float]]:
    """The n, means, and the distances down and up to the interval's ends (NaN where undefined)."""
    ns, means, low, high = [], [], [], []
    for n, values in points.items():
        interval = mean_interval(values)
        ns.append(n)
        means.append(interval.estimate)
        low.append(interval.estimate - interval.low if interval.defined else math.nan)
        high.append(interval.high - interval.estimate if interval.defined else math.nan)
    return ns, means, low, high


def mean_with_interval(axes: Axes, points: Points, color: str, marker: str, label: str,
                       scatter: bool = False, linestyle: str = "-", shift: float = 0.0) -> None:
    """Draw the mean of ``points`` at each n (moved right by ``shift``) with its 95 % interval as a bar; a point of
    one value hollow; with ``scatter`` every value too."""
    if not points:
        return
    ns, means, low, high = _intervals(points)
    ns = [n + shift for n in ns]
    axes.errorbar(ns, means, yerr=[low, high], color=color, marker=marker, ms=5, capsize=3, lw=1.5, label=label,
                  ls=linestyle)
    single = [(n, mean) for n, mean, down in zip(ns, means, low) if math.isnan(down)]
    if single:
        axes.scatter(*zip(*single), marker=marker, s=36, facecolors="white", edgecolors=color, linewidths=1.2,
                     zorder=4)
        if SINGLE_LABEL not in axes.get_legend_handles_labels()[1]:
            axes.scatter([], [], marker="o", facecolors="white", edgecolors="gray", label=SINGLE_LABEL)
    if scatter:
        for n, values in points.items():
            axes.scatter([n + shift] * len(values), values, s=10, color=color, alpha=0.5)


def _paper_line(axes: Axes, curve: dict[int, float], color: str) -> None:
    axes.plot(list(curve), list(curve.values()), ls="--", lw=1, color=color, alpha=0.7, marker="x", ms=4, zorder=1)


def _paper_legend(axes: Axes) -> None:
    axes.plot([], [], ls="--", color="gray", marker="x", label=PAPER_LABEL)


def _note(figure: Figure, note: str | None) -> None:
    figure.tight_layout()
    if note:
        figure.suptitle(note, color="#b00000", fontsize=9, y=1.0, va="bottom")


def _metric_label(rows: list[Row]) -> str:
    """The y label: the paper's metric with the study's k (mean of the k best validation top-1 values)."""
    ks = {row.get("best_k") for row in rows}
    k = ks.pop() if len(ks) == 1 else None
    return f"top-1 accuracy (mean of {k} best validations)" if k else "top-1 accuracy (the paper's metric)"


def finish(axes: Axes, xlabel: str, ylabel: str) -> None:
    """Label the axes, integer ticks on n, a light grid and the legend."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # every stage count, not only CaffeNet's 0..7
    axes.ticklabel_format(axis="y", useOffset=False)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, loc="best")
    else:
        axes.text(0.5, 0.5, "no cells of this panel in the study", ha="center", va="center", transform=axes.transAxes)
