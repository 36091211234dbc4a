"""DDP on CPU ranks (gloo): each rank its own dropout masks, restored exactly on resume; evaluation as on one rank.

The 2-rank tests share one launch of two gloo ranks (``python -m tests.integration.test_ddp ddp OUT``), which fits on
both dropout paths (``SeededDropout``, the global generator), resumes each from a mid-run checkpoint, and tests a
checkpoint.
"""

from __future__ import annotations

import csv
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from callbacks.rng import GlobalRNGState, gather_dropout_states
from experiments.cli import main, run_cli
from models.caffenet_classifier import CaffeNetClassifier
from models.dropout import SeededDropout, rank_seed, stream_key
from models.loading import load_classifier
from tests.helpers.fake_data import needs_debian_fashion_mnist
from tests.helpers.fits import FASHION, assert_same_fit, fit_args, run_subprocess
from tests.helpers.run_dirs import run_dir

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(
    num_classes=5,
    num_outputs=None,
    in_channels=1,
    input_size=28,
    widths=(8, 8, 8, 8, 8, 16, 16),
    conv1_kernel=5,
    conv1_stride=1,
    init="kaiming",
)
SEEDED = ["--model.dropout_seed", "7"]


@pytest.fixture(autouse=True)
def cli_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest's own arguments are not the CLI's."""
    monkeypatch.setattr(sys, "argv", ["transferability"])


# --- one process ------------------------------------------------------------------------------------


def test_rank_zero_keeps_the_seed_and_other_ranks_get_their_own() -> None:
    """Rank 0's stream is the seed's (a single process draws as before); ranks differ from it and each other."""
    assert rank_seed(5, 0) == 5
    assert len({rank_seed(5, rank) for rank in range(8)}) == 8
    assert rank_seed(5, 1) != rank_seed(6, 1)


def test_seeded_dropout_on_one_process_draws_as_its_seed() -> None:
    """Without a process group a SeededDropout draws from ``Generator().manual_seed(seed)``, as it always did."""
    layer, x = SeededDropout(0.5, 123), torch.ones(4, 64)
    expected = torch.empty_like(x).bernoulli_(0.5, generator=torch.Generator().manual_seed(123)) * 2
    assert torch.equal(layer(x), expected)
    assert set(layer.get_extra_state()) == {stream_key(0, "cpu")}


def test_old_and_gpu_keys_load_and_survive_on_the_cpu() -> None:
    """``str(device)`` keys of older checkpoints are rank 0's; a GPU's state is kept, unused, on a CPU-only machine."""
    source = SeededDropout(0.5, 1)
    source(torch.ones(2, 8))
    cpu_state = source.get_extra_state()[stream_key(0, "cpu")]
    layer = SeededDropout(0.5, 1)
    cuda_state = torch.arange(16, dtype=torch.uint8)
    layer.set_extra_state({"cpu": cpu_state, "cuda:0": cuda_state})
    x = torch.ones(4, 64)
    assert torch.equal(layer(x), source(x))  # the old "cpu" key resumed rank 0's stream
    assert torch.equal(layer.get_extra_state()[stream_key(0, "cuda")], cuda_state)


def test_a_checkpoint_with_a_gpu_dropout_state_loads_on_the_cpu(tmp_path: Path) -> None:
    """A checkpoint whose dropout state was saved on ``cuda:0`` (and by rank 1) loads, trains and saves on the CPU."""
    model = CaffeNetClassifier(**TINY, dropout_seed=3)
    state = model.state_dict()
    for key in [key for key in state if key.endswith("_extra_state")]:
        state[key] = {"cuda:0": torch.arange(16, dtype=torch.uint8), "rank1/cuda": torch.ones(16, dtype=torch.uint8)}
    path = tmp_path / "gpu.ckpt"
    torch.save(
        {"state_dict": state, "hyper_parameters": dict(model.hparams), "pytorch-lightning_version": "2.6.0"}, path
    )
    loaded = load_classifier(str(path)).train()
    assert loaded(torch.zeros(2, 1, 28, 28)).shape == (2, 5)
    assert set(loaded.net.drop6.get_extra_state()) == {"rank0/cuda", "rank1/cuda", "rank0/cpu"}


def test_gathered_states_keep_each_ranks_own_stream() -> None:
    """On one process the gather is the module's own state; entries of other ranks it holds are kept."""
    layer = SeededDropout(0.5, 1)
    layer.set_extra_state({"rank1/cpu": torch.ones(3, dtype=torch.uint8)})
    layer(torch.ones(2, 2))
    module = torch.nn.Sequential(layer)
    state: dict[str, Any] = {"0._extra_state": None}
    gather_dropout_states(module, state, world_size=1)
    assert set(state["0._extra_state"]) == {"rank0/cpu", "rank1/cpu"}


