"""What the training benchmarks share: network sizes, batches held in memory, step timing, the machine.

Every benchmark times a window of training steps after some warm-up steps (so set-up, the first
allocations and compilation are excluded) and reports figures as ratios against a baseline measured
in the same run, interleaving repeats so that other load on the machine hits every variant alike.
Each measurement is a :class:`Timing`: wall seconds and this process's CPU seconds (all threads), per
step. On a shared machine the wall time also counts waiting for the cores; the CPU time does not.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import lightning
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from torch.utils.data import DataLoader, Dataset

from models.caffenet_classifier import CaffeNetClassifier

# The small network of the default Fashion-MNIST study (experiments/configs/fmnist/base.yaml).
SMALL: dict[str, Any] = dict(
    num_classes=5,
    num_outputs=10,
    in_channels=1,
    input_size=28,
    widths=(16, 32, 48, 48, 32, 128, 128),
    conv1_kernel=5,
    conv1_stride=1,
    init="kaiming",
)
# The paper's CaffeNet (the module's defaults): 227 pixels, 500 classes of a half, fc8 1000 wide.
PAPER: dict[str, Any] = dict(num_classes=500)
SIZES = {"small": SMALL, "paper": PAPER}

# Trainer settings that leave only the training loop: no logger, bar, checkpoint, summary or validation.
BARE_TRAINER: dict[str, Any] = dict(
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    limit_val_batches=0,
    num_sanity_val_steps=0,
)


class Timing(NamedTuple):
    """Seconds per step: wall clock (mean), CPU time of this process (all its threads, mean), and the
    median step's wall time (on the CPU, robust to bursts of other load; on a GPU the mean again,
    as steps are not synchronised one by one)."""

    wall: float
    cpu: float
    typical: float


class Clock:
    """Starts and stops both clocks (synchronising a GPU first)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = device
        self.wall = self.cpu = self.last = 0.0
        self.laps: list[float] = []

    def start(self) -> None:
        synchronize(self.device)
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.last, self.laps = self.wall, []

    def lap(self) -> None:
        """Mark the start of the next step (on the CPU; a GPU step is asynchronous)."""
        now = time.perf_counter()
        self.laps.append(now - self.last)
        self.last = now

    def stop(self, steps: int) -> Timing:
        synchronize(self.device)
        self.lap()
        wall = (time.perf_counter() - self.wall) / steps
        typical = statistics.median(self.laps) if torch.device(self.device).type == "cpu" else wall
        return Timing(wall, (time.process_time() - self.cpu) / steps, typical)


class Batches(Dataset):
    """``count`` distinct batches of random images and labels, made once, served whole (``batch_size=None``).

    Args:
        model: The network's arguments (``in_channels``, ``input_size``, ``num_classes``).
        batch_size: Images per batch.
        count: Distinct batches held (the loader cycles through them epoch after epoch).
        device: Where the batches live (``cuda``: data already on the device).
    """

    def __init__(self, model: dict[str, Any], batch_size: int, count: int, device: str | torch.device = "cpu") -> None:
        generator = torch.Generator().manual_seed(0)
        channels, size = model.get("in_channels", 3), model.get("input_size", 227)
        classes = model.get("num_classes", 500)
        # The scale each init expects: Caffe's fillers take 0-255 pixels minus the mean (std ~60),
        # the He init of the small network unit-scale inputs (the Fashion-MNIST config's pixel_scale).
        scale = 60.0 if model.get("init", "caffe") == "caffe" else 1.0
        self.images = [
            torch.randn(batch_size, channels, size, size, generator=generator).mul_(scale).to(device)
            for _ in range(count)
        ]
        self.labels = [torch.randint(0, classes, (batch_size,), generator=generator).to(device) for _ in range(count)]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def loader(self) -> DataLoader:
        return DataLoader(self, batch_size=None, shuffle=False)


