"""The reduced-data panel: base networks on the first N images of each class, their own solver, their figure."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from experiments.report import figures
from experiments.report.curves import reduced_data_points
from experiments.report.paper import paper_rows
from experiments.report.summary import summary
from experiments.report.table import read_table, write_table
from experiments.study.config import build_parser, study_from_config
from experiments.study.grid import Cell, Grid, ReducedDataCells, expand
from experiments.study.plan import StudyPlan
from tests.helpers import REPO

STUDIES = REPO / "experiments" / "configs" / "studies"


def whole(split: str) -> tuple[str, ...]:
    return ("all",) if split == "whole" else ("A", "B")


def test_the_panel_expands_to_one_base_per_count() -> None:
    """One reduced base per N and seed, named and classed as such; a bad N or a two-half split is refused."""
    cells = expand(Grid(figure2=None, seeds=[0, 1], reduced_data=ReducedDataCells(images_per_class=[1, 250])), whole)
    assert [(cell.name, cell.family) for cell in cells] == [
        ("whole_base-all-1perclass_s0", "reduced"),
        ("whole_base-all-250perclass_s0", "reduced"),
        ("whole_base-all-1perclass_s1", "reduced"),
        ("whole_base-all-250perclass_s1", "reduced"),
    ]
    assert cells[0].network_seed != Cell("whole", None, "all", 0, None, 0).network_seed
    with pytest.raises(ValueError, match="images_per_class must be positive"):
        expand(Grid(figure2=None, reduced_data=ReducedDataCells(images_per_class=[0])), whole)
    with pytest.raises(ValueError, match="one half"):
        expand(Grid(figure2=None, reduced_data=ReducedDataCells(split="random0")), whole)
    with pytest.raises(ValueError, match="base networks"):
        Cell("random0", "A", "B", 3, "frozen", 0, images_per_class=5)


def test_the_imagenet_preset_trains_reduced_cells_with_the_authors_solver(tmp_path: Path) -> None:
    """A reduced cell's config has its N and the supplement's solver; the other cells keep the paper's."""
    parser = build_parser()
    config = parser.parse_args(["--config", str(STUDIES / "imagenet_paper.yaml"), "--output_dir", str(tmp_path)])
    plan = StudyPlan(study_from_config(parser, config))
    cells = plan.cells()
    assert len(cells) == 212 and sum(cell.family == "reduced" for cell in cells) == 12
    reduced = next(cell for cell in cells if cell.images_per_class == 250)
    base = next(cell for cell in cells if cell.family == "base")
    plan.write_study_file()  # study.json: the cells' W&B runs take their ids from it
    plan.prepare([reduced, base])
    reduced_config, base_config = (yaml.safe_load(plan.folder(cell).config.read_text()) for cell in (reduced, base))
    assert reduced_config["data"]["init_args"]["images_per_class"] == 250
    assert (
        reduced_config["model"]["init_args"]["lr"],
        reduced_config["model"]["init_args"]["lr_step_iters"],
        reduced_config["trainer"]["max_steps"],
    ) == (0.0125, 64000, 200000)
    assert base_config["data"]["init_args"]["images_per_class"] is None
    assert (base_config["model"]["init_args"]["lr"], base_config["trainer"]["max_steps"]) == (0.01, 450000)


def test_the_papers_reduced_runs_make_the_panel(tmp_path: Path) -> None:
    """The paper's 12 runs round-trip through a results table, give the summary rows and draw the figure."""
    rows = [row for row in paper_rows() if row["family"] == "reduced"]
    assert [row["images_per_class"] for row in rows] == [1, 2, 5, 10, 25, 50, 100, 250, 500, 750, 1000, 1300]
    table = tmp_path / "results.csv"
    write_table(table, rows)
    back = read_table(table)
    points = reduced_data_points(back)
    assert points[1300] == [pytest.approx(0.551762)] and points[5] == [pytest.approx(0.001084)]
    panel = [row for row in summary(back) if row["panel"] == "reduced_data"]
    assert [row["n"] for row in panel] == sorted(points) and all(row["count"] == 1 for row in panel)
    written = figures.draw(back, tmp_path / "figures", paper_rows())
    assert tmp_path / "figures" / "reduced_data.png" in written
    others = [row for row in paper_rows() if row["family"] != "reduced"]
    assert "reduced_data.png" not in {path.name for path in figures.draw(others, tmp_path / "others")}