# --- two gloo ranks ---------------------------------------------------------------------------------


class MaskRecorder(Callback):
    """Records each training forward's dropout after fc6 and fc7 (input non-zero, output kept) into ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.masks: list[tuple[Tensor, Tensor]] = []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for name in ("drop6", "drop7"):
            pl_module.net.get_submodule(name).register_forward_hook(self.record)

    def record(self, module: torch.nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        if module.training:
            self.masks.append((inputs[0] != 0, output != 0))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        torch.save(self.masks, f"{self.path}.rank{trainer.global_rank}.pt")


def ddp_fit(root: Path, extra: list[str], record: bool) -> list[str]:
    """A 2-rank FashionMNISTHalf fit of 6 steps (3 per rank an epoch: 40 images), checkpoints every 2 steps."""
    args = [
        *fit_args(root, FASHION, max_steps=6, every=2, val_every=3),
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--data.init_args.images_per_class",
        "8",
        *extra,
    ]
    if record:
        args += [
            "--trainer.callbacks+=tests.integration.test_ddp.MaskRecorder",
            "--trainer.callbacks.path",
            str(root / "masks"),
        ]
    return args


def eval_args(root: Path, checkpoint: Path, devices: int) -> list[str]:
    """``test`` of ``checkpoint`` on ``devices`` CPU processes, metrics to ``root``'s CSV log."""
    return [
        "test",
        "--seed_everything",
        "0",
        *FASHION,
        "--data.init_args.batch_size",
        "64",
        "--model.num_outputs",
        "null",
        "--model.widths",
        "[8, 8, 8, 8, 8, 16, 16]",
        "--model.conv1_kernel",
        "5",
        "--model.conv1_stride",
        "1",
        "--model.init",
        "kaiming",
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        str(devices),
        *(["--trainer.strategy", "ddp"] if devices > 1 else []),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.default_root_dir",
        str(root),
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir",
        str(root),
        "--ckpt_path",
        str(checkpoint),
    ]


def ddp_main(out: str) -> None:
    """The launch's fits, on both ranks: each dropout path whole and resumed from step 2, then a 2-rank test."""
    for path, extra in (("default", []), ("seeded", SEEDED)):
        whole = Path(out, path, "whole")
        main(ddp_fit(whole, extra, record=True))
        main(
            [
                *ddp_fit(Path(out, path, "resumed"), extra, record=False),
                "--ckpt_path",
                str(run_dir(whole) / "checkpoints" / "step=2.ckpt"),
            ]
        )
    main(
        eval_args(Path(out, "test2"), run_dir(Path(out, "default", "whole")) / "checkpoints" / "step=6.ckpt", devices=2)
    )


if __name__ == "__main__" and sys.argv[1:2] == ["ddp"]:
    ddp_main(sys.argv[2])


@pytest.fixture(scope="session")
def ddp_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the 2-rank launch's runs (made once per session)."""
    out = tmp_path_factory.mktemp("ddp_runs")
    code, output = run_subprocess("tests.integration.test_ddp", ["ddp", str(out)], timeout=400)
    assert code == 0, output[-3000:]
    assert output.count("Starting with 2 processes") == 1  # every fit ran on the two ranks of one launch
    return out


def mask_agreement(root: Path) -> float:
    """The share of dropout decisions rank 0 and rank 1 made alike (where both layers' inputs were non-zero)."""
    rank0, rank1 = (torch.load(root / f"masks.rank{rank}.pt", weights_only=True) for rank in (0, 1))
    assert len(rank0) == len(rank1) == 12  # 6 steps, 2 layers
    agree = torch.cat([(kept0 == kept1)[live0 & live1] for (live0, kept0), (live1, kept1) in zip(rank0, rank1)])
    assert agree.numel() > 100
    return float(agree.float().mean())


@needs_debian_fashion_mnist
@pytest.mark.parametrize("path", ["default", "seeded"])
def test_ranks_draw_their_own_masks(ddp_runs: Path, path: str) -> None:
    """2 gloo ranks: the masks agree about half the time (independent), not always (one stream copied)."""
    agreement = mask_agreement(ddp_runs / path / "whole")
    print(f"{path}: mask agreement between ranks {agreement:.3f}")
    assert 0.35 < agreement < 0.65


@needs_debian_fashion_mnist
@pytest.mark.parametrize("path", ["default", "seeded"])
def test_two_ranks_resume_exactly(ddp_runs: Path, path: str) -> None:
    """Resumed from step 2 on 2 ranks, the fit ends bit-identical: every rank's dropout went on where it was."""
    whole, resumed = ddp_runs / path / "whole", ddp_runs / path / "resumed"
    assert_same_fit(whole, resumed, 2, 6)
    saved = torch.load(run_dir(whole) / "checkpoints" / "step=6.ckpt", weights_only=True)
    assert len(saved["callbacks"][GlobalRNGState.__name__]["ranks"]) == 2
    if path == "seeded":
        assert set(saved["state_dict"]["net.drop6._extra_state"]) == {"rank0/cpu", "rank1/cpu"}


