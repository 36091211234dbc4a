"""The shipped results pages, written from the results tables in ``docs/``: never edit them by hand.

``python -m experiments.report.pages`` re-reports every shipped study from its table ``docs/<study>_results.csv``
with the study's own report writers (``experiments.report``): its summary, effects and convergence files
(``docs/<study>_{summary.csv,effects.csv,effects.md,convergence.json,convergence.txt}``), the comparison of the two
4000-step studies (``docs/fmnist_vit_vs_caffenet.{md,csv}``), the page ``docs/results.md`` (one section per study:
figures, convergence, effects, seed counts and intervals) and the README's headline, between its two markers.
``--figures`` redraws the figures too (PNG; not compared by the test: their bytes follow matplotlib's version).
``--check`` writes nothing and exits 1 naming every file that differs from what it would write
(``tests/test_results_pages.py`` runs it, so a hand edit fails CI).

What the tables cannot hold (what a study ran, when, how long it took, the readings of its numbers) is the prose
of :data:`~experiments.report.shipped.STUDIES` (``experiments/report/shipped.py``, what to edit when a study is
re-run); every number on the pages comes from the tables.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from experiments.families import FIGURE2_FAMILIES, RANDOM_FEATURES
from experiments.report.compare import Study, compare
from experiments.report.compare_files import markdown as compare_markdown
from experiments.report.compare_files import write_comparison
from experiments.report.convergence import Convergence, check, plateau_rise
from experiments.report.curves import figure2_target_bases, relative_values, value
from experiments.report.effects import EffectRow, effects
from experiments.report.effects_table import markdown
from experiments.report.shipped import (
    COMPARISON,
    COMPARISON_ABOUT,
    COMPARISON_STAGES,
    HEADLINE_CLAIMS,
    HEADLINE_FIGURE,
    HEADLINE_FIGURE_TITLE,
    STUDIES,
    StudyPage,
)
from experiments.report.table import Row, is_base, is_random_split, read_table
from experiments.report.write import read_similarity, similarity_panel, write_tables

ROOT = Path(__file__).resolve().parents[2]
BEGIN = "<!-- results: begin (written by python -m experiments.report.pages from docs/*_results.csv; do not edit) -->"
END = "<!-- results: end -->"
Report = tuple[list[Row], Convergence, list[EffectRow]]  # a study's results table, convergence check and effects


def _points(number: float | None) -> str:
    return "n/a" if number is None else f"{100 * number:+.2f}"


def _effect(row: EffectRow) -> str:
    interval, adjusted = row.interval, row.adjusted
    if not interval.defined:
        return f"{_points(interval.estimate)}, n = {row.effect.label}, {interval.count} seed: **{row.verdict}**"
    holm = "" if adjusted is None else f"; Holm {_points(adjusted.low)} to {_points(adjusted.high)}"
    return (
        f"{_points(interval.estimate)} ({_points(interval.low)} to {_points(interval.high)}{holm}), "
        f"n = {row.effect.label}, {interval.count} seeds: **{row.verdict}**"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _seeds(rows: list[Row], families: Sequence[str]) -> int:
    return len({row["seed"] for row in rows if row["family"] in families})


def headline(reports: dict[str, Report], pair: Study, other: Study) -> str:
    """The at-a-glance table (every study's networks, convergence and the paper's three claims) and the line of the
    comparison of :data:`COMPARISON`."""
    names = [study.name for study in STUDIES]
    lines = [
        "| | " + " | ".join(f"`{name}`" for name in names) + " |",
        "|---|" + "---|" * len(names),
        "| networks (seeds per Figure-2 point) | "
        + " | ".join(f"{len(reports[name][0])} ({_seeds(reports[name][0], FIGURE2_FAMILIES)})" for name in names)
        + " |",
        "| convergence check | " + " | ".join(f"**{reports[name][1].status}**" for name in names) + " |",
    ]
    for label, claim, contrast, which in HEADLINE_CLAIMS:
        cells = []
        for name in names:
            found = [row for row in reports[name][2] if row.effect.claim == claim and row.effect.contrast == contrast]
            cells.append(_effect(found[which]) if found else "not run")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    tested = [row for row in compare(pair, other) if row.p_holm is not None and row.adjusted is not None]
    nearest = min(tested, key=lambda row: row.p_holm or 1.0)
    adjusted = nearest.adjusted
    assert adjusted is not None  # tested rows have one
    differs = sum(row.verdict == "differs" for row in tested)
    statuses = {reports[name][1].status for name in names}
    tau = 100 * reports[names[0]][1].tolerance
    lower = sorted(
        {_seeds([r for r in reports[name][0] if r["split"] == "dissimilar"], ("AnB",)) for name in names}
        | {_seeds(reports[name][0], (RANDOM_FEATURES,)) for name in names}
    )
    rule = (
        f"(BnB+, the base trained again, must equal its base within +-{tau:.2f} points at every n, and every base "
        "must be flat at the end)"
    )
    passed = (
        f"No shipped study has passed the convergence check yet {rule}, so none of their co-adaptation dip or "
        "lasting boost verdicts is evidence."
        if statuses == {"not converged"}
        else f"The shipped studies' convergence checks: {', '.join(sorted(statuses))} {rule}; a co-adaptation dip or "
        "lasting boost verdict is evidence only where its study converged."
    )
    return "\n".join(
        [
            passed,
            "",
            "Differences in percentage points of top-1 on half B: estimate (95% t-interval over seeds; Holm's adjusted "
            "interval over the rows of the study's report), the n pooled, the seeds, the verdict. The dip and the "
            "boost need converged networks; the dissimilar-split and random-feature panels have "
            f"{' or '.join(map(str, lower))} seed{'' if lower == [1] else 's'}"
            f"{': no interval' if lower == [1] else ''}.",
            "",
            *lines,
            "",
            f"{pair.label} against {other.label} at the same schedule: {differs} of {len(tested)} quantities differ "
            f"after Holm's adjustment; the nearest, {nearest.contrast} at n = {nearest.n}, is "
            f"{_points(nearest.difference.estimate)} points (Welch {_points(nearest.difference.low)} to "
            f"{_points(nearest.difference.high)}; Holm {_points(adjusted.low)} to {_points(adjusted.high)}, "
            f"p = {nearest.p_holm:.2g}).{training_caveat(pair, other)}",
        ]
    )


def training_caveat(pair: Study, other: Study) -> str:
    """What the two studies' convergence checks allow a difference between them to mean, as a sentence after a space
    ('' when both converged)."""
    unconverged = [study.label for study in (pair, other) if study.convergence_status != "converged"]
    if not unconverged:
        return ""
    who = "Neither study is" if len(unconverged) == 2 else f"{unconverged[0]} is not"
    return f" {who} converged, so a difference could also be one of training length."


def _convergence(rows: list[Row], verdict: Convergence) -> list[str]:
    tau = 100 * verdict.tolerance
    failing = set(verdict.failures)
    lines = [
        f"### Convergence: **{verdict.status}**",
        "",
        f"The check ([how it works](study.md#the-report)): BnB+, the base trained again, must equal its base "
        f"within +-{tau:.2f} points (its 95% interval inside) at every n and pooled; every base must be flat "
        "over its last quarter of validations.",
        "",
    ]
    lines += [
        f"- {'FAIL' if any(f.startswith(line) for f in failing) else 'pass'}: {line}"
        for line in verdict.measured
        if line.startswith("BnB+ - base")
    ]
    rises = [found[0] for row in rows if is_base(row) and (found := plateau_rise(row.get("val_top1_history") or []))]
    if rises:
        above = [rise for rise in rises if rise > verdict.tolerance]
        lines.append(
            f"- bases: {len(above)} of {len(rises)} rise more than {tau:.2f} points over their last quarter "
            f"of validations (every rise from {_points(min(rises))} to {_points(max(rises))} points)"
        )
    bases = sorted(figure2_target_bases(rows), key=lambda row: row["seed"])
    lines.append(
        "- Figure 2's bases (top-1, percent): "
        + ", ".join(f"{row['target_half']} seed {row['seed']} {100 * (value(row) or 0):.2f}" for row in bases)
    )
    return lines


def _panels(rows: list[Row]) -> list[str]:
    lines = []
    for curve, name in (
        ("AnB, dissimilar split", "the dissimilar split's AnB"),
        ("random features", "random frozen features"),
    ):
        values = relative_values(rows).get(curve, {})
        per_n = [f"n = {n}: {', '.join(_points(v) for v in units.values())}" for n, units in values.items() if n]
        if per_n:
            seeds = max(len(units) for units in values.values())
            lines.append(f"- {name}, each minus its own base ({_count(seeds, 'seed')}, points): " + "; ".join(per_n))
    return lines


def _grid(rows: list[Row]) -> str:
    """What the table holds: its networks, Figure 2's families, n and seeds, the lower panels' seeds, the schedule."""
    figure2 = [row for row in rows if is_random_split(row["split"]) and row["family"] in FIGURE2_FAMILIES]
    splits = ", ".join(sorted({row["split"] for row in figure2}))
    ns = ", ".join(map(str, sorted({row["n"] for row in figure2})))
    run = ", ".join(family for family in FIGURE2_FAMILIES if any(row["family"] == family for row in figure2))
    dissimilar = _seeds([row for row in rows if row["split"] == "dissimilar"], ("AnB",))
    steps = ", ".join(map(str, sorted({row["steps"] for row in rows})))
    best = ", ".join(map(str, sorted({row["best_k"] for row in rows})))
    return (
        f"{len(rows)} networks: Figure 2 on {splits} ({run} at n = {ns}) with "
        f"{_count(_seeds(figure2, FIGURE2_FAMILIES), 'seed')}; the dissimilar split with "
        f"{_count(dissimilar, 'seed')} and "
        f"random features with {_count(_seeds(rows, (RANDOM_FEATURES,)), 'seed')}; {steps} steps per network, the "
        f"paper's metric over the best {best} validations."
    )


def section(page: StudyPage, rows: list[Row], verdict: Convergence, found: list[EffectRow]) -> str:
    """One study's section of ``docs/results.md``."""
    name = page.name
    lines = [
        f"## {page.title}",
        "",
        page.about,
        "",
        _grid(rows),
        "",
        f"Files: [results]({name}_results.csv) (one row per network), [summary]({name}_summary.csv) (every "
        f"plotted point with its interval), [effects]({name}_effects.md) ([csv]({name}_effects.csv)), "
        f"[convergence]({name}_convergence.txt) ([json]({name}_convergence.json)).",
        "",
        f"![Figure 2 of {name} ({verdict.status})]({name}_figure2.png)",
        f"![Figure 3 of {name}: dissimilar split, random features ({verdict.status})]({name}_figure3.png)",
        "",
        *_convergence(rows, verdict),
        "",
        "### Readings",
        "",
        *[f"- {text}" for text in page.readings],
        *_panels(rows),
        "",
        "### Effects",
        "",
        markdown(found, verdict).split("\n\n")[-1].rstrip("\n"),
    ]
    return "\n".join(lines)


