"""The convergence check: did the study's networks train long enough for its comparisons to mean anything?

A check that can fail, over the results table alone (a pure function, :func:`check`); ``tolerance`` (tau,
0.005 = 0.5 points of top-1 by default) is a named setting of the study's report (``report.tolerance``).

1. **Selffer equivalence (the paper's own control).** A BnB+ network is its base trained again: layers 1..n
   copied from the base, everything fine-tuned for a whole schedule. Once the base has converged, BnB+
   equals the base (in the paper, to within noise). Per unit ``(split, target half, seed)`` the paired
   difference ``BnB+(n) - base`` is taken; at every n run, and pooled (per unit, the mean over the n it
   has), its 95 % t-interval over units must lie inside ``[-tau, +tau]``: the difference is shown to be
   *equivalent to zero*, not merely not shown to differ. One unit gives no interval, so equivalence cannot
   be shown: the rule fails (run at least 2 seeds). No BnB+ network with its base: unchecked.
2. **Plateau.** Every base network (n = 0) ends on a plateau: over the last quarter of its validations
   (at least ``min_window`` of them), the least-squares line's rise from the window's first validation to
   its last is at most tau. The presets drop the learning rate at or before three quarters of training, so
   the window is at the final rate; a drop inside the window shows as a rise and fails, as it should (too
   short a tail at the final rate). A base without enough recorded validations is unchecked.

The status is ``not converged`` if a rule fails (one line per failing network or n), else ``unchecked``
if something could not be checked, else ``converged``. Verdicts that need converged networks (the
co-adaptation dip, the lasting boost) are read as not interpretable unless the status is ``converged``
(``experiments.report.effects``), and an effect smaller than twice tau is within the check's tolerance.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from experiments.report.curves import COMPARISONS, figure2_unit_differences
from experiments.report.intervals import Interval, mean_interval
from experiments.report.table import Replicate, Row, is_base
from models.files import write_atomic

Status = Literal["converged", "not converged", "unchecked"]
TOLERANCE = 0.005  # tau: 0.5 points of top-1
MIN_WINDOW = 3  # validations in the plateau window at the least


@dataclass(frozen=True)
class Convergence:
    """The check's verdict.

    Args:
        status: ``converged``, ``not converged`` or ``unchecked`` (module docstring).
        failures: One line per failing network or n.
        unchecked: One line per network or rule that could not be checked, and why.
        settings: The rules' parameters (``tolerance``, ``min_window``).
        measured: One line per checked network or n: what was measured, passing or not.
    """

    status: Status
    failures: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    settings: dict[str, float] = field(default_factory=dict)
    measured: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        """Whether the check passed: only then do the dip and the boost mean anything."""
        return self.status == "converged"

    @property
    def tolerance(self) -> float:
        """tau: the largest BnB+ - base difference (and base rise) the check accepts, as a fraction."""
        return float(self.settings.get("tolerance", TOLERANCE))

    def note(self) -> str:
        """The one-line status for figure captions and the README, e.g. ``NOT CONVERGED: ...``."""
        tau = f"+-{100 * self.tolerance:.2f} points"
        if self.status == "converged":
            return (
                f"convergence check: converged (BnB+ - base inside {tau} at every n; "
                f"every base's rise over its last quarter <= {100 * self.tolerance:.2f} points)"
            )
        if self.status == "unchecked":
            return f"convergence UNCHECKED: {self.unchecked[0]} (dip and boost not interpretable)"
        more = f" (+{len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        return f"NOT CONVERGED: {self.failures[0]}{more}; dip and boost not interpretable"

    def text(self) -> str:
        """The verdict, the rules' settings and every line, as plain text."""
        tau = 100 * self.tolerance
        rules = (
            f"BnB+(n) - base, paired by (split, half, seed): its 95% t-interval over units inside "
            f"+-{tau:.2f} points at every n and pooled over n; every base: the least-squares rise over "
            f"its last quarter of validations (at least {self.settings.get('min_window', MIN_WINDOW):g}) "
            f"<= {tau:.2f} points"
        )
        lines = [f"convergence check: {self.status}", f"rules: {rules}"]
        lines += [f"FAIL {line}" for line in self.failures] + [f"unchecked: {line}" for line in self.unchecked]
        lines += [f"measured: {line}" for line in self.measured]
        return "\n".join(lines) + "\n"


def check(rows: list[Row], tolerance: float = TOLERANCE, min_window: int = MIN_WINDOW) -> Convergence:
    """Check ``rows`` against the two rules of the module docstring.

    Args:
        rows: The results table (``val_top1_history`` may be None: that base's plateau is unchecked).
        tolerance: tau, as a fraction of top-1 (0.005: 0.5 points).
        min_window: The fewest validations the plateau window holds.

    Raises:
        ValueError: ``tolerance`` not positive or ``min_window`` below 2.
    """
    if not tolerance > 0 or min_window < 2:
        raise ValueError(f"convergence tolerance must be > 0 and min_window >= 2, got {tolerance}, {min_window}")
    failures: list[str] = []
    unchecked: list[str] = []
    measured: list[str] = []
    _selffer_rule(rows, tolerance, failures, unchecked, measured)
    for row in rows:
        if is_base(row):
            _plateau_rule(row, tolerance, min_window, failures, unchecked, measured)
    status: Status = "not converged" if failures else "unchecked" if unchecked else "converged"
    return Convergence(status, failures, unchecked, {"tolerance": tolerance, "min_window": min_window}, measured)


