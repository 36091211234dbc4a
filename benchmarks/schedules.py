"""Convergence schedules: which training schedule makes a study's networks pass the convergence check.

Each schedule is a study of the bases and the BnB+ networks alone (``experiments/configs/studies/schedule_search/``:
the converged preset's bases A and B and BnB+ on B at a few n, 3 seeds), run like any study. This reads their
folders and prints one Markdown row per schedule and n: the schedule (steps, learning rate, step of its drop),
``BnB+(n) - base`` with its 95 % t-interval over seeds, whether it lies inside +-tau (the check's primary rule,
``experiments.report.convergence``), the bases' largest rise over their last quarter of validations, and the
mean wall time of one network.

    python -m benchmarks.schedules docs/fmnist_4000_steps_results.csv studies/search_high studies/search_long
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from benchmarks.common import machine
from experiments.report.convergence import TOLERANCE, check, equivalent, plateau_rise, selffer_differences
from experiments.report.intervals import mean_interval
from experiments.report.table import METRIC, Row, is_base, read_table


def schedule(folder: Path) -> str:
    """The schedule of a study's cells, from its first cell's config: ``8000 steps, lr 0.01, x0.1 every 6000``
    and, for reduced data, ``200 images/class`` (a results table given alone: the steps its rows record)."""
    configs = sorted((folder / "cells").glob("*/config.yaml")) if folder.is_dir() else []
    if not configs:
        steps = sorted({int(row["steps"]) for row in read_table(folder)})
        return f"{'/'.join(map(str, steps))} steps (from {folder.name})"
    config = yaml.safe_load(configs[0].read_text())
    model = config["model"].get("init_args", config["model"])
    images = ((config.get("data") or {}).get("init_args") or {}).get("images_per_class")
    return (
        f"{config['trainer']['max_steps']} steps, lr {model.get('lr', 0.01):g}, "
        f"x0.1 every {model.get('lr_step_iters')}" + (f", {images} images/class" if images else "")
    )


def doubling_rows(tables: dict[str, list[Row]]) -> list[str]:
    """BnB+ after T steps (from a base of T) against a base trained 2T steps on the same data, paired by seed:
    the Markdown rows for every pair of schedules whose steps differ by a factor of two. Near zero, BnB+'s gain
    over its base is what the base itself gains from twice the training (the base is under-trained)."""

    def key(row: Row) -> tuple[int, str]:
        return int(row["steps"]), str(row.get("images_per_class") or "")

    bases: dict[tuple[int, str], dict[int, float]] = {}
    selffers: dict[tuple[int, str, int], dict[int, float]] = {}
    for rows in tables.values():
        for row in rows:
            if is_base(row) and row["target_half"] == "B":
                bases.setdefault(key(row), {})[int(row["seed"])] = float(row[METRIC])
            elif row["family"] == "BnB+":
                selffers.setdefault((*key(row), int(row["n"])), {})[int(row["seed"])] = float(row[METRIC])
    out = []
    for (steps, images, n), values in sorted(selffers.items()):
        longer = bases.get((2 * steps, images), {})
        differences = [values[seed] - longer[seed] for seed in sorted(values) if seed in longer]
        if not differences:
            continue
        interval = mean_interval(differences)
        ci = (
            f"{100 * interval.low:+.2f} to {100 * interval.high:+.2f}"
            if interval.low is not None and interval.high is not None
            else "no interval"
        )
        out.append(
            f"| {steps} + {steps} | {2 * steps} | {images or 'all'} | {n} | "
            f"{100 * interval.estimate:+.2f} ({ci}), {interval.count} seeds |"
        )
    return out


def rows_of(folder: Path, rows: list[Row], tolerance: float) -> list[str]:
    """The Markdown rows of one schedule's study."""
    name = schedule(folder)
    rises = [plateau_rise(row["val_top1_history"] or []) for row in rows if is_base(row)]
    rise = max((found[0] for found in rises if found is not None), default=float("nan"))
    seconds = statistics.fmean(float(row["wall_time_s"]) for row in rows if row.get("wall_time_s"))
    status = check(rows, tolerance).status
    out = []
    for n, units in selffer_differences(rows).items():
        interval = mean_interval(list(units.values()))
        inside = equivalent(interval, tolerance)
        ci = (
            f"{100 * interval.low:+.2f} to {100 * interval.high:+.2f}"
            if interval.low is not None and interval.high is not None
            else "no interval"
        )
        seeds = f"{interval.count} {'seed' if interval.count == 1 else 'seeds'}"
        out.append(
            f"| {folder.name} | {name} | {n} | {100 * interval.estimate:+.2f} ({ci}), {seeds} | "
            f"{'yes' if inside else 'no'} | {100 * rise:+.2f} | {seconds:.0f} | {status} |"
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.schedules", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "folders",
        nargs="+",
        type=Path,
        help="the output_dir of each schedule's study, or a results table (e.g. a docs/ one)",
    )
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="tau, a fraction of top-1 (0.005)")
    args = parser.parse_args(argv)
    print(f"{datetime.date.today()}, {machine()}; tau = {100 * args.tolerance:.2f} points\n")
    print(
        "| study | schedule | n | BnB+ - base, points (95% CI), seeds | inside +-tau | largest base rise over "
        "its last quarter, points | s per network | check (these cells) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    tables = {}
    for folder in args.folders:
        table = folder if folder.is_file() else folder / "results.csv"
        if not table.is_file():
            print(f"python -m benchmarks.schedules: {folder} has no results.csv (run its study first)", file=sys.stderr)
            return 2
        tables[str(folder)] = read_table(table)
        for line in rows_of(folder, tables[str(folder)], args.tolerance):
            print(line)
    doubled = doubling_rows(tables)
    if doubled:
        print(
            "\n| BnB+ steps (base + its own) | base steps | images/class | n | BnB+ - the longer base, points "
            "(95% CI), seeds |"
        )
        print("|---|---|---|---|---|")
        print("\n".join(doubled))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
