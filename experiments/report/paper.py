"""The paper's own results (Yosinski et al. 2014), shipped in ``experiments/data``, as rows of our results table.

Every trained network of the authors' logs becomes one row in our vocabulary, so the figures overlay
the paper with the same code that draws a study. Where the numbers come from:
``experiments/data/README.md``.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from experiments.report.table import Row
from experiments.study.grid import Cell
from models.transfer import TransferMode

DATA_DIR = Path(__file__).parent.parent / "data"
PER_RUN = DATA_DIR / "per_run_summary.csv"
# The authors' half names; in their code natman A is natural and B man-made (the paper swapped them).
HALVES = {"halfnatmanA": "natural", "halfnatmanB": "manmade", "whole": "all"}


def _half(name: str) -> str | None:
    if name in ("", "random-init"):
        return None
    return HALVES.get(name, name[-1])  # half0A -> A


@cache
def paper_rows() -> tuple[Row, ...]:
    """One row per network of the paper (the reduced-data runs as ``reduced`` bases on ``whole``), with its metric."""
    rows = []
    with PER_RUN.open(newline="") as file:
        for run in csv.DictReader(file):
            split = run["split"] if run["split"] in ("natman", "whole") else f"random{run['split']}"
            n = int(run["n"])
            mode: TransferMode | None = None if n == 0 else "frozen" if run["frozen"] == "yes" else "finetune"
            if run["family"] == "reduced_data":  # target "<N> imgs/class"; reduced-1300 is every image
                cell = Cell("whole", None, "all", 0, None, 0, images_per_class=int(run["target"].split()[0]))
            else:
                target = _half(run["target"])
                if target is None:
                    raise ValueError(f"{PER_RUN}: a run without a target half: {run}")
                cell = Cell(split, _half(run["base"]), target, n, mode, 0)
            rows.append(
                {
                    "split": cell.split,
                    "base_half": cell.base,
                    "target_half": cell.target,
                    "n": n,
                    "mode": mode,
                    "family": cell.family,
                    "seed": 0,
                    "top1_best_k_mean": float(run["mean_top10_acc"]),
                    "best_k": 10,
                    "top1": float(run["final_acc"]),
                    "top5": None,
                    "epochs": None,
                    "steps": int(run["last_test_iter"]),
                    "wall_time_s": None,
                    "checkpoint": None,
                    "cell": run["run"],
                    "images_per_class": cell.images_per_class,
                }
            )
    return tuple(rows)
