"""The shipped results pages are what ``python -m experiments.report.pages`` writes from the results tables: a hand
edit of a number (in ``docs/results.md``, a study's effects or convergence file, or the README's headline) fails."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from experiments.report import pages, shipped
from experiments.report.compare import Study
from experiments.report.convergence import Convergence, Status
from tests.helpers import REPO
from tests.helpers.planted import planted_rows


@pytest.fixture(scope="module")
def written() -> dict[str, str]:
    """What the command writes from the committed tables."""
    return pages.pages(REPO)


def test_the_committed_pages_are_what_the_command_writes(written: dict[str, str]) -> None:
    assert pages.stale(REPO, written) == [], (
        "run `.venv/bin/python -m experiments.report.pages` (never edit these files by hand)"
    )


def test_every_study_file_and_page_is_written(written: dict[str, str]) -> None:
    for study in shipped.STUDIES:
        assert {
            f"docs/{study.name}_{name}"
            for name in ("summary.csv", "effects.csv", "effects.md", "convergence.json", "convergence.txt")
        } <= set(written)
    assert {"docs/results.md", "README.md", "docs/fmnist_vit_vs_caffenet.md", "docs/fmnist_vit_vs_caffenet.csv"} <= set(
        written
    )
    results = written["docs/results.md"]
    assert [line for line in results.splitlines() if line.startswith("## ")] == [
        "## At a glance",
        *[f"## {study.title}" for study in shipped.STUDIES],
        "## CaffeNet against ViT",
    ]
    # the numbers come from the tables: the 4000-step study's specificity, its seeds and its verdict
    assert "-28.03 (-33.59 to -22.48; Holm -46.22 to -9.85), n = 7, 3 seeds: **shown**" in written["README.md"]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The README and docs/ in a folder of their own."""
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    return tmp_path


def test_a_hand_edit_is_found_and_the_command_undoes_it(copy: Path) -> None:
    results, readme = copy / "docs" / "results.md", copy / "README.md"
    results.write_text(results.read_text().replace("-28.03", "-30.00", 1))
    readme.write_text(readme.read_text().replace("**shown**", "**not shown**", 1))
    effects = copy / "docs" / "fmnist_vit_effects.md"
    effects.write_text(effects.read_text() + "a note\n")
    assert pages.stale(copy) == ["docs/fmnist_vit_effects.md", "docs/results.md", "README.md"]
    # prose outside the README's markers is the README's own
    readme.write_text(readme.read_text().replace("## Tests", "## The tests"))
    for name, text in pages.pages(copy).items():
        (copy / name).write_text(text)
    assert pages.stale(copy) == [] and "## The tests" in readme.read_text()


def test_the_readme_needs_its_markers() -> None:
    text = f"a\n{pages.BEGIN}\nold\n{pages.END}\nb\n"
    assert pages.between_markers(text, "new") == f"a\n{pages.BEGIN}\nnew\n{pages.END}\nb\n"
    for broken in ("no markers", f"{pages.END}\n{pages.BEGIN}\n", f"{pages.BEGIN}\n{pages.BEGIN}\n{pages.END}\n"):
        with pytest.raises(ValueError, match="markers"):
            pages.between_markers(broken, "new")


def test_the_figures_are_redrawn_from_the_tables(copy: Path) -> None:
    for path in (copy / "docs").glob("*.png"):
        path.unlink()
    drawn = pages.draw_figures(copy)
    names = sorted(path.name for path in drawn)
    assert names == sorted(
        [f"{study.name}_figure{n}.png" for study in shipped.STUDIES for n in (2, 3)] + ["fmnist_vit_vs_caffenet.png"]
    )
    assert all(path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG" for path in drawn)


def test_the_comparisons_caveat_follows_the_studies_convergence() -> None:
    """The pages say a difference may be one of training length only for a study that did not converge."""
    rows = planted_rows(seeds=2)

    def study(label: str, status: Status) -> Study:
        return Study(label, rows, [], Convergence(status))

    assert pages.training_caveat(study("L", "converged"), study("R", "converged")) == ""
    assert pages.training_caveat(study("L", "converged"), study("R", "unchecked")).startswith(" R is not converged")
    assert pages.training_caveat(study("L", "not converged"), study("R", "unchecked")).startswith(" Neither study")
