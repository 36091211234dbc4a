"""Every GPU measurement of the project in one prepared script: a short table, within 8 minutes on one GPU.

Rows (paper CaffeNet, batch 256, ``--steps`` timed steps after ``--warmup``):

1. training on batches already on the device: a plain PyTorch loop (fp32, the baseline) and the
   LightningModule under a bare Trainer with fp32, bf16-mixed, channels_last, cudnn.benchmark (the
   Trainer's ``benchmark``), compile, and together, and the fast settings with the default progress bar;
   the plain loop again with the fast settings
   (Lightning's overhead at speed). Goal on an H100: at least 60,000 images/s with bf16.
2. fused training of the seven frozen AnB cells (fast settings): images/s summed over the cells,
   against one cell alone.
3. end to end from a pre-resized 256x256 JPEG copy on disk (``datamodules.ImageNetHalf``, caffe
   preset, one worker per core, fast settings): the copy is generated on the machine (photo-like JPEGs, quality 90;
   ``--imagenet-root`` points at a real pre-resized copy instead), then with ``device_preprocess``, with
   ``decode_on_device``, and from the raw PPM copy made from it (``--resized-format ppm``), with and without
   ``device_preprocess``. Goal: at least 20,000 images/s.

A row that would start after ``--budget-s`` seconds is skipped (and says so), so the script ends in
time; a row that fails prints its error and the rest go on. ``--smoke`` runs every row tiny on the CPU
(the small network, a few steps), to test the script where there is no GPU.

    python -m benchmarks.gpu_checks [--json results.json]        # on a GPU machine
    python -m benchmarks.gpu_checks --smoke                        # anywhere, about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import multiprocessing
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer, seed_everything

from benchmarks.common import (
    BARE_TRAINER,
    PAPER,
    SMALL,
    Batches,
    StepTimer,
    Timing,
    lightning_step_time,
    machine,
    markdown,
    plain_step_time,
)

GOAL_ON_DEVICE = 60_000  # images/s, bf16, H100
GOAL_END_TO_END = 20_000

# name -> (precision, model switches, trainer switches). cudnn.benchmark is the Trainer's ``benchmark``
# (torch's default, False, unless set): it picks the fastest convolution algorithm for the fixed shapes.
ON_DEVICE: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "fp32": ("32-true", {}, {}),
    "bf16-mixed": ("bf16-mixed", {}, {}),
    "channels_last": ("32-true", {"channels_last": True}, {}),
    "cudnn.benchmark": ("32-true", {}, {"benchmark": True}),
    "compile": ("32-true", {"compile": True}, {}),
    "bf16-mixed + channels_last + cudnn.benchmark": ("bf16-mixed", {"channels_last": True}, {"benchmark": True}),
    "bf16-mixed + channels_last + cudnn.benchmark + compile": (
        "bf16-mixed",
        {"channels_last": True, "compile": True},
        {"benchmark": True},
    ),
    # The Trainer's default progress bar, refreshed every step: what an interactive run pays.
    "bf16-mixed + channels_last + cudnn.benchmark, progress bar": (
        "bf16-mixed",
        {"channels_last": True},
        {"benchmark": True, "enable_progress_bar": True},
    ),
}
FAST = "bf16-mixed + channels_last + cudnn.benchmark"


class Settings:
    """What one run measures: full size on a GPU, tiny on the CPU with ``--smoke``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.smoke = args.smoke
        self.device = "cpu" if args.smoke else "cuda"
        self.accelerator = "cpu" if args.smoke else "gpu"
        self.model = SMALL if args.smoke else PAPER
        self.batch = args.batch or (8 if args.smoke else 256)
        self.steps = args.steps or (2 if args.smoke else 50)
        self.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 10)
        self.data_batch = args.batch or (4 if args.smoke else 256)
        self.images_per_class = 1 if args.smoke else 24
        self.workers = 0 if args.smoke else (os.cpu_count() or 1)


def on_device_rows(settings: Settings, run: Callable[[str, Callable[[], dict[str, Any]]], None]) -> None:
    """Training on batches already on the device: plain loop, Lightning with each switch."""
    loader = Batches(settings.model, settings.batch, count=4, device=settings.device).loader()

    def lightning(precision: str, switches: dict[str, Any], trainer: dict[str, Any]) -> dict[str, Any]:
        timing = lightning_step_time(
            {**settings.model, **switches},
            loader,
            settings.steps,
            settings.warmup,
            accelerator=settings.accelerator,
            precision=precision,
            trainer={"benchmark": False, **trainer},
        )
        return {"timing": timing, "images": settings.batch}

    def plain(bf16: bool, switches: dict[str, Any], benchmark: bool) -> dict[str, Any]:
        torch.backends.cudnn.benchmark = benchmark
        timing = plain_step_time(
            {**settings.model, **switches}, loader, settings.steps, settings.warmup, device=settings.device, bf16=bf16
        )
        torch.backends.cudnn.benchmark = False
        return {"timing": timing, "images": settings.batch}

    run("plain loop, fp32", lambda: plain(False, {}, False))
    for name, (precision, switches, trainer) in ON_DEVICE.items():
        run(f"Lightning, {name}", functools.partial(lightning, precision, switches, trainer))
    run(f"plain loop, {FAST}", lambda: plain(True, {"channels_last": True}, True))


