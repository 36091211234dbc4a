"""The study step that computes the layer-similarity panel from finished base checkpoints, and the report that
draws it."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import yaml

from experiments.report import cka_table, figures
from experiments.report.table import write_table
from experiments.report.write import write_report
from experiments.study.similarity import SimilarityError, base_pairs, write_similarity
from models.caffenet_classifier import CaffeNetClassifier
from models.loading import save_untrained
from tests.helpers.cka import STAGES
from tests.helpers.studies import run_study, write_study
from tests.helpers.tiny_data import TINY_MODEL

CHANCE_BOUND = 0.08  # |chance| on 50 images, a mean of five permutations (measured: at most 0.031)


def save_base(root: Path, cell: str, half: str, seed: int) -> None:
    """A base cell folder: a tiny network's checkpoint (no training: its initialisation) and a study config."""
    folder = root / "cells" / cell
    save_untrained(CaffeNetClassifier(**{**TINY_MODEL, "init_seed": seed}), folder / "checkpoints" / "last.ckpt")
    data = {
        "class_path": "tests.helpers.study_data.StudyData",
        "init_args": {"split": "random0", "half": half, "batch_size": 8, "images_per_class": 20, "mean_half": None},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump({"seed_everything": seed, "data": data}))


def base_row(root: Path, cell: str, half: str, seed: int) -> dict:
    return {
        "split": "random0",
        "base_half": None,
        "target_half": half,
        "n": 0,
        "mode": None,
        "family": f"base{half}",
        "seed": seed,
        "top1_best_k_mean": 0.5,
        "cell": cell,
        "checkpoint": str(root / "cells" / cell / "checkpoints" / "last.ckpt"),
    }


@pytest.fixture
def study(tmp_path: Path) -> tuple[Path, list[dict]]:
    """A finished study's folder with the bases A and B of seeds 0 and 1, base A only of seed 2, and a transfer."""
    rows = []
    for seed, halves in ((0, "AB"), (1, "AB"), (2, "A")):
        for half in halves:
            cell = f"random0_base-{half}_s{seed}"
            save_base(tmp_path, cell, half, seed=10 * seed + (half == "B"))
            rows.append(base_row(tmp_path, cell, half, seed))
    rows.append(
        {**base_row(tmp_path, "random0_A1B_s0", "B", 0), "n": 1, "family": "AnB", "base_half": "A", "mode": "frozen"}
    )
    return tmp_path, rows


def test_study_writes_one_row_per_stage_and_the_report_draws_it(
    study: tuple[Path, list[dict]], capsys: pytest.CaptureFixture[str]
):
    root, rows = study
    pairs, missing = base_pairs(rows)
    assert [(p.seed, p.cell_a, p.cell_b) for p in pairs] == [
        (0, "random0_base-A_s0", "random0_base-B_s0"),
        (1, "random0_base-A_s1", "random0_base-B_s1"),
    ]
    assert missing == ["random0 seed 2 (no finished base B)"]
    path = write_similarity(root, rows, max_images=50)
    assert path == root / "cka.csv"
    table = cka_table.read_cka_table(path)
    assert [row["stage"] for row in table] == list(STAGES)  # one row per transferable stage
    assert all(row["count"] == 2 and set(row["values"]) == {"random0_s0", "random0_s1"} for row in table)
    assert all(-0.1 < value < 1 for row in table for value in row["values"].values())
    assert all(row["ci_low"] <= row["mean"] <= row["ci_high"] for row in table)
    assert table[0]["mean"] > 0.3  # the first stage of two initialisations on the same images: far above chance
    chances = [value for row in table for value in row["chance_values"].values()]  # from the same features
    assert len(chances) == 2 * len(STAGES) and all(abs(value) < CHANCE_BOUND for value in chances)
    record = json.loads((root / "cka.json").read_text())["pairs"][0]
    assert (record["base_a"], record["base_b"], record["images"]) == ("random0_base-A_s0", "random0_base-B_s0", 50)
    assert list(record["chance"]) == list(STAGES)
    output = capsys.readouterr().out
    assert "skipping random0 seed 2 (no finished base B)" in output and "CKA(A, B) by layer (2 seed pairs)" in output

    again = write_similarity(root, rows, max_images=50)  # deterministic: the same values when recomputed
    assert cka_table.read_cka_table(again) == table

    write_table(root / "results.csv", rows)
    files = write_report(rows, root)
    assert root / "cka.csv" in files
    assert (root / "figures" / "figure2.png").stat().st_size > 1000
    with open(root / "summary.csv", newline="") as file:
        summary = [line for line in csv.DictReader(file) if line["panel"] == "cka"]
    assert [(line["curve"], int(line["n"])) for line in summary] == [
        *(("CKA(A, B)", n) for n in range(1, 8)),
        *(("chance (permuted examples)", n) for n in range(1, 8)),
    ]
    assert float(summary[0]["mean"]) == pytest.approx(table[0]["mean"])
    assert float(summary[7]["mean"]) == pytest.approx(table[0]["chance"], abs=1e-6)
    figure = figures.figure2(rows, cka=cka_table.cka_points(table))
    assert len(figure.axes) == 3 and "CKA" in figure.axes[2].get_ylabel()
    assert len(figures.figure2(rows).axes) == 2  # without the panel, Figure 2 is as before