def reports(docs: Path) -> dict[str, Report]:
    """Every study of :data:`STUDIES`: its table (``docs/<name>_results.csv``), convergence check and effects."""
    out = {}
    for page in STUDIES:
        rows = read_table(docs / f"{page.name}_results.csv")
        verdict = check(rows)
        out[page.name] = rows, verdict, effects(rows, None, verdict)
    return out


def pages(root: Path = ROOT) -> dict[str, str]:
    """Every text file the command writes, its path relative to ``root`` -> its text (README.md: the whole file
    with the headline between its markers)."""
    docs = root / "docs"
    found = reports(docs)
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (rows, verdict, _) in found.items():
            folder = Path(scratch) / name
            folder.mkdir()
            if (docs / f"{name}_cka.csv").is_file():  # the study's layer-similarity table, shipped beside its results
                shutil.copy(docs / f"{name}_cka.csv", folder / "cka.csv")
            written = write_tables(rows, folder, verdict, None, read_similarity(folder / "cka.csv"))
            out |= {f"docs/{name}_{path.name}": path.read_text() for path in written}
        pair, other = _pair(found)
        written = write_comparison(Path(scratch) / "compare", pair, other)
        out |= {f"docs/{COMPARISON[4]}{path.suffix}": path.read_text() for path in written if path.suffix != ".png"}
    out["docs/results.md"] = results_page(found, pair, other)
    figure = f"![{HEADLINE_FIGURE_TITLE} ({found[COMPARISON[0]][1].status})](docs/{HEADLINE_FIGURE})"
    block = (
        f"{headline(found, pair, other)}\n\n{figure}\n\n"
        "Every figure, effect and check: [docs/results.md](docs/results.md)."
    )
    out["README.md"] = between_markers((root / "README.md").read_text(), block)
    return out


