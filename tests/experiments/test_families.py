"""The families' names have one home (experiments.families): cells are named by it, and no module restates one."""

from __future__ import annotations

import re
from pathlib import Path

from experiments import families
from experiments.study.grid import Cell

ROOT = Path(__file__).resolve().parents[2]
# A family chosen by a string written in place: ``row["family"] == "random"``, ``row["family"] in ("base", ...)``.
RESTATED = re.compile(r"""\["family"\]\s*(?:==|!=|in)\s*\(?[^)\n]*["'](base|random|reduced|pretrained)["']""")


def test_cells_are_named_by_the_family_constants() -> None:
    assert Cell("random0", None, "B", 0, None, 0).family == families.BASE + "B"
    assert Cell("dissimilar", None, "natural", 0, None, 0).family == families.BASE
    assert Cell("random0", None, "B", 3, "frozen", 0).family == families.RANDOM_FEATURES
    assert Cell("whole", None, "all", 0, None, 0, images_per_class=10).family == families.REDUCED_DATA
    assert [Cell("random0", base, "B", 3, mode, 0).family for base, mode in [("B", "frozen"), ("A", "frozen")]] == [
        "BnB",
        "AnB",
    ]


def test_no_module_chooses_rows_by_a_family_name_written_in_place() -> None:
    restated = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("experiments", "models", "callbacks", "datamodules", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if RESTATED.search(line)
    ]
    assert not restated, "use the constants of experiments.families:\n" + "\n".join(restated)


def test_the_pattern_sees_a_restated_name() -> None:
    assert RESTATED.search('if row["family"] == "random":')
    assert RESTATED.search('row["family"] in ("base", "AnB")')
    assert not RESTATED.search('row["family"] == RANDOM_FEATURES')