def write_base(model: dict[str, Any], path: Path) -> Path:
    """A base checkpoint to transfer from: the weights of a fresh ``CaffeNetClassifier(**model)``; returns ``path``."""
    from models.caffenet_classifier import CaffeNetClassifier

    torch.save({"state_dict": CaffeNetClassifier(**model).state_dict()}, path)
    return path


def fused_row(settings: Settings) -> dict[str, Any]:
    """The seven frozen AnB cells of one base, fused, bf16 + channels_last, data on the device."""
    from models.caffenet import STAGE_NAMES
    from models.fused import FusedCell, FusedTransfer
    from models.transfer import depths

    seed_everything(0, verbose=False)
    loader = Batches(settings.model, settings.batch, count=4, device=settings.device).loader()
    with tempfile.TemporaryDirectory() as tmp:
        base = write_base(settings.model, Path(tmp) / "base.ckpt")
        cells = [FusedCell(n, str(Path(tmp) / f"AnB_n{n}"), seed=0) for n in depths(STAGE_NAMES)]
        module = FusedTransfer.from_network_arguments(str(base), cells, {**settings.model, "channels_last": True})
        timer = StepTimer(settings.warmup)
        trainer = Trainer(
            accelerator=settings.accelerator,
            devices=1,
            max_steps=settings.warmup + settings.steps,
            precision="bf16-mixed",
            benchmark=True,
            callbacks=[timer],
            **BARE_TRAINER,
        )
        trainer.fit(module, train_dataloaders=loader)
    return {"timing": timer.per_step, "images": settings.batch * len(cells), "note": "images summed over 7 cells"}


def _write_jpeg(job: tuple[str, int]) -> None:
    from torchvision.io import encode_jpeg

    from benchmarks.loader import photo_like

    path, seed = job
    image = photo_like(256, 256, torch.Generator().manual_seed(seed))
    Path(path).write_bytes(encode_jpeg(image, quality=90).numpy().tobytes())


def make_resized_copy(root: Path, images_per_class: int, workers: int) -> Path:
    """A pre-resized (256x256) JPEG tree for random0 half A: ``root/{train,val}/<wnid>/``, photo-like images."""
    from datamodules.imagenet_lists import imagenet_wnids
    from datamodules.splits import IMAGENET_SPLITS

    jobs = []
    for c in IMAGENET_SPLITS.classes("random0", "A"):
        wnid = imagenet_wnids()[c]
        for subset, count in (("train", images_per_class), ("val", 1)):
            folder = root / subset / wnid
            folder.mkdir(parents=True, exist_ok=True)
            jobs += [(str(folder / f"{wnid}_{j}.JPEG"), c * 1000 + j) for j in range(count)]
    # spawn, not fork: a forked child of a process that has run OpenMP threads can hang in its first torch op.
    with multiprocessing.get_context("spawn").Pool(
        max(workers, 1), initializer=torch.set_num_threads, initargs=(1,)
    ) as pool:
        pool.map(_write_jpeg, jobs, chunksize=64)
    return root


class Copies:
    """The pre-resized copies the end-to-end rows read, made once on first use under ``folder``."""

    def __init__(self, folder: Path, settings: Settings, imagenet_root: str | None) -> None:
        self.folder, self.settings, self.given = folder, settings, imagenet_root
        self._jpeg: Path | None = None
        self._ppm: Path | None = None

    def jpeg(self) -> tuple[Path, str]:
        if self.given is not None:
            return Path(self.given), "given copy"
        if self._jpeg is None:
            self._jpeg = make_resized_copy(self.folder / "jpeg", self.settings.images_per_class, os.cpu_count() or 1)
        return self._jpeg, f"generated JPEG copy, {self.settings.images_per_class} images per class"

    def ppm(self) -> tuple[Path, str]:
        from datamodules.prepare import check_images

        source, note = self.jpeg()
        if self._ppm is None:
            self._ppm = self.folder / "ppm"
            check_images(source, self._ppm, workers=os.cpu_count() or 1, fmt="ppm")
        return self._ppm, f"raw PPM copy of the {note}"


