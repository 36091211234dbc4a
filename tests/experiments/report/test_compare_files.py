"""The comparison's files and command line: ``transferability-compare`` writes the table, the figure and the CSV, or
prints the table; a folder without results or with a corrupt table is refused with status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.report.cka_table import PairCKA, write_cka_table
from experiments.report.compare_files import main
from experiments.report.table import write_table
from tests.helpers.planted import planted_rows, right_rows


def test_cli_writes_table_figure_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, rows in (("caffenet", planted_rows(seeds=3)), ("vit", right_rows())):
        (tmp_path / name).mkdir()
        write_table(tmp_path / name / "results.csv", rows)
    write_cka_table(tmp_path / "vit" / "cka.csv", [PairCKA("random0_s0", {"embed": 0.9, "block1": 0.5})])
    out = tmp_path / "out"
    assert (
        main(
            [str(tmp_path / "caffenet"), str(tmp_path / "vit"), "--labels", "CaffeNet", "ViT", "--output_dir", str(out)]
        )
        == 0
    )
    assert (out / "compare.png").stat().st_size > 10_000
    header, *lines = (out / "compare.csv").read_text().splitlines()
    assert header.startswith("quantity,contrast,n,left_stage,right_stage,left_mean")
    assert any(line.startswith("frozen transfer,AnB - base,1,,embed,") for line in lines)
    assert "# CaffeNet against ViT" in (out / "compare.md").read_text()
    assert main([str(tmp_path / "caffenet"), str(tmp_path / "vit")]) == 0  # no output_dir: printed
    assert "# caffenet against vit" in capsys.readouterr().out


def test_cli_refuses_a_folder_without_results_or_with_a_corrupt_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good").mkdir()
    write_table(tmp_path / "good" / "results.csv", planted_rows(seeds=2))
    assert main([str(tmp_path / "empty"), str(tmp_path / "good")]) == 2
    assert "empty' has no results.csv" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.csv").write_text("not,a,results,table\n1,2,3,4\n")
    assert main([str(tmp_path / "good"), str(tmp_path / "bad")]) == 2
    assert "bad/results.csv" in capsys.readouterr().err
