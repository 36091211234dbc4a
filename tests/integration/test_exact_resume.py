"""Exact resume: a fit stopped at any step and resumed with ``--ckpt_path`` ends bit-identical to the uninterrupted fit.

Data order, crops and mirrors, dropout, optimizer, schedule, the epoch's training accuracy and the logged metrics,
for both data modules, with DataLoader workers, under 2-process DDP and after a real SIGKILL.

The fits resume from checkpoints written at the end of a training step that is neither a validation step nor an
epoch's last batch, or written after a validation. Lightning 2.6 resumes a step-end checkpoint of a validation step
without running that validation, and one of an epoch's last batch without that epoch's end hooks (the epoch's
training accuracy is then never logged): the loop's restart logic, not the data stream.
"""

from __future__ import annotations

import json
import random
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from callbacks.rng import collect_rng_states, set_rng_states
from datamodules import FashionMNISTHalf, ImageNetHalf
from datamodules.resumable import ResumableLoader, ResumableSampler, SampleKey
from experiments.cli import main
from models.step_metrics import TrainAccuracy
from tests.helpers.fake_data import needs_debian_fashion_mnist
from tests.helpers.fits import (
    FASHION,
    IMAGENET_HALF,
    assert_same_fit,
    differences,
    fit_args,
    imagenet_args,
    make_half_tree,
    run_subprocess,
)
from tests.helpers.run_dirs import run_dir

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def cli_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest's own arguments are not the CLI's."""
    monkeypatch.setattr(sys, "argv", ["transferability"])


# --- the data stream --------------------------------------------------------------------------------


class KeyEcho(Dataset):
    """Returns the key it is asked for, as ``[index, seed]``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: SampleKey) -> torch.Tensor:
        return torch.tensor(key)


def keys(sampler: ResumableSampler, epoch: int) -> list[SampleKey]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_order_is_a_fresh_shuffle_drawn_from_seed_and_epoch() -> None:
    """Each epoch is a new permutation, a function of (seed, epoch) alone; the sample seeds differ."""
    sampler = ResumableSampler(range(50), seed=3)
    epochs = [keys(sampler, epoch) for epoch in range(3)]
    for epoch, order in enumerate(epochs):
        assert sorted(index for index, _ in order) == list(range(50))
        assert order == keys(ResumableSampler(range(50), seed=3), epoch)
        assert len({seed for _, seed in order}) == 50
    assert len({tuple(index for index, _ in order) for order in epochs}) == 3
    assert keys(ResumableSampler(range(50), seed=4), 1) != epochs[1]
    assert keys(ResumableSampler(range(50), seed=2), 2) != epochs[1]  # nearby seeds share no epoch order


def test_ranks_share_one_padded_order() -> None:
    """Rank r takes positions r, r + W, ... of the epoch's order padded to a multiple of W: every sample is seen."""
    whole = keys(ResumableSampler(range(10), seed=0), 2)
    shares = [keys(ResumableSampler(range(10), num_replicas=3, rank=rank, seed=0), 2) for rank in range(3)]
    assert [len(share) for share in shares] == [4, 4, 4]
    assert {index for share in shares for index, _ in share} == set(range(10))
    interleaved = [share[i] for i in range(4) for share in shares]
    assert interleaved[:10] == whole  # the same keys as one process: augmentation independent of the world size
    assert [index for index, _ in interleaved[10:]] == [index for index, _ in whole[:2]]


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_resumes_mid_epoch(workers: int) -> None:
    """After load_state_dict a new loader yields the rest of the epoch, then whole epochs; another epoch is not cut."""

    def loader() -> ResumableLoader:
        return ResumableLoader(KeyEcho(23), ResumableSampler(KeyEcho(23), seed=5), 4, num_workers=workers)

    whole = loader()
    whole.sampler.set_epoch(1)
    epoch1 = list(whole)
    assert whole.state_dict() == {"epoch": 1, "batches": 6}
    whole.sampler.set_epoch(2)
    epoch2 = list(whole)

    first = loader()
    first.sampler.set_epoch(1)
    stream = iter(first)
    head = [next(stream) for _ in range(4)]
    state = first.state_dict()
    assert state == {"epoch": 1, "batches": 4}

    resumed = loader()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)
    rest = list(resumed)
    assert resumed.state_dict() == {"epoch": 1, "batches": 6}
    resumed.sampler.set_epoch(2)
    for got, expected in zip([*head, *rest, *resumed], [*epoch1, *epoch2], strict=True):
        assert torch.equal(got, expected)

    other_epoch = loader()
    other_epoch.load_state_dict(state)
    other_epoch.sampler.set_epoch(2)
    assert len(list(other_epoch)) == 6