@needs_debian_fashion_mnist
def test_default_path_ranks_start_from_their_rank_seed(ddp_runs: Path) -> None:
    """Rank 1's global stream at step 2 is not rank 0's (one seed_everything seeded both alike before)."""
    saved = torch.load(run_dir(ddp_runs / "default" / "whole") / "checkpoints" / "step=2.ckpt", weights_only=True)
    rank0, rank1 = saved["callbacks"][GlobalRNGState.__name__]["ranks"]
    assert torch.equal(rank0["torch"], saved["callbacks"][GlobalRNGState.__name__]["torch"])
    assert not torch.equal(rank0["torch"], rank1["torch"])


@pytest.mark.slow
@needs_debian_fashion_mnist
def test_two_ranks_killed_then_resumed_from_last(ddp_runs: Path, tmp_path: Path) -> None:
    """A 2-rank fit SIGKILLed at step 5 and resumed with `--ckpt_path last` (step 4) on 2 ranks ends bit-identical."""
    args = ddp_fit(tmp_path, [], record=False)
    code, output = run_subprocess(
        "experiments.cli",
        [*args, "--trainer.callbacks+=tests.helpers.fits.KillAtStep", "--trainer.callbacks.step", "5"],
    )
    assert code == -signal.SIGKILL, output[-3000:]
    assert torch.load(run_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    code, output = run_subprocess("experiments.cli", [*args, "--ckpt_path", "last"])
    assert code == 0, output[-3000:]
    assert_same_fit(ddp_runs / "default" / "whole", tmp_path, 4, 6)


# --- evaluation -------------------------------------------------------------------------------------


def logged_metrics(root: Path) -> dict[str, float]:
    """The last value of each metric in the CSV log under ``root``."""
    (path,) = root.rglob("metrics.csv")
    with open(path) as file:
        return {key: float(value) for row in csv.DictReader(file) for key, value in row.items() if value}


@needs_debian_fashion_mnist
def test_test_loss_is_the_same_on_one_and_two_ranks(ddp_runs: Path, tmp_path: Path) -> None:
    """`test` of one checkpoint: loss, top-1 and top-5 over every image, whether on 1 rank or on 2."""
    main(eval_args(tmp_path, run_dir(ddp_runs / "default" / "whole") / "checkpoints" / "step=6.ckpt", devices=1))
    one, two = logged_metrics(tmp_path), logged_metrics(ddp_runs / "test2")
    print(f"test/loss on 1 rank {one['test/loss']:.6f}, on 2 ranks {two['test/loss']:.6f}")
    assert two["test/loss"] == pytest.approx(one["test/loss"], rel=1e-6)
    assert (two["test/top1"], two["test/top5"]) == (one["test/top1"], one["test/top5"])


def validate_args(root: Path, checkpoint: Path, *extra: str) -> list[str]:
    """``validate`` of ``checkpoint`` on one CPU process, with the CLI's default checkpoint settings."""
    return ["validate", *eval_args(root, checkpoint, devices=1)[1:], *extra]


@needs_debian_fashion_mnist
def test_validate_leaves_the_fits_history_and_asks_for_no_callbacks(
    ddp_runs: Path, tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    """`validate --ckpt_path` reports the fit's paper metric, appends nothing to its history, and does not ask
    for the fit's callbacks (whose checkpoint settings differ from the CLI defaults it runs with)."""
    checkpoint = run_dir(ddp_runs / "default" / "whole") / "checkpoints" / "last.ckpt"  # after the last validation
    history = torch.load(checkpoint, weights_only=True)["val_top1_history"]
    assert len(history) == 2  # validations at steps 3 and 6
    cli = run_cli(validate_args(tmp_path, checkpoint))
    assert cli.model.val_top1_history == history
    assert logged_metrics(tmp_path)["val/top1_best10_mean"] == pytest.approx(sum(history) / 2)
    assert not [w for w in recwarn if "Please add the following callbacks" in str(w.message)]


@needs_debian_fashion_mnist
def test_limit_val_batches_one_validates_one_batch(ddp_runs: Path, tmp_path: Path) -> None:
    """`--trainer.limit_val_batches 1` is one batch (an int), not 1.0 (every batch)."""
    checkpoint = run_dir(ddp_runs / "default" / "whole") / "checkpoints" / "step=6.ckpt"
    cli = run_cli(validate_args(tmp_path, checkpoint, "--trainer.limit_val_batches", "1"))
    assert cli.trainer.num_val_batches == [1]
