"""The speed switches (bf16-mixed, channels_last, torch.compile) train to the same results within tolerance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything

from callbacks.transfer import TransferCallback
from models.caffenet import STAGE_NAMES
from models.caffenet_classifier import CaffeNetClassifier
from models.fused import FusedCell, FusedTransfer
from tests.helpers.fit_record import Record, weights
from tests.helpers.tiny_data import TINY_MODEL, TinyData

TINY = TINY_MODEL
STEPS = 4
CALM_LR = 1e-3
# bf16 keeps 8 bits of mantissa (0.4%). On this 8-channel net the fc layers' first update agrees with
# fp32's to 1%, the convolutions' (small gradients summed over many positions) to 10-25%; a missing or
# wrong gradient would be off by 100% or more.
BF16_UPDATE_ERROR = 0.3


def fit(
    root: Path, precision: str = "32-true", callbacks: list[Callback] | None = None, **model: Any
) -> tuple[CaffeNetClassifier, Record]:
    seed_everything(0, verbose=False)
    module = CaffeNetClassifier(**{**TINY, **model})
    record = Record()
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=STEPS,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=root,
        callbacks=[record, *(callbacks or [])],
    )
    trainer.fit(module, datamodule=TinyData(num_samples=32, batch_size=8, shuffle=True))
    return module, record


def assert_same_updates(
    initial: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], fast: dict[str, torch.Tensor], within: float
) -> None:
    """Each tensor moved from ``initial`` by the same update, up to ``within`` of the update's norm (0 if frozen)."""
    assert reference.keys() == fast.keys() == initial.keys()
    for key in reference:
        update = reference[key] - initial[key]
        error = (fast[key].float().contiguous() - reference[key]).norm()
        assert error <= within * update.norm(), f"{key}: |fast - ref| = {error:.3g}, |update| = {update.norm():.3g}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[CaffeNetClassifier, Record]:
    """fp32, contiguous, eager."""
    return fit(tmp_path_factory.mktemp("fp32"))


def assert_same_training(
    a: tuple[CaffeNetClassifier, Record], b: tuple[CaffeNetClassifier, Record], rtol: float, atol: float
) -> None:
    assert len(a[1].losses) == len(b[1].losses) == STEPS
    torch.testing.assert_close(torch.tensor(a[1].losses), torch.tensor(b[1].losses), rtol=rtol, atol=atol)
    wa, wb = weights(a[0]), weights(b[0])
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=rtol, atol=atol, msg=lambda m, key=key: f"{key}: {m}")


def test_channels_last_trains_the_same(tmp_path: Path, reference) -> None:
    """model.channels_last: the convolutions run channels-last; losses and weights match fp32 contiguous."""
    fast = fit(tmp_path, channels_last=True)
    assert fast[1].conv2_channels_last and not reference[1].conv2_channels_last
    assert fast[0].net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert_same_training(fast, reference, rtol=1e-4, atol=1e-5)


def test_bf16_mixed_trains_the_same_within_bf16_tolerance(tmp_path: Path) -> None:
    """trainer.precision bf16-mixed: fc6 computes in bfloat16, weights stay fp32, results match to bf16 precision."""
    # A calm step size: at lr 0.01 this tiny net's first steps on random data amplify bf16 rounding.
    fast = fit(tmp_path / "bf16", precision="bf16-mixed", lr=CALM_LR)
    fp32 = fit(tmp_path / "fp32", lr=CALM_LR)
    assert fast[1].fc6_dtype == torch.bfloat16 and fp32[1].fc6_dtype == torch.float32
    assert fast[0].net.fc6.weight.dtype == torch.float32
    torch.testing.assert_close(torch.tensor(fast[1].losses), torch.tensor(fp32[1].losses), rtol=3e-2, atol=0.0)
    assert_same_updates(fp32[1].initial, fp32[1].after_first, fast[1].after_first, within=BF16_UPDATE_ERROR)


@pytest.fixture
def eager_dropout_masks() -> Iterator[None]:
    """Inductor draws dropout with its own generator unless told to use eager's: same masks, comparable runs.

    ``config.patch`` rather than monkeypatch: monkeypatch's undo deletes the option from inductor's config. The
    option applies to new compilations only: dynamo's cache is emptied first, or a CaffeNet compiled by an earlier
    test in this process (same code, same shapes) is reused with inductor's own dropout (a failure that depended
    on which test files one pytest-xdist worker ran before this one).
    """
    torch._dynamo.reset()
    with torch._inductor.config.patch(fallback_random=True):
        yield
    torch._dynamo.reset()


def test_compile_after_transfer_trains_the_same(tmp_path: Path, eager_dropout_masks: None) -> None:
    """model.compile after TransferCallback's copy: frozen layers are the base's, training matches eager."""
    seed_everything(7, verbose=False)
    base = CaffeNetClassifier(**TINY)
    base_path = tmp_path / "base.ckpt"
    torch.save({"state_dict": base.state_dict()}, base_path)
    eager = fit(tmp_path / "eager", callbacks=[TransferCallback(str(base_path), n=3)])
    compiled = fit(tmp_path / "compiled", callbacks=[TransferCallback(str(base_path), n=3)], compile=True)
    assert compiled[0]._compiled and hasattr(compiled[0].net, "_compiled_call_impl")
    assert all("_orig_mod" not in key for key in compiled[0].state_dict())
    for key, value in base.net.state_dict().items():
        assert torch.equal(compiled[0].net.state_dict()[key], value) == (key.split(".")[0] in STAGE_NAMES[:3]), key
    assert_same_training(compiled, eager, rtol=1e-4, atol=1e-5)


def test_fused_cells_with_bf16_and_channels_last(tmp_path: Path) -> None:
    """Fused training under bf16-mixed and channels_last matches its fp32 contiguous run within bf16 tolerance."""
    seed_everything(7, verbose=False)
    base_path = tmp_path / "base.ckpt"
    torch.save({"state_dict": CaffeNetClassifier(**TINY).state_dict()}, base_path)
    trainer = dict(
        accelerator="cpu",
        devices=1,
        max_steps=STEPS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    results = {}
    for name, precision, channels_last in (("fp32", "32-true", False), ("fast", "bf16-mixed", True)):
        cells = [FusedCell(n, str(tmp_path / name / f"n{n}")) for n in (2, 6)]
        model = {**TINY, "lr": CALM_LR, "channels_last": channels_last}
        seed_everything(0, workers=True, verbose=False)
        group = FusedTransfer.from_network_arguments(str(base_path), cells, model)
        Trainer(**trainer, precision=precision, default_root_dir=tmp_path / name).fit(
            group, datamodule=TinyData(num_samples=32, batch_size=8)
        )
        results[name] = [
            torch.load(tmp_path / name / f"n{n}" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
            for n in (2, 6)
        ]
    initial = FusedTransfer.from_network_arguments(
        str(base_path), cells, model
    ).cells  # the cells' starting weights (seeded)
    for cell, fp32, fast in zip(initial, results["fp32"], results["fast"]):
        strip = {key.removeprefix("net."): value for key, value in fp32.items() if isinstance(value, torch.Tensor)}
        assert_same_updates(
            weights(cell),
            strip,
            {key.removeprefix("net."): v for key, v in fast.items() if isinstance(v, torch.Tensor)},
            within=BF16_UPDATE_ERROR,
        )
