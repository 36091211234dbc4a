"""Importing the project changes nothing outside it, and the private torch / W&B calls it needs are still there
(issue #22 item 4)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import torch

from tests.helpers import REPO


def imported_after(statement: str, first: str = "pass") -> dict[str, object]:
    """What a fresh interpreter has after ``statement``: its modules, matplotlib's backend, and the warning filters
    that ``statement`` added (those of ``first``, run before it, are not counted)."""
    code = (
        f"import sys, warnings; {first}; before = len(warnings.filters); {statement}\n"
        "backend = sys.modules['matplotlib'].rcParams._get_backend_or_none() if 'matplotlib' in sys.modules else None\n"
        "print(repr({'modules': sorted(sys.modules), 'backend': backend, 'filters': len(warnings.filters) - before}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return eval(out)


def test_models_files_does_not_import_lightning():
    """`models.files` (checkpoint writing) is light: importing it imports neither Lightning nor the networks."""
    modules = imported_after("import models.files")["modules"]
    assert not [name for name in modules if name.split(".")[0] in ("lightning", "torchvision", "torchmetrics")]
    assert "models.caffenet" not in modules


def test_the_models_package_still_gives_its_names():
    """The package's names (configs' `models.CaffeNetClassifier`) are still there, imported on first use."""
    import models
    from models.caffenet_classifier import CaffeNetClassifier

    assert models.CaffeNetClassifier is CaffeNetClassifier
    assert set(models.__all__) <= set(dir(models))


def test_importing_the_report_sets_no_backend_and_no_warning_filter():
    """The figures, the comparison and the pages writer choose no matplotlib backend and add no warning filter."""
    libraries = "import torch, torchvision, lightning.pytorch.cli, wandb, matplotlib.figure, jsonargparse"
    after = imported_after(
        "import experiments.report.figures, experiments.report.compare_files, experiments.report.pages,"
        " experiments.study.overlays, experiments.cli",
        first=libraries,
    )
    assert after["backend"] is None, after["backend"]
    assert after["filters"] == 0


def test_batches_are_allocated_in_shared_memory_inside_a_worker(monkeypatch):
    """`_batch_tensor` (the one use of torch's private `_typed_storage()._new_shared`) still gives a shared batch."""
    from datamodules import batches

    monkeypatch.setattr(batches, "get_worker_info", lambda: object())
    batch = batches._batch_tensor((2, 3, 4))
    assert batch.shape == (2, 3, 4) and batch.dtype == torch.float32 and batch.is_shared()
    monkeypatch.setattr(batches, "get_worker_info", lambda: None)
    assert not batches._batch_tensor((2, 3)).is_shared()


def test_wandb_still_has_the_private_artifact_call_lineage_uses():
    """`callbacks.lineage` declares an input offline through `Run._log_artifact(..., use_after_commit=...)`."""
    from wandb.sdk.wandb_run import Run

    assert "use_after_commit" in inspect.signature(Run._log_artifact).parameters


def test_a_module_outside_a_fit_has_no_trainer():
    """`attached_trainer` reads Lightning's public `trainer` property: None when not attached, the trainer when it
    is."""
    from lightning.pytorch import LightningModule, Trainer

    from models.classifier import attached_trainer

    module = LightningModule()
    assert attached_trainer(module) is None
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    module.trainer = trainer
    assert attached_trainer(module) is trainer
