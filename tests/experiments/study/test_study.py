"""The study runner end to end on a tiny grid: table and figures, resumption after a kill, clear errors."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from experiments.errors import SettingError
from experiments.report.table import COLUMNS, TableError, read_table, write_table
from experiments.study.config import build_parser, study_from_config
from experiments.study.grid import Cell, DissimilarCells, Figure2Cells, Grid, RandomFeaturesCells, expand
from experiments.study.launchers import Subprocesses, cpu_slots
from experiments.study.lock import exclusive
from experiments.study.runner import StudyRunner, main
from tests.helpers import REPO
from tests.helpers.studies import run_study, write_study
from tests.helpers.wandb_log import of_type, wandb_records

# Whole studies, subprocesses and kills: slow (the README's test command runs them all).
pytestmark = [pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter"), pytest.mark.slow]

STUDIES = REPO / "experiments" / "configs" / "studies"
# Every family and panel, two values of n: 19 cells.
TINY_GRID = {
    "n": [1, 2],
    "figure2": {"splits": ["random0"], "selffer_targets": ["A"], "transfer_targets": ["B"]},
    "dissimilar": {"split": "dissimilar"},
    "random_features": {},
}


def mtimes(output: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in output.glob("cells/*/result.json")}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study, run once for the module; tests that change it work on a copy."""
    root = tmp_path_factory.mktemp("study")
    run_study(write_study(root, root / "out", TINY_GRID))
    return root / "out"


