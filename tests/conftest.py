"""Shared fixtures: W&B offline and silent in every test (no run ever waits for a network); the ``gpu`` marker."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    """W&B writes offline runs only."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


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
