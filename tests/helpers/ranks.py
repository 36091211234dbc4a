"""Test modules run as processes of their own: a fit killed mid-run, or a two-rank DDP run of a test module's own
entry point (``strategy="ddp"`` relaunches the script per rank, so it cannot run inside pytest)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO


def run_module(
    module: str, args: list[str], what: str, timeout: int = 240, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """``python -m MODULE ARGS`` from the repository in its own process group; its exit status and output.

    Kills the whole group after ``timeout`` seconds (a DDP launcher's ranks are its children) and fails the test
    with "<what> hung".
    """
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        text=True,
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{what} hung (killed after {timeout} s):\n{output[-3000:]}")
    return process.returncode, output


def run_two_ranks(module: str, mode: str, folder: Path, base: Path, what: str, timeout: int = 240) -> list[Any]:
    """Run ``python -m <module> <mode> <folder> <base>`` (two DDP ranks) and return the ``rank0.json`` and
    ``rank1.json`` it writes; fails the test with the output when it exits non-zero."""
    returncode, output = run_module(module, [mode, str(folder), str(base)], f"{what} run", timeout)
    assert returncode == 0, output[-3000:]
    return [json.loads((folder / f"rank{rank}.json").read_text()) for rank in (0, 1)]