def test_study_reuses_unchanged_pairs_and_recomputes_changed_ones(
    study: tuple[Path, list[dict]], monkeypatch: pytest.MonkeyPatch
):
    root, rows = study
    first = cka_table.read_cka_table(write_similarity(root, rows, max_images=30))
    computed = []
    from experiments.study import similarity

    original = similarity._compute
    monkeypatch.setattr(similarity, "_compute", lambda *args: computed.append(args[1].label) or original(*args))
    assert cka_table.read_cka_table(write_similarity(root, rows, max_images=30)) == first
    assert computed == []
    summary = json.loads((root / "cka.json").read_text())
    old = {
        **summary,
        "pairs": [{key: value for key, value in record.items() if key != "chance"} for record in summary["pairs"]],
    }
    del old["estimator"]
    (root / "cka.json").write_text(json.dumps(old))  # written by the biased estimator: recomputed, not reused
    assert cka_table.read_cka_table(write_similarity(root, rows, max_images=30)) == first
    assert computed == ["random0_s0", "random0_s1"]
    computed.clear()
    checkpoint = root / "cells" / "random0_base-B_s1" / "checkpoints" / "last.ckpt"
    save_base(root, "random0_base-B_s1", "B", seed=99)  # B of seed 1 retrained
    os.utime(checkpoint, ns=(1, 1))
    changed = cka_table.read_cka_table(write_similarity(root, rows, max_images=30))
    assert computed == ["random0_s1"]
    assert [row["values"]["random0_s0"] for row in changed] == [row["values"]["random0_s0"] for row in first]
    assert [row["values"]["random0_s1"] for row in changed] != [row["values"]["random0_s1"] for row in first]


def test_study_without_both_bases_skips_and_a_corrupt_checkpoint_is_named(
    study: tuple[Path, list[dict]], capsys: pytest.CaptureFixture[str]
):
    root, rows = study
    assert write_similarity(root, rows, max_images=20) is not None
    only_a = [row for row in rows if row["target_half"] == "A"]
    assert write_similarity(root, only_a, max_images=20) is None
    assert "layer similarity: skipped" in capsys.readouterr().out
    assert not (root / "cka.csv").exists() and not (root / "cka.json").exists()  # no stale panel

    broken = root / "cells" / "random0_base-A_s1" / "checkpoints" / "last.ckpt"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(SimilarityError, match=r"cannot load base network random0_base-A_s1 from .*last\.ckpt"):
        write_similarity(root, rows, max_images=20)
    assert not (root / "cka.csv").exists()
    broken.unlink()
    with pytest.raises(SimilarityError, match="random0_base-A_s1"):
        write_similarity(root, rows, max_images=20)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter")
def test_runner_computes_the_panel_after_the_jobs_and_names_a_corrupt_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A whole tiny study (the bases of two seeds): cka.csv, Figure 2 with its panel and the summary's rows; a
    rerun reuses the values; a corrupt base stops the study with its name after the report is drawn."""

    output = tmp_path / "out"
    config = write_study(
        tmp_path, output, {"n": [1], "seeds": [0, 1], "figure2": {"families": []}}, wandb={"enabled": False}
    )
    run_study(config)
    table = cka_table.read_cka_table(output / "cka.csv")
    assert [row["stage"] for row in table] == list(STAGES) and all(row["count"] == 2 for row in table)
    assert (output / "figures" / "figure2.png").stat().st_size > 1000
    with open(output / "summary.csv", newline="") as file:
        curves = [line["curve"] for line in csv.DictReader(file) if line["panel"] == "cka"]
    assert curves == ["CKA(A, B)"] * 7 + ["chance (permuted examples)"] * 7
    assert "CKA between random0_base-A_s1 and random0_base-B_s1" in capsys.readouterr().out

    run_study(config)
    assert "CKA between" not in capsys.readouterr().out  # unchanged bases: the values are reused
    assert cka_table.read_cka_table(output / "cka.csv") == table

    broken = output / "cells" / "random0_base-A_s1" / "checkpoints" / "last.ckpt"
    broken.write_bytes(broken.read_bytes()[:100])
    os.utime(broken, ns=(1, 1))
    with pytest.raises(
        SystemExit, match="layer-similarity panel could not be computed: cannot load base network random0_base-A_s1"
    ):
        run_study(config)
    assert not (output / "cka.csv").exists() and (output / "figures" / "figure2.png").is_file()
