"""The summary of a results table: every plotted point's mean, 95 % interval, count, std, min and max."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from experiments.report import curves
from experiments.report.intervals import interval_columns
from experiments.report.table import Points, Row
from models.files import write_atomic

SUMMARY_FIELDS: tuple[str, ...] = (
    "panel",
    "curve",
    "n",
    "count",
    "mean",
    "ci_low",
    "ci_high",
    "std",
    "min",
    "max",
    "convergence",
)


def summary(rows: list[Row]) -> list[Row]:
    """Every plotted point: mean over its units, its 95 % t-interval, count, std, min and max.

    ``n`` is the layer, except in the ``reduced_data`` panel, where it is the images per class. Panels:
    ``figure2`` (Figure 2's networks: ``base`` at n=0, each family from n=1), ``figure2_minus_base`` (each
    network minus the base of its replicate, :func:`experiments.report.curves.figure2_differences`),
    ``dissimilar``, ``random_features``, ``reduced_data`` and ``relative`` (the units of
    :func:`experiments.report.curves.relative_values`); with a pretrained base, ``pretrained`` and
    ``pretrained_minus_base``: Figure 2's two panels for it, where A is the weights file's pretraining data
    (e.g. ImageNet), not a half, and B the target.

    The interval is ``mean ± t(0.975, count-1) · std / sqrt(count)`` over the point's units (networks, one
    per seed; replicates in ``figure2_minus_base``); with one unit it is undefined and ``ci_low``/``ci_high``
    are empty.
    """
    panels: list[tuple[str, str, Points]] = [
        ("figure2", name, pts) for name, pts in curves.figure2_points(rows).items()
    ]
    panels += [("figure2_minus_base", name, pts) for name, pts in curves.figure2_differences(rows).items()]
    if curves.figure2_rows(rows, "pretrained"):
        panels += [("pretrained", name, pts) for name, pts in curves.figure2_points(rows, "pretrained").items()]
        panels += [
            ("pretrained_minus_base", name, pts) for name, pts in curves.figure2_differences(rows, "pretrained").items()
        ]
    panels += [("dissimilar", f"to {target}", pts) for target, pts in curves.dissimilar_points(rows).items()]
    panels.append(("random_features", "random", curves.random_features_points(rows)))
    panels.append(("reduced_data", "images per class", curves.reduced_data_points(rows)))  # n: images per class
    panels += [("relative", name, pts) for name, pts in curves.relative_points(rows).items()]
    out = []
    for panel, curve, points in panels:
        for n, values in points.items():
            out.append({"panel": panel, "curve": curve, "n": n, "count": len(values), **interval_columns(values)})
    return out


def write_summary(path: Path, rows: list[Row], convergence: str = "not checked") -> None:
    """Write :func:`summary` as CSV (``SUMMARY_FIELDS``; an undefined interval as empty cells), atomically; every
    row's ``convergence`` column holds the study's convergence status (``experiments.report.convergence``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(
        {key: "" if row.get(key) is None else row[key] for key in SUMMARY_FIELDS} | {"convergence": convergence}
        for row in summary(rows)
    )
    write_atomic(path, buffer.getvalue())