def selffer_differences(rows: list[Row]) -> dict[int, dict[Replicate, float]]:
    """n -> unit ``(split, target half, seed)`` -> BnB+(n) - its base, over the BnB+ networks of the random splits
    and of a pretrained base's target (its units are its own: another split)."""
    per_n: dict[int, dict[Replicate, float]] = defaultdict(dict)
    for comparison in COMPARISONS:
        for n, units in figure2_unit_differences(rows, comparison).get("BnB+", {}).items():
            per_n[n].update(units)
    return dict(sorted(per_n.items()))


def _selffer_rule(
    rows: list[Row], tolerance: float, failures: list[str], unchecked: list[str], measured: list[str]
) -> None:
    per_n = selffer_differences(rows)
    if not per_n:
        unchecked.append("BnB+ against its base: no BnB+ network with its base in the table")
        return
    pooled: dict[Replicate, list[float]] = defaultdict(list)
    for units in per_n.values():
        for unit, difference in units.items():
            pooled[unit].append(difference)
    checks = [(f"n={n}", list(units.values())) for n, units in per_n.items()]
    if len(per_n) > 1:
        checks.append((f"pooled over n={','.join(map(str, per_n))}", [statistics.fmean(v) for v in pooled.values()]))
    for where, differences in checks:
        interval = mean_interval(differences)
        each = ", ".join(f"{100 * d:+.2f}" for d in differences)
        line = f"BnB+ - base, {where}: {_describe(interval)} over {len(differences)} unit(s) ({each})"
        measured.append(line)
        if not interval.defined:
            failures.append(
                f"{line}: one unit gives no interval, so equivalence to zero cannot be shown (run at least 2 seeds)"
            )
        elif not equivalent(interval, tolerance):
            failures.append(f"{line}: the interval is not inside +-{100 * tolerance:.2f} points")


def equivalent(interval: Interval, tolerance: float) -> bool:
    """Whether ``interval`` shows its difference equivalent to zero: defined and inside ``[-tolerance, +tolerance]``."""
    return (
        interval.low is not None
        and interval.high is not None  # defined
        and -tolerance <= interval.low
        and interval.high <= tolerance
    )


def plateau_rise(history: Sequence[float], min_window: int = MIN_WINDOW) -> tuple[float, int] | None:
    """The least-squares rise over the last quarter of ``history`` (at least ``min_window`` values), and the
    window's length; None where the history is shorter than ``min_window``."""
    window = max(min_window, math.ceil(len(history) / 4))
    if len(history) < window:
        return None
    values = list(history[-window:])
    steps = range(window)
    mean_step, mean_value = statistics.fmean(steps), statistics.fmean(values)
    slope = sum((s - mean_step) * (v - mean_value) for s, v in zip(steps, values)) / sum(
        (s - mean_step) ** 2 for s in steps
    )
    return slope * (window - 1), window


def _plateau_rule(
    row: Row, tolerance: float, min_window: int, failures: list[str], unchecked: list[str], measured: list[str]
) -> None:
    history = row.get("val_top1_history") or []
    found = plateau_rise(history, min_window)
    if found is None:
        unchecked.append(f"{row['cell']}: {len(history)} validations recorded, the plateau needs {min_window}")
        return
    rise, window = found
    tail = ", ".join(f"{v:.4f}" for v in history[-window:])
    line = f"{row['cell']}: rise over its last {window} validations {100 * rise:+.2f} points ({tail})"
    measured.append(line)
    if rise > tolerance:
        failures.append(f"{line}: still rising, more than {100 * tolerance:.2f} points")


def _describe(interval: Interval) -> str:
    estimate = f"{100 * interval.estimate:+.2f}"
    if interval.low is None or interval.high is None:  # not defined
        return f"{estimate} points (no interval)"
    return f"{estimate} points (95% CI {100 * interval.low:+.2f} to {100 * interval.high:+.2f})"


def read_convergence(folder: Path) -> Convergence | None:
    """The verdict a study's ``convergence.json`` holds, or None where there is none."""
    path = folder / "convergence.json"
    if not path.is_file():
        return None
    return Convergence(**json.loads(path.read_text()))


def write_convergence(folder: Path, verdict: Convergence) -> list[Path]:
    """Write ``convergence.json`` (the dataclass's fields) and ``convergence.txt`` (:meth:`Convergence.text`)."""
    write_atomic(folder / "convergence.json", json.dumps(asdict(verdict), indent=2) + "\n")
    write_atomic(folder / "convergence.txt", verdict.text())
    return [folder / "convergence.json", folder / "convergence.txt"]
