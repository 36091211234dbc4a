"""The paper's figures, drawn from a results table only (PNG and SVG), every mean with its 95 % interval.

``figure2``: Figure 2. Top: every network as a point, each family's mean as a line from the one n=0 point
of all families, the target half's bases (:func:`experiments.report.curves.figure2_target_bases`). Bottom:
what the paper's claims are about, the paired differences: per family and n, each network minus the base
of its replicate (split, target half, seed), their mean and 95 % t-interval over replicates, against a
zero line. With ``cka`` a third panel on the same layer axis: debiased linear CKA between base A and base B
at layer n (``experiments.report.cka``), with ``cka_chance`` (the same on permuted examples) as its chance
band, so the layer where the halves' features stop being shared lines up with the layers where the
transfers lose accuracy. ``figure3``: the paper's combined figure: the dissimilar split, random frozen
features, and each curve minus its own n=0 (:func:`experiments.report.curves.relative_values`). ``pretrained``
(a study with a pretrained base): Figure 2's two panels for it, titled and labelled so that A reads as the
weights file's pretraining data (e.g. ImageNet) and B as the target.

Every interval is a t-interval over seeds (replicates; seed pairs on the CKA panel); a point of one seed
has none and is drawn hollow. On a layer axis markers stand at the n that were run; a solid line joins
only adjacent n, a faint dotted one crosses n that were not run, whose tick labels are grey. With
``paper`` the paper's means are overlaid as dashed lines (Figure 2's top ones start at the paper's single
n=0 point, the mean of its 8 bases, 0.6251). ``note`` (the convergence status) is the caption of every
figure: red where it starts with ``NOT CONVERGED`` or says ``FAILED`` or ``UNCHECKED``, dark grey otherwise.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

# Figures are built as ``matplotlib.figure.Figure`` objects, not through pyplot: they draw into files only (no
# display on a server or in CI) without choosing a backend for the whole process at import.
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from experiments.families import FIGURE2_FAMILIES, REDUCED_DATA
from experiments.report.curves import (
    Comparison,
    base_label,
    dissimilar_points,
    figure2_differences,
    figure2_points,
    figure2_rows,
    mean_curve,
    random_features_points,
    reduced_data_points,
    relative_points,
)
from experiments.report.intervals import mean_interval
from experiments.report.table import Points, Row

STYLE = {  # the paper's colours: selffers blue, transfers red, fine-tuned lighter
    "base": {"color": "black", "marker": "o", "facecolor": "white"},
    "BnB": {"color": "#1f3fbf", "marker": "o"},
    "BnB+": {"color": "#6fa8ff", "marker": "o"},
    "AnB": {"color": "#b01a1a", "marker": "D"},
    "AnB+": {"color": "#ff8a8a", "marker": "D"},
}
OFFSETS = {"base": 0.0, "BnB": -0.15, "BnB+": -0.05, "AnB": 0.05, "AnB+": 0.15}
EXTRA_COLORS = ("#2a9d8f", "#e76f51", "#6a4c93", "#8a8a8a")
RELATIVE_COLORS = {
    "AnB, random splits": STYLE["AnB"]["color"],
    "AnB, dissimilar split": EXTRA_COLORS[1],
    "random features": EXTRA_COLORS[2],
}
CKA_COLOR = "#444444"
CHANCE_COLOR = "#9a9a9a"
NOT_RUN_COLOR = "#b0b0b0"
ALARM_COLOR, STATUS_COLOR = "#b00000", "#444444"
ALARMS = ("FAILED", "UNCHECKED")  # a caption saying either (or starting NOT CONVERGED) is red
PAPER_LABEL = "paper (Yosinski et al. 2014)"
SINGLE_LABEL = "one seed: no interval"
CHANCE_LABEL = "chance (permuted examples)"
ZERO_LABEL = "the base of the same replicate (= 0)"
CI_NOTE = "bars: 95% t-interval over seeds (replicates)"
FOOTER = f"{CI_NOTE}; hollow markers: one seed, no interval."
# The legend of each family where A is a pretrained weights file's training data, not a half.
PRETRAINED_LABELS = {
    "BnB": "BnB (from base B, frozen)",
    "BnB+": "BnB+ (from base B, fine-tuned)",
    "AnB": "AnB (A: pretrained weights, frozen)",
    "AnB+": "AnB+ (A: pretrained weights, fine-tuned)",
}
PRETRAINED_TITLE = "pretrained base: A = the weights' pretraining data (e.g. ImageNet), not a half; B = the target"


def draw(
    rows: list[Row],
    folder: Path,
    paper: Sequence[Row] | None = None,
    note: str | None = None,
    cka: Points | None = None,
    cka_chance: Points | None = None,
) -> list[Path]:
    """Draw every figure of ``rows`` into ``folder``; return the files written.

    Args:
        rows: The results table.
        folder: Where ``figure2.{png,svg}``, ``figure3.{png,svg}`` and, for a study with the reduced-data
            panel, ``reduced_data.{png,svg}`` (with a pretrained base, ``pretrained.{png,svg}``) go.
        paper: The paper's rows to overlay (``experiments.report.paper.paper_rows()``), or None.
        note: The caption of every figure, a one-line convergence status, or None (no caption).
        cka: The layer-similarity panel drawn under Figure 2 (layer n -> each seed pair's CKA), or None.
        cka_chance: Its chance level, the same shape (layer n -> each seed pair's CKA on permuted examples), or None.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    figures = [("figure2", figure2(rows, paper, note, cka, cka_chance)), ("figure3", figure3(rows, paper, note))]
    if figure2_rows(rows, "pretrained"):
        figures.append(("pretrained", figure2(rows, None, note, comparison="pretrained")))
    if reduced_data_points(rows):
        figures.append(("reduced_data", reduced_data(rows, paper, note)))
    for name, figure in figures:
        for suffix in ("png", "svg"):
            path = folder / f"{name}.{suffix}"
            figure.savefig(path, dpi=150, bbox_inches="tight")
            written.append(path)
    return written


def figure2(
    rows: list[Row],
    paper: Sequence[Row] | None = None,
    note: str | None = None,
    cka: Points | None = None,
    cka_chance: Points | None = None,
    comparison: Comparison = "random",
) -> Figure:
    """Figure 2: every network with its family's mean line (top), each network minus the base of its replicate
    (bottom), and with ``cka`` the layer similarity of the bases A and B (and ``cka_chance``, its chance) under them.
    ``comparison`` ``pretrained``: the same panels for the transfers from a pretrained weights file."""
    if cka:
        figure = Figure(figsize=(7, 12.5))
        top, bottom, similarity = figure.subplots(3, 1, sharex=True, height_ratios=(1, 1, 0.7))
    else:
        figure = Figure(figsize=(7, 9))
        top, bottom = figure.subplots(2, 1, sharex=True)
    labels: dict[str, str] = (
        PRETRAINED_LABELS if comparison == "pretrained" else {family: family for family in FIGURE2_FAMILIES}
    )
    points = figure2_points(rows, comparison)
    _networks(top, points, base_label(rows, comparison), labels)
    if paper:
        paper_points = figure2_points(list(paper))
        start = mean_curve(paper_points["base"])  # the paper's n=0: the mean of all its bases
        for family in FIGURE2_FAMILIES:
            if paper_points[family]:
                _paper_line(top, start | mean_curve(paper_points[family]), STYLE[family]["color"])
        _paper_legend(top)
    what = f"{PRETRAINED_TITLE}\n" if comparison == "pretrained" else "Figure 2: random A/B splits, "
    top.set_title(f"{what}every network ({_seeds(points.values())} per point; lines: means)", fontsize=10)
    finish(
        top, "layer n at which the network is chopped and retrained", _metric_label(rows), run=_layers(points.values())
    )
    differences = figure2_differences(rows, comparison)
    _differences(bottom, differences, figure2_differences(list(paper)) if paper else {}, labels)
    bottom.set_title(
        f"each network minus the base of its replicate ({_seeds(differences.values())} per point;\n{CI_NOTE})",
        fontsize=10,
    )
    finish(
        bottom,
        "layer n at which the network is chopped and retrained",
        f"{_metric_label(rows)}\nminus the base of its replicate",
        run=_layers(differences.values()) | {0},
    )
    if cka:
        _similarity(similarity, cka, cka_chance)
    _caption(figure, note)
    return figure


def _networks(axes: Axes, points: dict[str, Points], label: str, labels: dict[str, str]) -> None:
    """Figure 2's top panel: the bases once at n=0, every network of each family (its legend ``labels[family]``),
    the means joined from the bases'."""
    base = STYLE["base"]
    for n, values in points["base"].items():
        axes.scatter(
            [n] * len(values),
            values,
            s=22,
            marker=base["marker"],
            facecolors=base["facecolor"],
            edgecolors=base["color"],
            linewidths=0.8,
            zorder=3,
            label=label,
        )
    start = mean_curve(points["base"])
    for family in FIGURE2_FAMILIES:
        style, family_points = STYLE[family], points[family]
        for index, (n, values) in enumerate(family_points.items()):
            axes.scatter(
                [n + OFFSETS[family]] * len(values),
                values,
                s=22,
                marker=style["marker"],
                color=style["color"],
                linewidths=0.8,
                zorder=3,
                label=labels[family] if index == 0 else None,
            )
        if family_points:
            line = start | mean_curve(family_points)
            _connect(axes, list(line), list(line.values()), style["color"], lw=1, alpha=0.7)


def _differences(axes: Axes, differences: dict[str, Points], paper: dict[str, Points], labels: dict[str, str]) -> None:
    """Figure 2's bottom panel: per family the mean difference with its interval, the paper's dashed, a zero line."""
    axes.axhline(0.0, color="black", lw=0.8, label=ZERO_LABEL)
    for family, points in differences.items():
        mean_with_interval(
            axes, points, STYLE[family]["color"], STYLE[family]["marker"], labels[family], shift=OFFSETS[family]
        )
    counts = {len(values) for points in differences.values() for values in points.values()}
    if len(counts) > 1:  # the title gives the range; each point says its own
        for family, points in differences.items():
            for n, values in points.items():
                axes.annotate(
                    _seeds([{n: values}]),
                    (n + OFFSETS[family], mean_interval(values).estimate),
                    xytext=(3, -8),
                    textcoords="offset points",
                    fontsize=6,
                    color=STYLE[family]["color"],
                )
    for family, points in paper.items():
        _paper_line(axes, mean_curve(points), STYLE[family]["color"])
    if paper:
        _paper_legend(axes)


def _similarity(axes: Axes, cka: Points, chance: Points | None) -> None:
    """The layer-similarity panel: each seed pair's CKA(A, B) with its mean and interval, and the chance band."""
    mean_with_interval(axes, cka, CKA_COLOR, "s", "CKA(A, B)", scatter=True)
    values = [value for points in (cka, chance or {}) for found in points.values() for value in found]
    if chance:
        ns, means, low, high = _intervals(chance)
        for run in _runs(ns):
            band = [(ns[i], means[i] - low[i], means[i] + high[i]) for i in run if not math.isnan(low[i])]
            if band:
                band_ns, lower, upper = zip(*band)
                axes.fill_between(band_ns, lower, upper, color=CHANCE_COLOR, alpha=0.25, lw=0)
        _connect(axes, ns, means, CHANCE_COLOR, linestyle="--", lw=1.2, label=CHANCE_LABEL)
    axes.set_ylim(min([0.0, *values]) - 0.05, 1.05)  # CKA's range: a wider t-interval runs off it (see summary.csv)
    pairs = _seeds([cka], unit="seed pair")
    axes.set_title(
        f"layer similarity: debiased linear CKA of base A and base B at layer n, on B's validation "
        f"images\n({pairs} per point; bars: 95% t-interval over seed pairs)",
        fontsize=9,
    )
    finish(axes, "layer n", "debiased linear CKA(A, B)", run=set(cka) | set(chance or {}))


def figure3(rows: list[Row], paper: Sequence[Row] | None = None, note: str | None = None) -> Figure:
    """The combined figure: the dissimilar split, random frozen features, and each curve minus its n=0."""
    figure = Figure(figsize=(11, 8.5))
    grid = figure.add_gridspec(2, 2)
    dissimilar, random, relative = (
        figure.add_subplot(grid[0, 0]),
        figure.add_subplot(grid[0, 1]),
        figure.add_subplot(grid[1, :]),
    )
    panels = {
        "dissimilar": dissimilar_points(rows),
        "random": {"random, frozen": random_features_points(rows)},
        "relative": relative_points(rows),
    }
    for index, (target, points) in enumerate(panels["dissimilar"].items()):
        color = EXTRA_COLORS[index % len(EXTRA_COLORS)]
        mean_with_interval(dissimilar, points, color, "o", f"to {target}", scatter=True)
    mean_with_interval(random, panels["random"]["random, frozen"], EXTRA_COLORS[2], "s", "random, frozen", scatter=True)
    for name, points in panels["relative"].items():
        mean_with_interval(relative, points, RELATIVE_COLORS[name], "o", name)
    if paper:
        paper = list(paper)
        for index, points in enumerate(dissimilar_points(paper).values()):
            _paper_line(dissimilar, mean_curve(points), EXTRA_COLORS[index % len(EXTRA_COLORS)])
        _paper_line(random, mean_curve(random_features_points(paper)), EXTRA_COLORS[2])
        for name, points in relative_points(paper).items():
            _paper_line(relative, mean_curve(points), RELATIVE_COLORS[name])
        for axes in (dissimilar, random):
            _paper_legend(axes)
        _paper_legend(relative)
    relative.axhline(0, color="black", lw=0.5)
    seeds = {name: _seeds(points.values()) for name, points in panels.items()}
    dissimilar.set_title(f"dissimilar split: frozen transfer to each half ({seeds['dissimilar']})", fontsize=10)
    random.set_title(f"random, untrained, frozen first n layers ({seeds['random']})", fontsize=10)
    relative.set_title(
        f"each curve minus its own n=0, network minus its base ({seeds['relative']} per point; "
        "bars: 95% t-interval over seeds)",
        fontsize=10,
    )
    for axes, name in ((dissimilar, "dissimilar"), (random, "random")):
        finish(axes, "layer n", _metric_label(rows), run=_layers(panels[name].values()))
    finish(relative, "layer n", "top-1 accuracy minus n=0", run=_layers(panels["relative"].values()))
    figure.text(0.01, 0.005, FOOTER, fontsize=7, color="dimgray")
    _caption(figure, note)
    return figure


def reduced_data(rows: list[Row], paper: Sequence[Row] | None = None, note: str | None = None) -> Figure:
    """The paper's supplementary panel: accuracy of a network trained on the first N images of each class."""
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    points = reduced_data_points(rows)
    mean_with_interval(axes, points, EXTRA_COLORS[0], "o", "reduced data", scatter=True, layers=False)
    if paper:
        _paper_line(axes, mean_curve(reduced_data_points(list(paper))), EXTRA_COLORS[0], layers=False)
        _paper_legend(axes)
    axes.set_xscale("log")
    axes.set_title(f"reduced data: every class, the first N training images of each ({_seeds([points])} per point)")
    axes.set_xlabel("training images per class (N)")
    axes.set_ylabel(_metric_label([row for row in rows if row["family"] == REDUCED_DATA]))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.text(0.01, 0.005, FOOTER, fontsize=7, color="dimgray")
    _caption(figure, note)
    return figure


def _intervals(points: Points) -> tuple[list[int], list[float], list[float], list[float]]:
    """The n, means, and the distances down and up to the interval's ends (NaN where undefined)."""
    ns, means, low, high = [], [], [], []
    for n, values in points.items():
        interval = mean_interval(values)
        ns.append(n)
        means.append(interval.estimate)
        if interval.low is None or interval.high is None:  # not defined
            low.append(math.nan)
            high.append(math.nan)
        else:
            low.append(interval.estimate - interval.low)
            high.append(interval.high - interval.estimate)
    return ns, means, low, high


def mean_with_interval(
    axes: Axes,
    points: Points,
    color: str,
    marker: str,
    label: str,
    scatter: bool = False,
    linestyle: str = "-",
    shift: float = 0.0,
    layers: bool = True,
) -> None:
    """Draw the mean of ``points`` at each n (moved right by ``shift``) with its 95 % interval as a bar; a point of
    one value hollow; with ``scatter`` every value too. On a layer axis (``layers``) the line joins adjacent n only
    (:func:`_connect`); otherwise it joins every point."""
    if not points:
        return
    ns, means, low, high = _intervals(points)
    xs = [n + shift for n in ns]
    bars = axes.errorbar(
        xs, means, yerr=[low, high], color=color, marker=marker, ms=5, capsize=3, lw=1.5, label=label, ls=linestyle
    )
    if layers:  # the data line breaks where n were not run; a faint connector crosses there
        bars.lines[0].set_data(*_broken(ns, means, shift))
        _gaps(axes, ns, means, color, linestyle, shift)
    single = [(x, mean) for x, mean, down in zip(xs, means, low) if math.isnan(down)]
    if single:
        single_xs, single_means = zip(*single)
        axes.scatter(
            single_xs, single_means, marker=marker, s=36, facecolors="white", edgecolors=color, linewidths=1.2, zorder=4
        )
        if SINGLE_LABEL not in axes.get_legend_handles_labels()[1]:
            axes.scatter([], [], marker="o", facecolors="white", edgecolors="gray", label=SINGLE_LABEL)
    if scatter:
        for n, values in points.items():
            axes.scatter([n + shift] * len(values), values, s=10, color=color, alpha=0.5)


def _runs(ns: Sequence[int]) -> list[list[int]]:
    """The indices of ``ns`` (increasing) split where the next n is not the next integer."""
    runs: list[list[int]] = []
    for index, n in enumerate(ns):
        if runs and n == ns[runs[-1][-1]] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def _broken(ns: Sequence[int], ys: Sequence[float], shift: float = 0.0) -> tuple[list[float], list[float]]:
    """The points (x moved by ``shift``), a NaN between n that are not adjacent: a line through them breaks there."""
    xs_out: list[float] = []
    ys_out: list[float] = []
    for run in _runs(ns):
        if xs_out:
            xs_out.append(math.nan)
            ys_out.append(math.nan)
        xs_out += [ns[i] + shift for i in run]
        ys_out += [ys[i] for i in run]
    return xs_out, ys_out


def _gaps(
    axes: Axes, ns: Sequence[int], ys: Sequence[float], color: str, linestyle: str = "-", shift: float = 0.0
) -> None:
    """A faint connector across each run of n that were not run: dotted for a solid curve, else its own style."""
    runs = _runs(ns)
    for before, after in itertools.pairwise(runs):
        gap = (before[-1], after[0])
        axes.plot(
            [ns[i] + shift for i in gap],
            [ys[i] for i in gap],
            color=color,
            ls=":" if linestyle == "-" else linestyle,
            lw=1.0,
            alpha=0.6,
        )


def _connect(
    axes: Axes,
    ns: Sequence[int],
    ys: Sequence[float],
    color: str,
    linestyle: str = "-",
    label: str | None = None,
    **style: Any,
) -> None:
    """Join the points of one curve: ``linestyle`` between adjacent n, a faint connector across n not run."""
    axes.plot(*_broken(ns, ys), color=color, ls=linestyle, label=label, **style)
    _gaps(axes, ns, ys, color, linestyle)


def _layers(curves: Iterable[Points]) -> set[int]:
    """The n that any of ``curves`` has a point at: the layers that were run."""
    return {n for points in curves for n, values in points.items() if values}


def _seeds(curves: Iterable[Points], unit: str = "seed") -> str:
    """How many units each point rests on: ``3 seeds``, or ``1-3 seeds`` where points differ."""
    counts = sorted({len(values) for points in curves for values in points.values() if values})
    if not counts:
        return f"no {unit}s"
    many = "" if counts[-1] == 1 else "s"
    return f"{counts[0]}{'' if len(counts) == 1 else f'-{counts[-1]}'} {unit}{many}"


def _paper_line(axes: Axes, curve: dict[int, float], color: str, layers: bool = True) -> None:
    style: dict[str, Any] = {"lw": 1, "alpha": 0.7, "marker": "x", "ms": 4, "zorder": 1}
    if layers:
        _connect(axes, list(curve), list(curve.values()), color, linestyle="--", **style)
    else:
        axes.plot(list(curve), list(curve.values()), color=color, ls="--", **style)


def _paper_legend(axes: Axes) -> None:
    axes.plot([], [], ls="--", color="gray", marker="x", label=PAPER_LABEL)


def _caption(figure: Figure, note: str | None) -> None:
    """Lay the figure out and print ``note`` (the convergence status) above it; red where it is not a pass."""
    figure.tight_layout()
    if note:
        alarm = note.startswith("NOT CONVERGED") or any(word in note for word in ALARMS)
        wrapped = textwrap.fill(note, width=int(14 * figure.get_figwidth()))  # about the figure's width at 9 pt
        figure.suptitle(wrapped, color=ALARM_COLOR if alarm else STATUS_COLOR, fontsize=9, y=1.0, va="bottom")


def _metric_label(rows: list[Row]) -> str:
    """The y label: the paper's metric with the study's k (mean of the k best validation top-1 values)."""
    ks = {row.get("best_k") for row in rows}
    k = ks.pop() if len(ks) == 1 else None
    return f"top-1 accuracy (mean of {k} best validations)" if k else "top-1 accuracy (the paper's metric)"


def finish(axes: Axes, xlabel: str, ylabel: str, run: Collection[int] | None = None) -> None:
    """Label the axes, integer ticks on n, a light grid and the legend.

    Args:
        axes: The panel.
        xlabel: Its x label.
        ylabel: Its y label.
        run: On a layer axis, the n that were run: every integer n gets a tick, and those between the first and
            the last n run that were not run get a grey tick label and a note in the x label. None: ticks as
            matplotlib places them.
    """
    missing = sorted(set(range(min(run), max(run) + 1)) - set(run)) if run else []
    if missing:
        xlabel += f"\n(n = {', '.join(map(str, missing))} not run)"
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if run:
        low, high = axes.get_xlim()
        axes.set_xticks(range(math.ceil(low), math.floor(high) + 1))  # every n; shared axes get the same ticks
        axes.tick_params(axis="x", labelbottom=True)
        for tick, label in zip(axes.get_xticks(), axes.get_xticklabels()):
            label.set_color(NOT_RUN_COLOR if round(tick) in missing else "black")
    else:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # every stage count, not only CaffeNet's 0..7
    axes.ticklabel_format(axis="y", useOffset=False)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, loc="best")
    else:
        axes.text(0.5, 0.5, "no cells of this panel in the study", ha="center", va="center", transform=axes.transAxes)