def endless(loader: DataLoader) -> Iterator[Any]:
    """The loader's batches, epoch after epoch (``itertools.cycle`` would keep a copy of the first epoch)."""
    while True:
        yield from loader


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(Callback):
    """Times training steps ``warmup`` .. the last, inclusive of everything Lightning does around them."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.clock: Clock | None = None
        self.timing: Timing | None = None
        self.steps = 0
        self.last_loss = float("nan")

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.warmup and self.clock is None:
            self.clock = Clock(pl_module.device)
            self.clock.start()
        elif self.clock is not None and self.timing is None:
            self.clock.lap()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.clock is not None:
            self.steps += 1
        if trainer.global_step >= trainer.max_steps and self.clock is not None:
            self.timing = self.clock.stop(self.steps)
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            self.last_loss = float(loss)  # a sanity check: finite

    @property
    def per_step(self) -> Timing:
        if self.timing is None:
            raise RuntimeError("the timed window did not run: use max_steps > warmup")
        return self.timing


def lightning_step_time(
    model: dict[str, Any],
    loader: DataLoader,
    steps: int,
    warmup: int,
    accelerator: str = "cpu",
    precision: str = "32-true",
    trainer: dict[str, Any] | None = None,
) -> Timing:
    """Time per training step of ``CaffeNetClassifier(**model)`` under the Trainer."""
    seed_everything(0, verbose=False)
    module = CaffeNetClassifier(**model)
    timer = StepTimer(warmup)
    settings = {**BARE_TRAINER, **(trainer or {})}
    callbacks = [timer, *settings.pop("callbacks", [])]
    # precision: one of the strings Lightning's Literal lists, given by the caller.
    Trainer(
        accelerator=accelerator,
        devices=1,
        max_steps=warmup + steps,
        precision=precision,  # type: ignore[arg-type]
        callbacks=callbacks,
        **settings,
    ).fit(module, train_dataloaders=loader)
    return timer.per_step


def plain_step_time(
    model: dict[str, Any],
    loader: DataLoader,
    steps: int,
    warmup: int,
    device: str | torch.device = "cpu",
    bf16: bool = False,
    metrics: bool = False,
) -> Timing:
    """Time per training step of the same network and optimizer (Caffe's groups, step schedule) in a plain loop.

    The LightningModule only supplies the network and ``configure_optimizers``; the loop is PyTorch's:
    forward, cross-entropy, zero_grad, backward, SGD step, scheduler step. ``channels_last`` and
    ``compile`` from ``model`` are applied as ``configure_model`` would. ``metrics``: also count the
    module's training accuracy (``TrainAccuracy``) as its ``training_step`` does (to split the module's own cost
    from Lightning's).
    """
    seed_everything(0, verbose=False)
    module = CaffeNetClassifier(**model).to(device)
    module.configure_model()
    config = module.configure_optimizers()
    scheduler_config = config["lr_scheduler"]
    if not isinstance(scheduler_config, dict):
        raise TypeError(f"configure_optimizers gave the scheduler {scheduler_config!r}, not its config")
    optimizer, scheduler = config["optimizer"], scheduler_config["scheduler"]
    module.train()
    batches = endless(loader)
    device = torch.device(device)
    clock = Clock(device)
    for step in range(warmup + steps):
        if step == warmup:
            clock.start()
        elif step > warmup:
            clock.lap()
        images, labels = next(batches)
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = module(images)
            loss = F.cross_entropy(logits, labels)
        if metrics:
            module.train_accuracy.update(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return clock.stop(steps)


def interleaved(variants: dict[str, Callable[[], Timing]], repeats: int) -> dict[str, list[Timing]]:
    """Run every variant ``repeats`` times, round-robin; each variant's measurements."""
    times: dict[str, list[Timing]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            times[name].append(run())
    return times


def pooled_ratio(times: Sequence[Timing], baseline: Sequence[Timing]) -> float:
    """Ratio of the medians over repeats of the median step (the typical step against the typical step)."""
    return median(times, "typical") / median(baseline, "typical")


def paired_ratio(times: Sequence[Timing], baseline: Sequence[Timing], field: str = "wall") -> float:
    """Median over repeats of ``time / baseline time`` of the same round (neighbours in time share the load)."""
    return statistics.median(getattr(t, field) / getattr(b, field) for t, b in zip(times, baseline))


def median(times: Sequence[Timing], field: str = "wall") -> float:
    return statistics.median(getattr(t, field) for t in times)


def machine(device: str | torch.device = "cpu") -> str:
    """One line: CPU model and cores (or the GPU), torch and Lightning versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    line = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, lightning {lightning.__version__}"
    if torch.device(device).type == "cuda":
        line = f"{torch.cuda.get_device_name(device)}; {line}"
    return line


def markdown(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