def test_loading_draws_nothing_from_the_global_generator(imagenet_tree: Path, tmp_path: Path) -> None:
    """Computing the mean image and iterating the training and validation loaders (with a worker) leave torch's
    global generator, which dropout draws from, alone."""
    state = torch.get_rng_state()
    dm = ImageNetHalf(
        str(imagenet_tree),
        *IMAGENET_HALF,
        batch_size=64,
        num_workers=1,
        image_size=32,
        crop_size=28,
        cache_dir=str(tmp_path / "cache"),
    )
    dm.prepare_data()
    dm.setup("fit")
    state = torch.get_rng_state()
    next(iter(dm.train_dataloader()))
    next(iter(dm.val_dataloader()))
    assert torch.equal(torch.get_rng_state(), state)


def epoch_images(dm: ImageNetHalf, epoch: int) -> dict[int, torch.Tensor]:
    """Every training image of an epoch as the loader delivers it (cropped, mirrored), by sample index."""
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    indices = [index for index, _ in loader.sampler]
    return dict(zip(indices, torch.cat([images for images, _ in loader]), strict=True))


@pytest.mark.parametrize("preprocess", ["caffe", "torchvision"])
def test_imagenet_crops_do_not_depend_on_the_workers(imagenet_tree: Path, tmp_path: Path, preprocess: str) -> None:
    """An epoch's crops and mirrors are the same with 0 or 2 worker processes, and differ from the next epoch's."""

    def module(workers: int) -> ImageNetHalf:
        dm = ImageNetHalf(
            str(imagenet_tree),
            *IMAGENET_HALF,
            batch_size=50,
            num_workers=workers,
            image_size=32,
            crop_size=28,
            preprocess=preprocess,
            cache_dir=str(tmp_path / "cache"),
        )
        dm.setup("fit")
        return dm

    in_process, with_workers = module(0), module(2)
    first = epoch_images(in_process, 1)
    assert all(torch.equal(image, first[i]) for i, image in epoch_images(with_workers, 1).items())
    second = epoch_images(in_process, 2)
    assert sum(not torch.equal(first[i], second[i]) for i in first) > 0.8 * len(first)


@needs_debian_fashion_mnist
def test_fashion_mirrors_do_not_depend_on_the_workers() -> None:
    """FashionMNISTHalf's mirrors come from the sample seeds: the same with 0 or 2 workers, about half mirrored."""
    batches = []
    for workers in (0, 2):
        dm = FashionMNISTHalf(images_per_class=100, batch_size=500, num_workers=workers)
        dm.setup("fit")
        batches.append(next(iter(dm.train_dataloader())))
    assert torch.equal(batches[0][0], batches[1][0])
    keys_ = list(dm.train_dataloader().sampler)[:500]
    plain = dm.train_set.images[[index for index, _ in keys_]].float() - dm.train_set.mean
    mirrored = (batches[0][0] != plain).flatten(1).any(1)
    assert torch.equal(mirrored, torch.tensor([seed & 1 for _, seed in keys_], dtype=torch.bool))
    assert 200 < int(mirrored.sum()) < 300


def test_rng_states_round_trip_through_a_safe_checkpoint(tmp_path: Path) -> None:
    """torch, Python and NumPy generators go back to the saved state, read with weights_only=True."""
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    np.random.randn()  # a cached Gaussian is part of NumPy's state
    torch.save(collect_rng_states(), tmp_path / "rng.pt")
    before = (torch.rand(3), random.random(), np.random.randn())
    set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    after = (torch.rand(3), random.random(), np.random.randn())
    assert torch.equal(after[0], before[0]) and after[1:] == before[1:]


