"""The study runner on a real single-node SLURM cluster (tests/slurm_cluster.py) with ``launcher: slurm``.

A tiny figure-2 study (two bases, two transfers from base A) shows: the runner submits every job at once (the
bases as one job array, the transfers as another with an ``afterok`` dependency on base A) and exits while all
of them are still held, so nothing waits on the login node; submitted again, it keeps the jobs SLURM still holds
and resubmits only a cancelled one; base A, interrupted mid-fit with USR2 (``tests.helpers.study_data.SignalOnce``), is
requeued by submitit and resumes from its ``last.ckpt``, and the transfers start only after its second run has
finished and copy its final weights; the study run once more submits nothing and writes the table with every
cell exactly once. Skipped unless root with SLURM installed (``.ci/install-slurm``).
"""

from __future__ import annotations

import hashlib
import itertools
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
import yaml

from experiments.report.table import read_table
from tests.helpers import REPO
from tests.helpers.slurm_cluster import SlurmCluster
from tests.helpers.studies import write_study

submitit = pytest.importorskip("submitit")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter"),
]

BASE, OTHER_BASE = "random0_base-A_s0", "random0_base-B_s0"
TRANSFERS = ("random0_A1B_s0", "random0_A2B_s0")
GRID = {"n": [1, 2], "figure2": {"splits": ["random0"], "families": ["AnB"], "transfer_targets": ["B"]}}
INTERRUPT_STEP = 3  # after the checkpoint of step 2 (checkpoint_every_n_steps: 2)