def end_to_end_row(
    settings: Settings, copy: tuple[Path, str], device_preprocess: bool = False, decode_on_device: bool = False
) -> dict[str, Any]:
    """CaffeNet training fed by ImageNetHalf from a pre-resized copy on disk, bf16 + channels_last.

    ``device_preprocess``: uint8 batches, crop, mirror and mean subtraction on the GPU;
    ``decode_on_device``: JPEG decoding there too (nvJPEG).
    """
    # --- the data path: datamodules.ImageNetHalf (caffe preset: decode, random 227 crop, mirror, mean image) ---
    from datamodules import ImageNetHalf
    from models.caffenet_classifier import CaffeNetClassifier

    root, note = copy
    with tempfile.TemporaryDirectory() as tmp:
        data = ImageNetHalf(
            root=str(root),
            split="random0",
            half="A",
            batch_size=settings.data_batch,
            num_workers=settings.workers,
            persistent_workers=settings.workers > 0,
            cache_dir=str(Path(tmp) / "cache"),
            device_preprocess=device_preprocess,
            decode_on_device=decode_on_device,
        )
        seed_everything(0, verbose=False)
        module = CaffeNetClassifier(num_classes=data.num_classes, channels_last=True)
        timer = StepTimer(settings.warmup)
        trainer = Trainer(
            accelerator=settings.accelerator,
            devices=1,
            max_steps=settings.warmup + settings.steps,
            precision="bf16-mixed",
            benchmark=True,
            callbacks=[timer],
            **BARE_TRAINER,
        )
        trainer.fit(module, datamodule=data)
    return {
        "timing": timer.per_step,
        "images": settings.data_batch,
        "note": f"{note}, {settings.workers} workers, batch {settings.data_batch}"
        + (", device_preprocess" if device_preprocess else "")
        + (", decode_on_device" if decode_on_device else ""),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny, on the CPU: tests the script")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--budget-s", type=float, default=420.0, help="start no row after this many seconds")
    parser.add_argument("--imagenet-root", default=None, help="a pre-resized ImageNet copy (default: generate one)")
    parser.add_argument("--skip", default="", help="comma-separated row groups to skip: device, fused, data")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA device: run on a GPU machine, or with --smoke to test the script on the CPU")
    settings = Settings(args)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    started = time.monotonic()
    rows: list[dict[str, Any]] = []

    def run(name: str, measure: Callable[[], dict[str, Any]]) -> None:
        elapsed = time.monotonic() - started
        if elapsed > args.budget_s:
            rows.append({"row": name, "status": f"skipped: {elapsed:.0f} s spent, budget {args.budget_s:.0f} s"})
            return
        try:
            result = measure()
            timing: Timing = result["timing"]
            rows.append(
                {
                    "row": name,
                    "status": "ok",
                    "images_per_s": result["images"] / timing.wall,
                    "ms_per_step": timing.wall * 1e3,
                    "note": result.get("note", ""),
                }
            )
        except Exception as err:  # a failing row must not cost the others
            traceback.print_exc()
            rows.append({"row": name, "status": f"failed: {type(err).__name__}: {err}"[:200]})
        print(f"[{time.monotonic() - started:6.0f} s] {rows[-1]}", flush=True)

    if "device" not in skip:
        on_device_rows(settings, run)
    if "fused" not in skip:
        run(f"fused AnB n=1..7, {FAST}", lambda: fused_row(settings))
    if "data" not in skip:
        with tempfile.TemporaryDirectory() as tmp:
            copies = Copies(Path(tmp), settings, args.imagenet_root)
            run(f"end to end from the pre-resized copy, {FAST}", lambda: end_to_end_row(settings, copies.jpeg()))
            run(
                f"end to end, device_preprocess, {FAST}",
                lambda: end_to_end_row(settings, copies.jpeg(), device_preprocess=True),
            )
            run(
                f"end to end, decode_on_device, {FAST}",
                lambda: end_to_end_row(settings, copies.jpeg(), device_preprocess=True, decode_on_device=True),
            )
            run(f"end to end from the raw PPM copy, {FAST}", lambda: end_to_end_row(settings, copies.ppm()))
            run(
                f"end to end, raw PPM copy, device_preprocess, {FAST}",
                lambda: end_to_end_row(settings, copies.ppm(), device_preprocess=True),
            )

    print_table(rows, settings, time.monotonic() - started)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine(settings.device),
                    "date": str(datetime.date.today()),
                    "smoke": settings.smoke,
                    "rows": rows,
                },
                indent=2,
            )
        )
    return rows


def print_table(rows: list[dict[str, Any]], settings: Settings, seconds: float) -> None:
    by_name = {row["row"]: row for row in rows if row["status"] == "ok"}
    baseline = by_name.get("plain loop, fp32")
    table = []
    for row in rows:
        if row["status"] != "ok":
            table.append([row["row"], "-", "-", "-", row["status"]])
            continue
        ratio = f"{row['images_per_s'] / baseline['images_per_s']:.2f}" if baseline else "-"
        note = row["note"]
        single = by_name.get(f"Lightning, {FAST}")
        if row["row"].startswith("fused") and single:
            note += f"; {row['images_per_s'] / single['images_per_s']:.2f}x one cell alone"
        table.append([row["row"], f"{row['images_per_s']:,.0f}", f"{row['ms_per_step']:.1f}", ratio, note])
    size = "small network (smoke)" if settings.smoke else "paper CaffeNet"
    print(
        f"\nGPU checks, {size}, batch {settings.batch}, {settings.steps} timed steps after {settings.warmup}; "
        f"{seconds:.0f} s in all"
    )
    print(f"Machine: {machine(settings.device)}; {datetime.date.today()}")
    print(f"Goals (H100): {GOAL_ON_DEVICE:,} images/s bf16 on device, {GOAL_END_TO_END:,} images/s end to end\n")
    print(markdown(table, ["row", "images/s", "ms/step", "x plain fp32", "note"]))


if __name__ == "__main__":
    main()