def test_train_accuracy_totals_are_not_a_ddp_buffer() -> None:
    """DDP broadcasts rank 0's buffers before every forward: the running totals must not be one."""
    accuracy = TrainAccuracy(5)
    assert not list(accuracy.buffers())
    accuracy.update(torch.eye(5), torch.tensor([0, 1, 2, 3, 0]))
    accuracy.resume(accuracy.totals(None), first_rank=True)
    assert accuracy.hits.tolist() == [4.0, 5.0] and accuracy.images == 5
    accuracy.resume(accuracy.totals(None), first_rank=False)
    assert accuracy.hits.tolist() == [0.0, 0.0] and accuracy.images == 0


# --- helpers for the fits ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def imagenet_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_half_tree(tmp_path_factory.mktemp("imagenet"))


# --- fits through the CLI ---------------------------------------------------------------------------


@needs_debian_fashion_mnist
def test_fashion_resumes_exactly_mid_epoch(tmp_path: Path) -> None:
    """FashionMNISTHalf (7 batches an epoch, validation every 5 steps): resumed from the step-9 checkpoint (epoch 1,
    batch 2) or from last.ckpt as validation at step 10 left it, the fit ends as the uninterrupted one."""
    whole = tmp_path / "whole"
    main(
        [
            *fit_args(whole, FASHION, max_steps=12, every=3, val_every=5),
            "--trainer.callbacks+=tests.helpers.fits.CopyLastAt",
            "--trainer.callbacks.step",
            "11",
        ]
    )
    for name, step in (("step=9", 9), ("at11", 10)):
        resumed = tmp_path / name
        main(
            [
                *fit_args(resumed, FASHION, max_steps=12, every=3, val_every=5),
                "--ckpt_path",
                str(run_dir(whole) / "checkpoints" / f"{name}.ckpt"),
            ]
        )
        assert_same_fit(whole, resumed, step, 12)


@needs_debian_fashion_mnist
def test_overfit_batches_swaps_the_sampler(tmp_path: Path) -> None:
    """``trainer.overfit_batches`` rebuilds the training loader with a SequentialSampler: it trains in plain order."""
    args = fit_args(tmp_path, FASHION, max_steps=3, every=3, val_every=3)
    main([*args, "--trainer.overfit_batches", "2"])
    assert torch.load(run_dir(tmp_path) / "checkpoints" / "step=3.ckpt", weights_only=True)["global_step"] == 3


