"""Fixtures shared by the test modules: W&B offline and silent in every test (no run ever waits for a network),
torch on one thread, the throwaway SLURM cluster; and the ``gpu`` marker.

Helpers that are not fixtures are in ``tests/helpers/`` (``from tests.helpers.<module> import ...``); fixtures used by
one folder's modules only are in that folder's ``conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.slurm_cluster import SlurmCluster, missing_reason


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    """W&B writes offline runs only."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run torch single-threaded: per-image ops gain nothing from threads, and on a small shared machine
    two OpenMP threads contending with other processes are many times slower than one."""
    import torch  # only for the tests that use it: collecting the others needs no torch here

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Any]:
    """A started :class:`SlurmCluster` for the whole test session (skips when not root or SLURM is missing).

    ``SLURM_CLUSTER_KEEP=1`` keeps its folder (configs, daemon logs) after the session;
    ``SLURM_CLUSTER_ACCOUNTING=0`` (or 1) runs it without (with) slurmdbd, instead of "when installed".
    """
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    accounting = {"0": False, "1": True}.get(os.environ.get("SLURM_CLUSTER_ACCOUNTING", ""))
    with SlurmCluster(accounting=accounting, keep=bool(os.environ.get("SLURM_CLUSTER_KEEP"))) as cluster:
        yield cluster


@pytest.fixture
def slurm_env(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """:func:`slurm_cluster` with its ``SLURM_CONF`` set in ``os.environ`` for one test (what submitit reads)."""
    for key, value in slurm_cluster.env.items():
        monkeypatch.setenv(key, value)
    return slurm_cluster


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked ``gpu`` (``gpu(2)``: two GPUs) where fewer CUDA GPUs are visible, saying how many."""
    marker = item.get_closest_marker("gpu")
    if marker is None:
        return
    needed = int(marker.args[0]) if marker.args else int(marker.kwargs.get("count", 1))
    import torch  # only for a gpu test: collecting the others needs no torch here

    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if found < needed:
        pytest.skip(f"needs {needed} CUDA GPU{'s' if needed > 1 else ''}, found {found}")