def _pair(found: dict[str, Report]) -> tuple[Study, Study]:
    left, right, left_label, right_label, _ = COMPARISON
    return (
        Study(left_label, found[left][0], [], found[left][1]),
        Study(right_label, found[right][0], [], found[right][1]),
    )


def results_page(found: dict[str, Report], pair: Study, other: Study) -> str:
    """``docs/results.md``: the headline, one section per study, the comparison."""
    left, right, _, _, prefix = COMPARISON
    return "\n".join(
        [
            "# Results",
            "",
            "<!-- Written by `python -m experiments.report.pages` from the results tables docs/*_results.csv: do not "
            "edit (tests/test_results_pages.py fails when a page differs from what the command writes). -->",
            "",
            "Every shipped study, re-reported from its results table by the study's own report (`experiments/report/`; "
            "how to read it: [the report](study.md#the-report)). The schedules tried for a Fashion-MNIST study that "
            "passes the convergence check are in [BENCHMARKS.md](../BENCHMARKS.md#convergence-schedules).",
            "",
            "## At a glance",
            "",
            headline(found, pair, other),
            "",
            *[section(page, *found[page.name]) + "\n" for page in STUDIES],
            f"## {pair.label} against {other.label}",
            "",
            f"{COMPARISON_ABOUT} (`transferability-compare docs/{left}_results.csv "
            f"docs/{right}_results.csv --labels {pair.label} {other.label}`): n is a position in each network's stage "
            f"list ({COMPARISON_STAGES}).{training_caveat(pair, other)} Files: [{prefix}.md]({prefix}.md), "
            f"[{prefix}.csv]({prefix}.csv).",
            "",
            f"![{pair.label} (solid) against {other.label} (dashed): transfer curves]({prefix}.png)",
            "",
            compare_markdown(pair, other, compare(pair, other)).split("\n\n")[-1].rstrip("\n"),
            "",
        ]
    )