@pytest.fixture(scope="module")
def imagenet_whole(imagenet_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted ImageNetHalf fit of 16 steps, 2 persistent workers, checkpoints every 4 steps."""
    root = tmp_path_factory.mktemp("imagenet_whole")
    torch.set_num_threads(1)  # the module fixture outlives one_thread's scope; the subprocess fits run one thread
    main(fit_args(root, imagenet_args(imagenet_tree), max_steps=16, every=4, val_every=5))
    return root


def test_imagenet_with_workers_resumes_exactly(imagenet_whole: Path, imagenet_tree: Path, tmp_path: Path) -> None:
    """ImageNetHalf, 2 workers: resumed from the step-8 checkpoint (epoch 0, batch 8 of 9), ends as uninterrupted."""
    main(
        [
            *fit_args(tmp_path, imagenet_args(imagenet_tree), max_steps=16, every=4, val_every=5),
            "--ckpt_path",
            str(run_dir(imagenet_whole) / "checkpoints" / "step=8.ckpt"),
        ]
    )
    assert_same_fit(imagenet_whole, tmp_path, 8, 16)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_from_last(imagenet_whole: Path, imagenet_tree: Path, tmp_path: Path) -> None:
    """`python -m experiments.cli fit` SIGKILLed at step 14 (epoch 1, batch 5) and resumed with `--ckpt_path last`
    (the step-12 checkpoint) ends bit-identical to the uninterrupted fit."""
    args = fit_args(tmp_path, imagenet_args(imagenet_tree), max_steps=16, every=4, val_every=5)
    code, output = run_subprocess(
        "experiments.cli",
        [*args, "--trainer.callbacks+=tests.helpers.fits.KillAtStep", "--trainer.callbacks.step", "14"],
    )
    assert code == -signal.SIGKILL, output[-3000:]
    assert torch.load(run_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 12
    main([*args, "--ckpt_path", "last"])
    assert_same_fit(imagenet_whole, tmp_path, 12, 16)


def ddp_args(root: Path) -> list[str]:
    """A FashionMNISTHalf fit on 2 DDP processes on the CPU, one loader worker each: 7 batches per rank an epoch."""
    return [
        *fit_args(root, FASHION, max_steps=12, every=3, val_every=5),
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--data.init_args.num_workers",
        "1",
    ]


def ddp_main(out: str) -> None:
    """The DDP test's subprocess (``python -m tests.integration.test_exact_resume ddp OUT``): the uninterrupted fit,
    then the fit resumed from its step-9 checkpoint, in one launch of the two ranks (a launch costs seconds)."""
    main(ddp_args(Path(out, "whole")))
    main(
        [
            *ddp_args(Path(out, "resumed")),
            "--ckpt_path",
            str(run_dir(Path(out, "whole")) / "checkpoints" / "step=9.ckpt"),
        ]
    )


@pytest.mark.slow
@needs_debian_fashion_mnist
def test_ddp_two_processes_resume_exactly(tmp_path: Path) -> None:
    """2 DDP processes on the CPU, one loader worker each: resumed from the step-9 checkpoint (epoch 1, batch 2 of
    7 per rank), the fit goes on as the uninterrupted one (the weights carry both ranks' data and dropout)."""
    code, output = run_subprocess("tests.integration.test_exact_resume", ["ddp", str(tmp_path)])
    assert code == 0, output[-3000:]
    assert output.count("Starting with 2 processes") == 1  # both fits ran on the two ranks of one launch
    assert_same_fit(tmp_path / "whole", tmp_path / "resumed", 9, 12)


if __name__ == "__main__" and sys.argv[1:2] == ["ddp"]:
    ddp_main(sys.argv[2])


@needs_debian_fashion_mnist
def test_fused_group_resumes_exactly_mid_epoch(tmp_path: Path) -> None:
    """A fused group (models.fused.FusedTransfer through the CLI) resumed from a mid-epoch checkpoint ends as the
    uninterrupted group: every cell's weights, momentum, dropout generators, metrics and the data stream."""
    base = tmp_path / "base"
    main(fit_args(base, FASHION, max_steps=4, every=4, val_every=4))
    network = {
        "num_outputs": None,
        "widths": [8, 8, 8, 8, 8, 16, 16],
        "conv1_kernel": 5,
        "conv1_stride": 1,
        "init": "kaiming",
    }

    def group_args(root: Path) -> list[str]:
        cells = [{"n": n, "root": str(root / f"cell{n}"), "seed": 10 + n} for n in (2, 6)]
        model = [
            "--model",
            "models.fused.FusedTransfer",
            "--model.init_args.base_checkpoint",
            str(run_dir(base) / "checkpoints" / "step=4.ckpt"),
            "--model.init_args.cells",
            json.dumps(cells),
            "--model.init_args.network",
            json.dumps(network),
        ]
        return [*fit_args(root, FASHION, max_steps=12, every=3, val_every=5), *model]

    whole = tmp_path / "whole"
    main(group_args(whole))
    resumed = tmp_path / "resumed"
    main([*group_args(resumed), "--ckpt_path", str(run_dir(whole) / "checkpoints" / "step=9.ckpt")])
    assert_same_fit(whole, resumed, 9, 12)
    for n in (2, 6):
        cell = [
            torch.load(root / f"cell{n}" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
            for root in (whole, resumed)
        ]
        assert not differences(*cell)
