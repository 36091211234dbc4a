"""``fit --help`` and ``--data.help`` list the project's data modules and classifiers by name."""

from __future__ import annotations

import sys

import pytest

from experiments.cli import main


@pytest.fixture(autouse=True)
def cli_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's own argv (the test runner's would be mixed in)."""
    monkeypatch.setattr(sys, "argv", ["transferability"])


def test_fit_help_lists_data_modules_and_classifiers(capsys: pytest.CaptureFixture[str]) -> None:
    """The ``--data`` and ``--model`` entries of ``fit --help`` name every class a config can give."""
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # the help wraps lines
    for name in (
        "datamodules.FashionMNISTHalf",
        "datamodules.ImageNetHalf",
        "datamodules.ImageFolderHalves",
        "models.CaffeNetClassifier",
        "models.BackboneClassifier",
        "models.fused.FusedTransfer",
    ):
        assert name in text


def test_data_help_by_short_name(capsys: pytest.CaptureFixture[str]) -> None:
    """``--data.help FashionMNISTHalf`` (no module path) shows that data module's settings."""
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--data.help", "FashionMNISTHalf"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "datamodules.FashionMNISTHalf" in out and "--data.images_per_class" in out and "--data.mean_half" in out