def between_markers(text: str, block: str, begin: str = BEGIN, end: str = END) -> str:
    """``text`` with what lies between ``begin`` and ``end`` (the results markers by default) replaced by ``block``.

    Raises:
        ValueError: the markers are not there once each, in order.
    """
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"README.md must hold the two markers once each, in order:\n{begin}\n{end}")
    head, rest = text.split(begin)
    return f"{head}{begin}\n{block}\n{end}{rest.split(end, 1)[1]}"


def draw_figures(root: Path = ROOT) -> list[Path]:
    """Redraw every study's Figure 2 and 3 and the comparison's figure from the results tables into ``docs/``."""
    from experiments.report import figures

    docs, written = root / "docs", []
    found = reports(docs)
    with tempfile.TemporaryDirectory() as scratch:
        for name, (rows, verdict, _) in found.items():
            similarity = read_similarity(docs / f"{name}_cka.csv")
            for path in figures.draw(rows, Path(scratch) / name, None, verdict.note(), *similarity_panel(similarity)):
                if path.suffix == ".png":
                    written.append(Path(shutil.copy(path, docs / f"{name}_{path.name}")))
        pair, other = _pair(found)
        png = Path(scratch) / "compare" / "compare.png"
        write_comparison(png.parent, pair, other)
        written.append(Path(shutil.copy(png, docs / f"{COMPARISON[4]}.png")))
    return written


def stale(root: Path = ROOT, written: dict[str, str] | None = None) -> list[str]:
    """The files whose text differs from what :func:`pages` writes (relative to ``root``; ``written``: its result,
    where already computed)."""
    return [
        name
        for name, text in (written or pages(root)).items()
        if not (root / name).is_file() or (root / name).read_text() != text
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Write the pages (0); ``--check``: write nothing, 1 when a file differs (each named)."""
    parser = argparse.ArgumentParser(prog="python -m experiments.report.pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming every file that differs")
    parser.add_argument("--figures", action="store_true", help="redraw the figures (PNG) as well")
    args = parser.parse_args(argv)
    if args.check:
        differ = stale(ROOT)
        for name in differ:
            print(
                f"{name} differs from what `python -m experiments.report.pages` writes: run it (never edit it)",
                file=sys.stderr,
            )
        return 1 if differ else 0
    for name, text in pages(ROOT).items():
        if not (ROOT / name).is_file() or (ROOT / name).read_text() != text:
            (ROOT / name).write_text(text)
            print(f"wrote {name}")
    if args.figures:
        for path in draw_figures(ROOT):
            print(f"drew {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
