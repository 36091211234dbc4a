"""The study runner on a real single-node SLURM cluster (tests/slurm_cluster.py) with ``launcher: slurm``.

A tiny figure-2 study (two bases, two transfers from base A) shows: the ready jobs go out as submitit job
arrays (the bases in one, the transfers in a later one, submitted only once their base had finished); a
base interrupted mid-fit with USR2 (``tests.study_data.SignalOnce``) is requeued by submitit and resumes
from its ``last.ckpt``, and its transfers wait for that second run and copy its final weights; the results
table ends with every cell exactly once. Skipped unless root with SLURM installed (``.ci/install-slurm``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from experiments.report.table import read_table
from tests.slurm_cluster import SlurmCluster, slurm_cluster, slurm_env  # noqa: F401 (pytest fixtures)
from tests.test_study import REPO, write_study

submitit = pytest.importorskip("submitit")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter")]

BASE, OTHER_BASE = "random0_base-A_s0", "random0_base-B_s0"
TRANSFERS = ("random0_A1B_s0", "random0_A2B_s0")
GRID = {"n": [1, 2], "figure2": {"splits": ["random0"], "families": ["AnB"], "transfer_targets": ["B"]}}
INTERRUPT_STEP = 3  # after the checkpoint of step 2 (checkpoint_every_n_steps: 2)


def _tasks(log_folder: Path, array: str, count: int) -> dict[str, str]:
    """The cell folder name each task of a submitit array ran, by task id (``<array>_<i>``)."""
    tasks = {}
    for index in range(count):
        job_id = f"{array}_{index}" if count > 1 else array  # submitit submits a batch of one as a plain job
        delayed = submitit.SlurmJob(folder=log_folder, job_id=job_id).submission()
        tasks[job_id] = Path(delayed.args[0]).name
    return tasks


def _job(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    """``scontrol show job -o`` of one job (kept by the cluster's MinJobAge), as a mapping."""
    out = cluster.command("scontrol", "show", "job", "-o", job_id)
    return dict(token.partition("=")[::2] for token in out.split() if "=" in token)


def _result(output: Path, cell: str) -> dict[str, Any]:
    return json.loads((output / "cells" / cell / "result.json").read_text())


def _fit_began(output: Path, cell: str) -> float:
    """When the cell's finishing fit began: its result's mtime less the fit's wall time (import time excluded)."""
    return (output / "cells" / cell / "result.json").stat().st_mtime - _result(output, cell)["wall_time_s"]


def test_study_on_a_real_slurm_cluster(slurm_env: SlurmCluster, tmp_path: Path) -> None:  # noqa: F811 (fixture)
    """Arrays, dependencies, a USR2-interrupted base that requeues and resumes, every cell once in the table."""
    cluster = slurm_env
    output = tmp_path / "out"
    marker = tmp_path / "signalled"
    interrupt = {"class_path": "tests.study_data.SignalOnce",
                 "init_args": {"cell": BASE, "step": INTERRUPT_STEP, "marker": str(marker)}}
    # submitit's default time limit (5 min) is fine: a USR2 before 80 % of it reads as a preemption, not a time-out
    config = write_study(tmp_path, output, GRID, overrides={"trainer": {"callbacks": [interrupt]}},
                         wandb={"enabled": False}, fused=False, launcher="slurm", slurm={"cluster": "slurm"})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    began = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "experiments.study", "--config", str(config)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=240, check=False)
    seconds = time.monotonic() - began
    print(f"study on SLURM: {seconds:.1f} s (cluster start-up {cluster.start_seconds:.1f} s)\n{run.stdout}")
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    lines = run.stdout.splitlines()

    # (1) job arrays: the two bases in one, the two transfers in a later one
    submitted = [(index, int(match[1]), match[2]) for index, line in enumerate(lines)
                 if (match := re.match(r"submitted (\d+) job\(s\) as array (\d+) ", line))]
    assert [count for _, count, _ in submitted] == [2, 2], run.stdout
    (_, _, bases_array), (transfers_line, _, transfers_array) = submitted
    log_folder = output / "submitit"
    bases = _tasks(log_folder, bases_array, 2)
    transfers = _tasks(log_folder, transfers_array, 2)
    assert sorted(bases.values()) == sorted([BASE, OTHER_BASE])
    assert sorted(transfers.values()) == sorted(TRANSFERS)
    jobs = {cell: _job(cluster, job_id) for job_id, cell in {**bases, **transfers}.items()}
    for cell, job in jobs.items():
        assert job["JobState"] == "COMPLETED", (cell, job)
        assert job["ArrayJobId"] == (bases_array if cell in (BASE, OTHER_BASE) else transfers_array), (cell, job)

    # (2) dependencies: the transfers were submitted once the runner saw their base done, after its requeued
    # run had started, and their fits began after the base's result was written
    base_done = next(i for i, line in enumerate(lines) if re.match(rf"\[\d/4\] {BASE} done", line))
    assert base_done < transfers_line, run.stdout
    for cell in TRANSFERS:
        assert jobs[cell]["SubmitTime"] >= jobs[BASE]["StartTime"], (jobs[cell], jobs[BASE])
        assert _fit_began(output, cell) > (output / "cells" / BASE / "result.json").stat().st_mtime

    # (3) the base interrupted at step 3 was requeued once by submitit and resumed from its step-2 checkpoint
    assert marker.is_file() and marker.read_text().startswith("USR2 to job "), "SignalOnce never fired"
    assert jobs[BASE]["Restarts"] == "1", jobs[BASE]
    assert all(jobs[cell]["Restarts"] == "0" for cell in (OTHER_BASE, *TRANSFERS)), jobs
    result = _result(output, BASE)
    assert (result["resumed_from_step"], result["steps"]) == (2, 4), result
    assert sorted(p.name for p in (output / "cells" / BASE / "logs").iterdir()) == ["version_0", "version_1"]
    assert all(_result(output, cell)["resumed_from_step"] == 0 for cell in (OTHER_BASE, *TRANSFERS))
    base_weights = hashlib.sha256((output / "cells" / BASE / "checkpoints" / "last.ckpt").read_bytes()).hexdigest()
    for cell in TRANSFERS:  # each transfer copied the base's final weights, not those of its first run
        checkpoint = torch.load(output / "cells" / cell / "checkpoints" / "last.ckpt", weights_only=True)
        assert checkpoint["transfer"]["sha256"] == base_weights, cell

    # (4) every cell exactly once in the table; nothing left in the queue
    rows = read_table(output / "results.csv")
    assert sorted(row["cell"] for row in rows) == sorted([BASE, OTHER_BASE, *TRANSFERS])
    assert all(row["steps"] == 4 for row in rows)
    assert cluster.command("squeue", "-h", "-o", "%i").strip() == ""