@pytest.fixture
def copy(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the finished study and a config that points at it: ``(config, output folder)``."""
    output = tmp_path / "out"
    shutil.copytree(finished, output)
    return write_study(tmp_path, output, TINY_GRID, wandb={"enabled": False}), output


def test_tiny_grid_writes_table_figures_and_cell_folders(finished: Path):
    """Every cell once in the table with the paper's metric; figures, summary and per-cell W&B runs exist."""
    rows = read_table(finished / "results.csv")
    assert len(rows) == 19 == len({row["cell"] for row in rows})
    assert {row["family"] for row in rows} == {"baseA", "baseB", "base", "BnB", "AnB", "BnB+", "AnB+", "random"}
    assert {row["n"] for row in rows} == {0, 1, 2}
    for row in rows:
        assert 0 <= row["top1_best_k_mean"] <= 1 and 0 <= row["top1"] <= 1 and row["steps"] == 4
        assert not Path(row["checkpoint"]).is_absolute() and (finished / row["checkpoint"]).is_file()
        assert row["epochs"] >= 1
    for name in ("figure2.png", "figure2.svg", "figure3.png", "figure3.svg"):
        assert (finished / "figures" / name).stat().st_size > 1000
    assert (finished / "summary.csv").is_file()
    cell = finished / "cells" / "random0_A2B+_s0"
    config = yaml.safe_load((cell / "config.yaml").read_text())
    wandb = config["trainer"]["logger"][1]["init_args"]
    assert (wandb["group"], wandb["name"], wandb["offline"]) == ("tiny", "random0_A2B+_s0", True)
    assert list((cell / "wandb").glob("offline-run-*")), "each cell is an offline W&B run"
    assert list((finished / "wandb").glob("offline-run-*")), "the table and figures are logged as a last run"

    artifacts = [a for a in of_type(wandb_records(finished), "artifact") if a.type == "study-results"]
    assert [a.name for a in artifacts] == ["tiny-results"]  # the report, an output of the results run
    artifact = artifacts[0]
    assert {"results.csv", "summary.csv", "effects.md", "figures/figure2.png"} <= {
        f.path for f in artifact.manifest.contents
    }
    assert list((finished / "fused").glob("*/wandb/offline-run-*")), "each fused group is a W&B run of the group"
    assert config["transfer"] == {
        "base_checkpoint": str(finished / "cells/random0_base-A_s0/checkpoints/last.ckpt"),
        "n": 2,
        "mode": "finetune",
        "frozen_norm": "eval",
        "base_sha256": None,
    }
    assert (config["data"]["init_args"]["half"], config["data"]["init_args"]["mean_half"]) == ("B", "A")


def test_transfer_cells_copy_the_final_weights_of_their_base(finished: Path):
    """A transfer's checkpoint records the sha256 of its base's last.ckpt, and frozen layers still equal it."""
    base = finished / "cells" / "random0_base-A_s0" / "checkpoints" / "last.ckpt"
    transfer = torch.load(finished / "cells" / "random0_A2B_s0" / "checkpoints" / "last.ckpt", weights_only=True)
    provenance = transfer["transfer"]  # the network's TransferRecord, fused or not
    assert provenance["sha256"] == sha256(base) and provenance["n"] == 2
    base_weights = torch.load(base, weights_only=True)["state_dict"]
    assert torch.equal(transfer["state_dict"]["net.conv2.weight"], base_weights["net.conv2.weight"])
    assert not torch.equal(transfer["state_dict"]["net.conv3.weight"], base_weights["net.conv3.weight"])


def test_rerun_skips_finished_cells(copy: tuple[Path, Path]):
    """Running a finished study again trains nothing and rewrites the same table."""
    config, output = copy
    before, table = mtimes(output), read_table(output / "results.csv")
    run_study(config)
    assert mtimes(output) == before
    assert [row["cell"] for row in read_table(output / "results.csv")] == [row["cell"] for row in table]


def test_killed_runner_resumes_and_lists_every_cell_once(tmp_path: Path):
    """SIGKILL in the middle of a transfer cell; the next run resumes it from its last checkpoint."""
    output = tmp_path / "out"
    kill = {
        "class_path": "tests.helpers.study_data.KillOnce",
        "init_args": {"cell": "random0_A1B_s0", "step": 3, "marker": str(tmp_path / "killed")},
    }
    config = write_study(
        tmp_path,
        output,
        {"n": [1, 2], "figure2": {"families": ["AnB"], "transfer_targets": ["B"]}},
        overrides={"trainer": {"callbacks": [kill]}},
        wandb={"enabled": False},
        fused=False,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    killed = subprocess.run(
        [sys.executable, "-m", "experiments.study", "--config", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    assert [row["cell"] for row in read_table(output / "results.csv")] == ["random0_base-A_s0", "random0_base-B_s0"]
    interrupted = output / "cells" / "random0_A1B_s0"
    assert not (interrupted / "result.json").exists() and (interrupted / "checkpoints" / "last.ckpt").is_file()
    bases = mtimes(output)

    run_study(config)

    rows = read_table(output / "results.csv")
    assert sorted(row["cell"] for row in rows) == sorted(
        ["random0_base-A_s0", "random0_base-B_s0", "random0_A1B_s0", "random0_A2B_s0"]
    )
    assert {name: t for name, t in mtimes(output).items() if name in bases} == bases, "bases were not retrained"
    result = yaml.safe_load((interrupted / "result.json").read_text())
    assert result["resumed_from_step"] == 2 and result["steps"] == 4
    assert sorted(p.name for p in (interrupted / "logs").iterdir()) == ["version_0", "version_1"]


def test_sigterm_stops_the_runner_and_the_jobs_it_started(tmp_path: Path):
    """`kill` (SIGTERM) of a runner with launcher cpus leaves no job behind training into a cell; a rerun resumes."""
    output = tmp_path / "out"
    config = write_study(
        tmp_path,
        output,
        {"n": [1], "figure2": None, "random_features": {}},
        launcher="cpus",
        overrides={"trainer": {"max_steps": 400}},
        wandb={"enabled": False},
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    runner = subprocess.Popen(
        [sys.executable, "-m", "experiments.study", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (jobs := children(runner.pid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert jobs, "the runner started no job"
    time.sleep(3)
    runner.send_signal(signal.SIGTERM)
    _, stderr = runner.communicate(timeout=120)
    assert runner.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "interrupted" in stderr
    alive = [pid for pid in jobs if Path(f"/proc/{pid}").exists()]
    assert not alive, f"jobs {alive} still running after their runner stopped"
    run_study(config)
    assert len(read_table(output / "results.csv")) == 2


class FinishedJob:
    """A job process that has already exited with status 0."""

    def wait(self, timeout: float | None = None) -> int:
        return 0


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid) and not fields.get("State", "").startswith("Z"):
            found.append(int(status.parent.name))
    return found


def test_killed_fused_group_resumes_and_lists_every_cell_once(tmp_path: Path):
    """SIGKILL in the middle of a fused group of frozen cells; the next run resumes the group from its checkpoint."""
    output = tmp_path / "out"
    group = "random0_A-to-B_s0_n1-2"
    kill = {
        "class_path": "tests.helpers.study_data.KillOnce",
        "init_args": {"cell": group, "step": 3, "marker": str(tmp_path / "killed")},
    }
    config = write_study(
        tmp_path,
        output,
        {"n": [1, 2], "figure2": {"families": ["AnB"], "transfer_targets": ["B"]}},
        overrides={"trainer": {"callbacks": [kill]}},
        wandb={"enabled": False},
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    killed = subprocess.run(
        [sys.executable, "-m", "experiments.study", "--config", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    assert (output / "fused" / group / "checkpoints" / "last.ckpt").is_file()
    assert not (output / "cells" / "random0_A1B_s0" / "result.json").exists()

    run_study(config)

    rows = read_table(output / "results.csv")
    assert sorted(row["cell"] for row in rows) == sorted(
        ["random0_base-A_s0", "random0_base-B_s0", "random0_A1B_s0", "random0_A2B_s0"]
    )
    for name in ("random0_A1B_s0", "random0_A2B_s0"):
        result = yaml.safe_load((output / "cells" / name / "result.json").read_text())
        assert result["resumed_from_step"] == 2 and result["steps"] == 4


def test_fused_and_single_cells_give_the_same_rows(tmp_path: Path):
    """The fused path writes the same table (cells, columns, steps) as training every cell alone."""
    grid = {"n": [1, 2], "figure2": {"families": ["AnB"], "transfer_targets": ["B"]}}
    tables = {}
    for fused in (True, False):
        output = tmp_path / f"fused-{fused}"
        run_study(write_study(tmp_path / f"config-{fused}", output, grid, wandb={"enabled": False}, fused=fused))
        tables[fused] = read_table(output / "results.csv")
        assert (output / "fused").is_dir() == fused
    assert [(r["cell"], r["n"], r["steps"]) for r in tables[True]] == [
        (r["cell"], r["n"], r["steps"]) for r in tables[False]
    ]
    assert all(row["top1_best_k_mean"] != "" for row in tables[True])


@pytest.mark.parametrize("damage", ["truncated row", "duplicate row", "header"])
def test_corrupt_table_is_a_clear_error_and_loses_nothing(
    copy: tuple[Path, Path], damage: str, capsys: pytest.CaptureFixture[str]
):
    """A damaged results.csv stops the runner before it trains anything; deleting it rebuilds it."""
    config, output = copy
    table = output / "results.csv"
    lines = table.read_text().splitlines(keepends=True)
    broken = {
        "truncated row": [*lines, lines[-1][:20]],
        "duplicate row": [*lines, lines[-1]],
        "header": ["split,n\n", *lines[1:]],
    }[damage]
    table.write_text("".join(broken))
    before = mtimes(output)
    for extra in ([], ["--figures_only"]):
        with pytest.raises(SystemExit) as error:
            run_study(config, *extra)
        assert str(table) in str(error.value.code) and "corrupt" in str(error.value.code)
        assert "delete" in str(error.value.code)
    assert mtimes(output) == before and len(before) == 19
    table.unlink()
    run_study(config)
    assert mtimes(output) == before
    assert len(read_table(table)) == 19


def test_missing_base_checkpoint_names_cell_and_path(copy: tuple[Path, Path]):
    """A finished base without last.ckpt stops the study, naming the cell, the base and the file; nothing is lost."""
    config, output = copy
    shutil.rmtree(output / "cells" / "random0_A2B_s0")
    missing = output / "cells" / "random0_base-A_s0" / "checkpoints" / "last.ckpt"
    missing.unlink()
    before = mtimes(output)
    with pytest.raises(SystemExit) as error:
        run_study(config)
    message = str(error.value.code)
    assert "random0_A2B_s0" in message and "random0_base-A_s0" in message and str(missing) in message
    assert mtimes(output) == before
    assert len(read_table(output / "results.csv")) == 18


def test_changed_config_of_finished_cells_is_refused(copy: tuple[Path, Path]):
    """Changing the scale under finished cells is an error, not a silently mixed table."""
    config, _ = copy
    with pytest.raises(SystemExit) as error:
        run_study(config, "--overrides", "{trainer: {max_steps: 6}}")
    assert "different config" in str(error.value.code) and "random0_base-A_s0" in str(error.value.code)


def test_a_changed_library_default_leaves_finished_cells_finished(
    copy: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
):
    """The fingerprint covers what the study sets, not the defaults the rendered config spells out."""
    from experiments.cli import TransferCLI

    config, output = copy
    before = mtimes(output)
    add_arguments = TransferCLI.add_arguments_to_parser

    def upgraded(self: TransferCLI, parser: Any) -> None:  # as if a new Lightning changed a default
        add_arguments(self, parser)
        parser.set_defaults({"trainer.benchmark": True, "checkpoint.filename": "best-{step}-{epoch}"})

    monkeypatch.setattr(TransferCLI, "add_arguments_to_parser", upgraded)
    run_study(config)
    assert mtimes(output) == before


def test_gpu_pool_and_slurm_launchers_run_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Cells run as `python -m experiments.study.jobs` subprocesses two at a time (one per "GPU"), then as a submitit
    array (its debug executor); both write the same table as in-process cells."""
    pytest.importorskip("submitit")
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the subprocesses import tests.helpers.study_data
    output = tmp_path / "out"
    pool = write_study(
        tmp_path,
        output,
        {"n": [1], "figure2": None, "random_features": {}},
        launcher="gpus",
        gpus=[0, 1],
        wandb={"enabled": False},
    )
    run_study(pool)
    assert [row["cell"] for row in read_table(output / "results.csv")] == ["whole_base-all_s0", "whole_random1-all_s0"]
    cpus = write_study(
        tmp_path,
        output,
        {"n": [1, 2], "figure2": None, "random_features": {}},
        launcher="cpus",
        cpu_workers=2,
        wandb={"enabled": False},
    )
    run_study(cpus)
    assert [row["cell"] for row in read_table(output / "results.csv")] == [
        "whole_base-all_s0",
        "whole_random1-all_s0",
        "whole_random2-all_s0",
    ]
    slurm = write_study(
        tmp_path,
        output,
        {"n": [1, 2, 3], "figure2": None, "random_features": {}},
        launcher="slurm",
        slurm={"cluster": "debug"},
        wandb={"enabled": False},
    )
    run_study(slurm)
    assert [row["cell"] for row in read_table(output / "results.csv")] == [
        "whole_base-all_s0",
        "whole_random1-all_s0",
        "whole_random2-all_s0",
        "whole_random3-all_s0",
    ]


def test_cpu_slots_share_the_cores_and_hide_the_gpus(monkeypatch: pytest.MonkeyPatch):
    """Each cpus job gets its share of the cores as torch's threads and no GPU; the environment reaches the job."""
    assert cpu_slots(2, cores=2) == [{"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}] * 2
    assert cpu_slots(3, cores=16)[0]["OMP_NUM_THREADS"] == "5"
    assert cpu_slots(4, cores=2)[0]["OMP_NUM_THREADS"] == "1"
    with pytest.raises(ValueError, match="study cpu_workers must be at least 1, got 0"):
        cpu_slots(0)
    seen = []
    monkeypatch.setattr(subprocess, "Popen", lambda args, env: seen.append(env) or FinishedJob())
    launcher = Subprocesses(cpu_slots(2, cores=4))
    for future in launcher.start([Path("a"), Path("b"), Path("c")]):
        future.result()
    launcher.close()
    assert launcher.capacity == 2 and [env["OMP_NUM_THREADS"] for env in seen] == ["2"] * 3
    assert all(env["CUDA_VISIBLE_DEVICES"] == "" for env in seen)


def test_second_runner_on_the_same_study_is_refused(tmp_path: Path):
    """While one runner holds a study folder, another stops at once with who holds it."""
    output = tmp_path / "out"
    config = write_study(tmp_path, output, {"n": [1], "figure2": None, "random_features": {}}, wandb={"enabled": False})
    with exclusive(output):
        with pytest.raises(SystemExit) as error:
            run_study(config, "--plan")
    assert "is being run by transferability-study pid" in str(error.value.code)
    assert not (output / "cells").exists()
    run_study(config, "--plan")  # released
    assert (output / "cells" / "whole_random1-all_s0" / "config.yaml").is_file()


def test_table_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A failure while the table is being replaced leaves the previous table whole and no stray file."""
    table = tmp_path / "results.csv"
    write_table(
        table,
        [
            {
                "split": "random0",
                "target_half": "A",
                "n": 0,
                "family": "baseA",
                "seed": 0,
                "top1_best_k_mean": 0.5,
                "cell": "random0_base-A_s0",
            }
        ],
    )
    before = table.read_text()

    def fail(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_table(table, [])
    assert table.read_text() == before and sorted(tmp_path.iterdir()) == [table]
    assert next(csv.reader(before.splitlines())) == list(COLUMNS)


def test_missing_table_for_figures_is_a_clear_error(tmp_path: Path):
    with pytest.raises(TableError, match="run the study first"):
        read_table(tmp_path / "results.csv")


def halves(split: str) -> tuple[str, ...]:
    from datamodules.splits import IMAGENET_SPLITS

    return IMAGENET_SPLITS.halves(split)


def test_paper_grid_has_the_papers_networks():
    """The ImageNet study expands to the paper's 170 networks (the 12 reduced-data runs of its supplement included)
    and the selffers on half B that give every transfer network its partner."""
    parser = build_parser()
    init = parser.instantiate(parser.parse_args(["--config", str(STUDIES / "imagenet_paper.yaml")]))
    cells = expand(init.grid, halves)
    families: dict[str, int] = {}
    for cell in cells:
        key = cell.family if cell.split != "natman" else f"natman {cell.family}"
        families[key] = families.get(key, 0) + 1
    assert families == {
        "baseA": 4,
        "baseB": 4,
        "BnB": 56,
        "AnB": 56,
        "BnB+": 28,
        "AnB+": 28,
        "natman base": 2,
        "natman AnB": 14,
        "base": 1,
        "random": 7,
        "reduced": 12,
    }
    assert len(cells) == len(set(cells)) == 212  # the paper's 170 and the selffers on B (a named deviation)
    seen: set[Cell] = set()
    for cell in cells:  # dependency order
        assert cell.base_cell is None or cell.base_cell in seen
        seen.add(cell)
    assert Cell("random1", "B", "A", 4, "finetune", 0).name == "random1_B4A+_s0"


def test_a_schedule_search_grid_trains_base_b_and_its_selffers_alone():
    """``figure2.bases: [B]`` with BnB+ on B: base B and B->B+ only; a base a transfer copies is always trained."""
    search = Figure2Cells(families=["BnB+"], selffer_targets=["B"], bases=["B"])
    assert [cell.name for cell in expand(Grid(n=[3, 7], figure2=search), halves)] == [
        "random0_base-B_s0",
        "random0_B3B+_s0",
        "random0_B7B+_s0",
    ]
    transfers = Figure2Cells(families=["AnB"], transfer_targets=["B"], bases=["B"])
    assert {cell.name for cell in expand(Grid(n=[3], figure2=transfers), halves)} == {
        "random0_base-A_s0",
        "random0_base-B_s0",
        "random0_A3B_s0",
    }
    with pytest.raises(ValueError, match=r"bases \['C'\] are not halves of split 'random0'"):
        expand(Grid(figure2=Figure2Cells(bases=["C"])), halves)


@pytest.mark.parametrize("tolerance", ["0", "-0.01", "1.5"])
def test_a_convergence_tolerance_out_of_range_is_refused_before_anything_runs(tolerance: str, tmp_path: Path):
    """tau is a fraction of top-1 in (0, 1): anything else stops the study with the setting named, nothing written."""
    with pytest.raises(SettingError, match="convergence_tolerance is a fraction of top-1"):
        main(
            [
                "--config",
                str(STUDIES / "fmnist_default.yaml"),
                "--output_dir",
                str(tmp_path / "out"),
                "--convergence_tolerance",
                tolerance,
                "--plan",
            ]
        )
    assert not (tmp_path / "out").exists()


def test_grid_rejects_unknown_halves_and_layers():
    with pytest.raises(ValueError, match="halves of split"):
        expand(Grid(figure2=Figure2Cells(selffer_targets=["C"])), halves)
    with pytest.raises(ValueError, match="grid n must be integers >= 1"):
        expand(Grid(n=[0, 3]), halves)
    with pytest.raises(ValueError, match=r"grid n must be an integer in 1\.\.7 \(1 = conv1"):
        expand(Grid(n=[3, 8]), halves)
    with pytest.raises(ValueError, match="two halves"):
        expand(Grid(figure2=None, dissimilar=DissimilarCells(split="whole")), halves)
    assert len(expand(Grid(figure2=None, random_features=RandomFeaturesCells(n=[3])), halves)) == 2


@pytest.mark.parametrize(
    "name, cells",
    [
        ("fmnist_default", 105),
        ("fmnist_converged", 99),
        ("imagenet_paper", 212),
        ("fmnist_vit", 99),
        ("imagenet_resnet50", 116),
        ("fmnist_demo", 6),
    ],
)
def test_shipped_study_configs_render_valid_cell_configs(name: str, cells: int | None, tmp_path: Path):
    """Each shipped study parses, and a transfer cell's full config passes the Lightning CLI's own checks."""
    parser = build_parser()
    config = parser.parse_args(["--config", str(STUDIES / f"{name}.yaml"), "--output_dir", str(tmp_path / "out")])
    runner = StudyRunner(study_from_config(parser, config))
    plan = runner.plan.cells()
    assert cells is None or len(plan) == cells
    transfer = next(cell for cell in plan if cell.base is not None)
    folder = runner.plan.folder(transfer)
    runner.plan.write_study_file()  # study.json: the cells' W&B runs take their ids from it
    pending = runner.plan.prepare([transfer])
    assert pending == [transfer]
    config = yaml.safe_load(folder.config.read_text())
    assert config["transfer"]["n"] == transfer.n and config["seed_everything"] == transfer.seed
    assert config["model"]["init_args"]["init_seed"] == transfer.network_seed != runner.plan.cells()[0].network_seed


def test_a_group_started_before_grid_n_changed_resumes_as_it_started(tmp_path: Path):
    """A fused group whose fit had started (n = 1, 2) keeps its members when the grid gains n = 3 and 4: it resumes
    from its own checkpoint (its members' folders hold only their weights), and the new cells form a group of their
    own. Planned only: nothing trains."""
    from experiments.study.plan import StudyPlan

    output, grid = tmp_path / "out", {"figure2": {"families": ["AnB"], "transfer_targets": ["B"]}}
    parser = build_parser()

    def plan(n: list[int]) -> StudyPlan:
        config = write_study(tmp_path, output, {**grid, "n": n}, wandb={"enabled": False})
        return StudyPlan(study_from_config(parser, parser.parse_args(["--config", str(config)])))

    first = plan([1, 2])
    pending = first.prepare(first.cells())
    (group,) = first.fused_groups(pending)
    job = first.plan_jobs(pending)[-1]
    assert [cell.n for cell in group] == [1, 2] and job.name == "fused_random0_A-to-B_s0_n1-2"
    for folder in [first.fused_dir(group), *(first.folder(cell).path for cell in group)]:
        (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"started")

    second = plan([1, 2, 3, 4])
    pending = second.prepare(second.cells())
    assert [[cell.n for cell in found] for found in second.fused_groups(pending)] == [[1, 2], [3, 4]]
    names = [job.name for job in second.plan_jobs(pending)]
    assert "fused_random0_A-to-B_s0_n1-2" in names and "fused_random0_A-to-B_s0_n3-4" in names
    assert not {"random0_A1B_s0", "random0_A2B_s0"} & set(names)  # never resumed alone
