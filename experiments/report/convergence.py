"""The convergence check: did the study's networks train long enough for its comparisons to mean anything?

Two rules over the results table alone (a pure function, :func:`check`):

1. **Plateau.** Every base network (n = 0, any split) ends on a plateau: the ``last`` final values of
   its validation top-1 history (``val_top1_history``) span at most ``plateau_tolerance``
   (``max - min <= 0.005`` over the last 3 validations by default). A base whose history is missing
   or shorter than ``last`` is *unchecked*, not failed.
2. **BnB+ at the largest n against its base.** With ``n*`` the largest n of the BnB+ networks on the
   random splits, ``D`` is the mean over replicates ``(split, target half, seed)`` of
   ``BnB+(n*) - base``. The rule passes when ``|D| <= max(min_gap, spread)``, where ``spread`` is the
   sample standard deviation over seeds of those bases (0 with one base) and ``min_gap`` is 0.015:
   a selffer fine-tuned from its own base for a whole schedule lands on the base's accuracy once the
   base has converged, to within the seed spread. No BnB+ network, or none with its base: unchecked.

The verdict is ``failed`` if a rule fails (one line per failing network), else ``unchecked`` if
something could not be checked, else ``passed``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from experiments.report.curves import replicate, value
from experiments.report.table import Row, is_base, is_random_split
from models.files import write_atomic

Status = Literal["passed", "failed", "unchecked"]


@dataclass(frozen=True)
class Convergence:
    """The check's verdict.

    Args:
        status: ``passed``, ``failed`` or ``unchecked`` (module docstring).
        failures: One line per failing network.
        unchecked: One line per network or rule that could not be checked, and why.
        settings: The rules' parameters.
        measured: One line per checked network or rule: what was measured, passing or not.
    """

    status: Status
    failures: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    settings: dict[str, float] = field(default_factory=dict)
    measured: list[str] = field(default_factory=list)

    def note(self) -> str | None:
        """A one-line warning for the figures where the check failed; None otherwise."""
        if self.status != "failed":
            return None
        more = f" (+{len(self.failures) - 1} more, see convergence.txt)" if len(self.failures) > 1 else ""
        return f"Convergence check FAILED: {self.failures[0]}{more}"

    def text(self) -> str:
        """The verdict, the rules' settings and every line, as plain text."""
        rules = (f"plateau: max - min of the last {self.settings['last']:g} validation top-1 values "
                 f"<= {self.settings['plateau_tolerance']:g}; BnB+ at the largest n minus its base: "
                 f"|mean| <= max({self.settings['min_gap']:g}, seed std of the bases)")
        lines = [f"convergence check: {self.status}", f"rules: {rules}"]
        lines += [f"FAIL {line}" for line in self.failures] + [f"unchecked: {line}" for line in self.unchecked]
        lines += [f"measured: {line}" for line in self.measured]
        return "\n".join(lines) + "\n"


def check(rows: list[Row], last: int = 3, plateau_tolerance: float = 0.005, min_gap: float = 0.015) -> Convergence:
    """Check ``rows`` against the two rules of the module docstring.

    Args:
        rows: The results table (``val_top1_history`` may be None: that base is unchecked).
        last: How many final validations make the plateau.
        plateau_tolerance: The largest span (max - min) of those validations.
        min_gap: The smallest tolerance of ``|BnB+(n*) - base|``.
    """
    failures: list[str] = []
    unchecked: list[str] = []
    measured: list[str] = []
    for row in rows:
        if row["n"] != 0:
            continue
        history = row.get("val_top1_history") or []
        if len(history) < last:
            unchecked.append(f"{row['cell']}: {len(history)} validations recorded, the plateau needs {last}")
            continue
        span = max(history[-last:]) - min(history[-last:])
        tail = ", ".join(f"{v:.4f}" for v in history[-last:])
        measured.append(f"{row['cell']}: last {last} validations span {span:.4f} ({tail})")
        if span > plateau_tolerance:
            failures.append(f"{row['cell']}: not on a plateau, its last {last} validations span {span:.4f} "
                            f"> {plateau_tolerance:g} ({tail})")
    _selffer_rule(rows, min_gap, failures, unchecked, measured)
    status: Status = "failed" if failures else "unchecked" if unchecked else "passed"
    settings = {"last": last, "plateau_tolerance": plateau_tolerance, "min_gap": min_gap}
    return Convergence(status, failures, unchecked, settings, measured)


def _selffer_rule(rows: list[Row], min_gap: float, failures: list[str], unchecked: list[str],
                  measured: list[str]) -> None:
    selffers = [row for row in rows if row["family"] == "BnB+" and is_random_split(row["split"])
                and value(row) is not None]
    if not selffers:
        unchecked.append("BnB+ against its base: no BnB+ network in the table")
        return
    top = max(row["n"] for row in selffers)
    bases = {replicate(row): row for row in rows if is_base(row) and value(row) is not None}
    pairs = [(row, bases[replicate(row)]) for row in selffers if row["n"] == top and replicate(row) in bases]
    if not pairs:
        unchecked.append(f"BnB+ against its base: no BnB+ n={top} network has its base in the table")
        return
    differences = [value(selffer) - value(base) for selffer, base in pairs]
    mean = statistics.fmean(differences)
    spread = statistics.stdev([value(base) for _, base in pairs]) if len(pairs) > 1 else 0.0
    tolerance = max(min_gap, spread)
    measured.append(f"BnB+ n={top} minus its base: mean {mean:+.4f} over {len(pairs)} replicate(s) "
                    f"({', '.join(f'{d:+.4f}' for d in differences)}); tolerance +-{tolerance:.4f}")
    if abs(mean) > tolerance:
        for (selffer, base), difference in zip(pairs, differences):
            failures.append(f"{selffer['cell']}: BnB+ n={top} minus its base {base['cell']} is {difference:+.4f}; "
                            f"the mean over {len(pairs)} is {mean:+.4f}, beyond +-{tolerance:.4f} "
                            f"(max({min_gap:g}, seed std {spread:.4f}))")


def write_convergence(folder: Path, verdict: Convergence) -> list[Path]:
    """Write ``convergence.json`` (the dataclass's fields) and ``convergence.txt`` (:meth:`Convergence.text`)."""
    write_atomic(folder / "convergence.json", json.dumps(asdict(verdict), indent=2) + "\n")
    write_atomic(folder / "convergence.txt", verdict.text())
    return [folder / "convergence.json", folder / "convergence.txt"]
