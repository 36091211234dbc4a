"""GPU smoke tests: the paths a CPU cannot run, each in a few steps on CUDA.

A frozen transfer under each switch of ``benchmarks.gpu_checks.ON_DEVICE`` (fp32, bf16-mixed, channels_last,
cudnn.benchmark, compile, and together) keeps its frozen layers bit-identical to the base while the rest trains,
and takes the path it names (bf16 inside fc6, channels-last convolutions, a compiled network); the gpu checks'
fused row (seven frozen cells, bf16 + channels_last) trains; and with two GPUs a 2-rank DDP fit over NCCL keeps
the frozen layers on both ranks and ends with the same trained weights on both. Every test carries the ``gpu``
marker (tests/conftest.py): without enough CUDA GPUs it is skipped, saying how many it needs. On a GPU machine::

    .venv/bin/python -m pytest tests/benchmarks/test_gpu_smoke.py -m gpu -v
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything

from benchmarks.common import BARE_TRAINER
from benchmarks.gpu_checks import FAST, ON_DEVICE, Settings, fused_row, write_base
from callbacks.transfer import TransferCallback
from models.base_file import load_base
from models.caffenet import STAGE_NAMES
from models.caffenet_classifier import CaffeNetClassifier
from tests.helpers.fit_record import Record
from tests.helpers.ranks import run_two_ranks
from tests.helpers.tiny_data import TINY_MODEL, TinyData

pytestmark = pytest.mark.gpu

FROZEN = 3  # transfer n: conv1..conv3 copied from the base and frozen
STEPS = 4
SWITCHES = [name for name in ON_DEVICE if "progress bar" not in name]  # the bar changes no computation


def tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The network's tensors on the CPU (not the seeded dropout's generator states)."""
    return {key: value.detach().cpu() for key, value in module.state_dict().items() if isinstance(value, torch.Tensor)}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    seed_everything(7, verbose=False)
    return write_base(TINY_MODEL, tmp_path_factory.mktemp("base") / "base.ckpt")


@pytest.mark.parametrize("row", SWITCHES)
def test_frozen_transfer_on_gpu(row: str, base: Path, tmp_path: Path) -> None:
    """Each gpu checks switch: the frozen layers end bit-identical to the base, the others train, the path is taken."""
    precision, switches, trainer_switches = ON_DEVICE[row]
    seed_everything(0, verbose=False)
    module = CaffeNetClassifier(**TINY_MODEL, **switches)
    record = Record()
    trainer = Trainer(
        accelerator="gpu",
        devices=1,
        max_steps=STEPS,
        precision=precision,
        default_root_dir=tmp_path,
        callbacks=[TransferCallback(str(base), n=FROZEN), record],
        **{**BARE_TRAINER, "benchmark": False, **trainer_switches},
    )
    trainer.fit(module, datamodule=TinyData(num_samples=32, batch_size=8, shuffle=True))

    assert trainer.global_step == STEPS
    assert len(record.losses) == STEPS and all(math.isfinite(loss) for loss in record.losses), record.losses
    assert record.fc6_dtype == (torch.bfloat16 if precision == "bf16-mixed" else torch.float32)
    assert record.conv2_channels_last == bool(switches.get("channels_last"))
    assert module.net.fc6.weight.dtype == torch.float32  # bf16-mixed keeps fp32 weights
    if switches.get("compile"):
        assert module._compiled and hasattr(module.net, "_compiled_call_impl")
    start, end = load_base(str(base))[0], tensors(module.net)
    for key, value in start.items():
        frozen = key.split(".")[0] in STAGE_NAMES[:FROZEN]
        assert torch.equal(end[key], value) == frozen, f"{key}: {'changed although frozen' if frozen else 'untrained'}"
    assert module.device.type == "cuda", f"trained on {module.device}"


def test_fused_row_of_the_gpu_checks(tmp_path: Path) -> None:
    """The gpu checks' fused row (seven frozen AnB cells of the paper CaffeNet, bf16 + channels_last) trains."""
    settings = Settings(argparse.Namespace(smoke=False, batch=32, steps=2, warmup=1))
    result = fused_row(settings)
    assert result["images"] == 32 * 7 and math.isfinite(result["timing"].wall) and result["timing"].wall > 0


class RecordRank(Callback):
    """Writes what this rank ends with: its backend and device, frozen layers against the base, a digest of the rest."""

    def __init__(self, out_dir: str, base: str) -> None:
        self.out_dir, self.base = out_dir, base

    def on_train_end(self, trainer: Trainer, pl_module: Any) -> None:
        start, end = load_base(self.base)[0], tensors(pl_module.net)
        frozen = [key for key in end if key.split(".")[0] in STAGE_NAMES[:FROZEN]]
        trained = b"".join(end[key].numpy().tobytes() for key in sorted(end) if key not in frozen)
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "backend": torch.distributed.get_backend(),
            "device": str(pl_module.device),
            "steps": trainer.global_step,
            "frozen_equal_base": all(torch.equal(end[key], start[key]) for key in frozen),
            "trained_sha": hashlib.sha256(trained).hexdigest(),
        }
        Path(self.out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def nccl_main(out_dir: str, base: str) -> None:
    """Entry point of the NCCL test's subprocess: ``python -m tests.benchmarks.test_gpu_smoke nccl OUT BASE``."""
    precision, switches, trainer_switches = ON_DEVICE[FAST]
    seed_everything(0, verbose=False)
    module = CaffeNetClassifier(**TINY_MODEL, **switches)
    trainer = Trainer(
        accelerator="gpu",
        devices=2,
        strategy="ddp",
        max_steps=STEPS,
        precision=precision,
        default_root_dir=out_dir,
        callbacks=[TransferCallback(base, n=FROZEN), RecordRank(out_dir, base)],
        **{**BARE_TRAINER, **trainer_switches},
    )
    trainer.fit(module, datamodule=TinyData(num_samples=64, batch_size=8))


@pytest.mark.gpu(2)
def test_two_ranks_over_nccl(base: Path, tmp_path: Path) -> None:
    """DDP on two GPUs (NCCL, the fast settings): frozen layers equal the base on both ranks, the trained layers
    end equal across ranks, and nothing hangs."""
    records = run_two_ranks("tests.benchmarks.test_gpu_smoke", "nccl", tmp_path, base, "NCCL")
    assert [(r["rank"], r["device"]) for r in records] == [(0, "cuda:0"), (1, "cuda:1")], records
    for record in records:
        assert (record["world_size"], record["backend"], record["steps"]) == (2, "nccl", STEPS), record
        assert record["frozen_equal_base"], record
    assert records[0]["trained_sha"] == records[1]["trained_sha"], records


if __name__ == "__main__" and sys.argv[1:2] == ["nccl"]:
    nccl_main(*sys.argv[2:4])