def _job(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    """``scontrol show job -o`` of one job (kept by the cluster's MinJobAge), as a mapping."""
    out = cluster.command("scontrol", "show", "job", "-o", job_id)
    return dict(token.partition("=")[::2] for token in out.split() if "=" in token)


def _result(output: Path, cell: str) -> dict[str, Any]:
    return json.loads((output / "cells" / cell / "result.json").read_text())


def _fit_began(output: Path, cell: str) -> float:
    """When the cell's finishing fit began: its result's mtime less the fit's wall time (import time excluded)."""
    return (output / "cells" / cell / "result.json").stat().st_mtime - _result(output, cell)["wall_time_s"]


def _submit(config: Path) -> list[str]:
    """Run the study command once, as a user would (a fresh process); its output lines."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(
        [sys.executable, "-m", "experiments.study", "--config", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    print(run.stdout)
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    return run.stdout.splitlines()


def _submitted(lines: list[str]) -> list[tuple[int, str, str]]:
    """``(count, job or array id, the ids it waits for)`` of each ``submitted ...`` line."""
    return [
        (int(match[1]), match[2], match[3] or "")
        for line in lines
        if (match := re.match(r"submitted (\d+) job\(s\) as (?:array|job) (\d+)(?: after ([\d_, ]+))? ", line))
    ]


def _wait_until_idle(cluster: SlurmCluster, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while queue := cluster.command("squeue", "-h", "-o", "%i %T %r").strip():
        assert time.monotonic() < deadline, f"jobs still queued after {timeout_s:.0f} s:\n{queue}"
        time.sleep(1)


def test_study_on_a_real_slurm_cluster(slurm_env: SlurmCluster, tmp_path: Path) -> None:
    """Submitted at once and left alone, resubmitted without duplicates, requeued and resumed; every cell once."""
    cluster = slurm_env
    output = tmp_path / "out"
    marker = tmp_path / "signalled"
    interrupt = {
        "class_path": "tests.helpers.study_data.SignalOnce",
        "init_args": {"cell": BASE, "step": INTERRUPT_STEP, "marker": str(marker)},
    }
    # submitit's default time limit (5 min) is fine: a USR2 before 80 % of it reads as a preemption, not a time-out
    study = {
        "grid": GRID,
        "overrides": {"trainer": {"callbacks": [interrupt]}},
        "wandb": {"enabled": False},
        "fused": False,
        "launcher": "slurm",
    }
    config = write_study(tmp_path, output, slurm={"cluster": "slurm"}, **study)
    held = tmp_path / "held.yaml"  # the same study, its jobs submitted held (sbatch --hold)
    held.write_text(
        yaml.safe_dump(
            {
                **yaml.safe_load(config.read_text()),
                "slurm": {"cluster": "slurm", "slurm_additional_parameters": {"hold": True}},
            }
        )
    )
    began = time.monotonic()

    # (1) one submission: the bases as one array, the transfers as another after base A; the runner has exited
    # while every job is still held, so the study needs no process of its own
    lines = _submit(held)
    (bases, bases_array, none), (transfers, transfers_array, after) = _submitted(lines)
    record = json.loads((output / "submitit" / "jobs.json").read_text())
    ids = {name: entry["id"] for name, entry in record.items()}
    assert (bases, transfers, none) == (2, 2, "") and after == ids[BASE], lines
    assert sorted(ids) == sorted([BASE, OTHER_BASE, *TRANSFERS])
    assert {ids[BASE].split("_")[0], ids[OTHER_BASE].split("_")[0]} == {bases_array}
    assert {ids[cell].split("_")[0] for cell in TRANSFERS} == {transfers_array}
    for cell, job_id in ids.items():
        job = _job(cluster, job_id)
        assert (job["JobState"], job["Reason"]) == ("PENDING", "JobHeldUser"), (cell, job)
        if cell in TRANSFERS:
            assert job["Dependency"].startswith(f"afterok:{ids[BASE]}"), job
            assert job["KillOInInvalidDependent"] == "Yes", job
    assert not list(output.glob("cells/*/result.json"))
    assert f"4 cells in {output}, 0 finished, 4 to run" in "\n".join(lines)

    # (2) one transfer cancelled; submitted again, the study keeps the three jobs SLURM holds and submits that one
    cancelled = TRANSFERS[1]
    cluster.command("scancel", ids[cancelled])
    deadline = time.monotonic() + 30
    while cluster.job_field(ids[cancelled], "JobState") not in (None, "CANCELLED"):  # a pending task leaves no record
        assert time.monotonic() < deadline
        time.sleep(0.2)
    lines = _submit(config)
    assert [(count, waits) for count, _, waits in _submitted(lines)] == [(1, ids[BASE])], lines
    assert any("1 submitted now, 3 still queued or running" in line for line in lines), lines
    record = json.loads((output / "submitit" / "jobs.json").read_text())
    assert {name: entry["id"] for name, entry in record.items() if name != cancelled} == {
        name: job_id for name, job_id in ids.items() if name != cancelled
    }
    ids[cancelled] = record[cancelled]["id"]
    assert _job(cluster, ids[cancelled])["Dependency"].startswith(f"afterok:{ids[BASE]}")

    # (3) released, SLURM runs the study to its end on its own
    for cell in (BASE, OTHER_BASE, TRANSFERS[0]):
        cluster.command("scontrol", "release", ids[cell])
    _wait_until_idle(cluster)
    print(f"study on SLURM: {time.monotonic() - began:.1f} s (cluster start-up {cluster.start_seconds:.1f} s)")
    jobs = {cell: _job(cluster, job_id) for cell, job_id in ids.items()}
    assert all(job["JobState"] == "COMPLETED" for job in jobs.values()), jobs

    # (4) the base interrupted at step 3 was requeued once by submitit and resumed from its step-2 checkpoint; the
    # transfers began after its second run ended, and copied its final weights
    assert marker.is_file() and marker.read_text().startswith("USR2 to job "), "SignalOnce never fired"
    assert jobs[BASE]["Restarts"] == "1", jobs[BASE]
    assert all(jobs[cell]["Restarts"] == "0" for cell in (OTHER_BASE, *TRANSFERS)), jobs
    result = _result(output, BASE)
    assert (result["resumed_from_step"], result["steps"]) == (2, 4), result
    assert sorted(p.name for p in (output / "cells" / BASE / "logs").iterdir()) == ["version_0", "version_1"]
    assert all(_result(output, cell)["resumed_from_step"] == 0 for cell in (OTHER_BASE, *TRANSFERS))
    base_weights = hashlib.sha256((output / "cells" / BASE / "checkpoints" / "last.ckpt").read_bytes()).hexdigest()
    for cell in TRANSFERS:
        assert jobs[cell]["StartTime"] >= jobs[BASE]["EndTime"], (jobs[cell], jobs[BASE])
        assert _fit_began(output, cell) > (output / "cells" / BASE / "result.json").stat().st_mtime
        checkpoint = torch.load(output / "cells" / cell / "checkpoints" / "last.ckpt", weights_only=True)
        assert checkpoint["transfer"]["sha256"] == base_weights, cell

    # (5) the study run again submits nothing and writes the table (every cell exactly once) and the figures
    lines = _submit(config)
    assert not _submitted(lines) and f"4 cells in {output}, 4 finished, 0 to run" in "\n".join(lines), lines
    rows = read_table(output / "results.csv")
    assert sorted(row["cell"] for row in rows) == sorted([BASE, OTHER_BASE, *TRANSFERS])
    assert all(row["steps"] == 4 for row in rows)
    assert (output / "figures" / "figure2.png").is_file()
    assert cluster.command("squeue", "-h", "-o", "%i").strip() == ""


def test_submission_keeps_the_jobs_slurm_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No cluster needed: one array per set of needs, after their jobs; submitted again, the jobs SLURM still holds
    are kept and the rest submitted anew; a held cell that cannot be kept is refused, not run twice."""
    from experiments.study import launchers
    from experiments.study.jobs import CellError
    from experiments.study.schedule import Job, run_jobs

    def job(name: str, *needs: str) -> Job:
        return Job(name, tmp_path / name, (name,), needs)

    arrays, submitted, held = itertools.count(10), [], set()

    def submit_array(self: launchers.Slurm, batch: list[Job], after: list[str]) -> list[str]:
        array = next(arrays)
        submitted.append(([job.name for job in batch], list(after)))
        return [f"{array}_{index}" for index in range(len(batch))]

    monkeypatch.setattr(launchers.Slurm, "_submit_array", submit_array)
    monkeypatch.setattr(launchers, "_active", lambda ids: held.intersection(ids))
    launcher = launchers.Slurm({"cluster": "slurm", "timeout_min": 5}, tmp_path / "submitit")
    assert launcher.detached
    ended: list[str] = []
    jobs = [job("A"), job("B"), job("A1B", "A"), job("A2B", "A"), job("B1A", "B"), job("rand")]
    assert run_jobs(jobs, launcher, lambda done, error: ended.append(done.name), lambda *skip: None) is False
    assert ended == []  # handed to SLURM: nothing here waits for the jobs
    assert submitted == [(["A", "B", "rand"], []), (["A1B", "A2B"], ["10_0"]), (["B1A"], ["10_1"])]
    record = json.loads(launcher.record.read_text())
    assert record["A2B"] == {"id": "11_1", "cells": ["A2B"]} and len(record) == 6

    # A and rand finished; SLURM still holds A1B; B failed (so SLURM cancelled B1A) and A2B was cancelled
    submitted.clear()
    held.add("11_0")
    launcher.submit([job("B"), job("A1B", "A"), job("A2B", "A"), job("B1A", "B")])
    assert submitted == [(["B", "A2B"], []), (["B1A"], ["13_0"])]
    assert json.loads(launcher.record.read_text())["A1B"]["id"] == "11_0"

    # B fails again, but SLURM still holds B1A (not yet cancelled): submitting B anew would let B1A run twice
    held.add("14_0")
    with pytest.raises(CellError, match=r"SLURM still holds B1A \(job 14_0\)"):
        launcher.submit([job("B"), job("B1A", "B")])
