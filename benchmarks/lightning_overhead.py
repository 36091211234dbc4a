"""Lightning's overhead: CaffeNetClassifier under the Trainer against a plain PyTorch loop.

Same network and initialisation, same optimizer (Caffe's parameter groups, the step schedule), same
batches held in memory and served by the same DataLoader. The plain loop is forward, cross-entropy,
zero_grad, backward, SGD step, scheduler step; the Lightning side is the real module, so it also pays
for its training accuracy (``TrainAccuracy``) and ``self.log`` calls (on the logger's steps). A second
plain loop also counts that accuracy, to split the module's own cost from Lightning's. Lightning variants:

- ``bare``: no logger, progress bar, checkpointing, model summary or validation (the overhead proper);
- ``default``: the Trainer's defaults: a TensorBoard/CSV logger (every 50 steps), the progress bar,
  checkpointing (saved at the end, outside the timed window);
- ``wandb``: the project's default logger, W&B offline, with the progress bar.

Goal: ``bare`` at most 1.03x the plain loop. Steps are timed after ``--warmup`` steps; variants run
round-robin ``--repeats`` times. Three ratios, each robust to other load on a shared machine in its
own way: of the median step (each step timed, the median over the run, then over repeats); of the
mean step, as the median over rounds of each round's ratio (neighbours in time share the load); and
the same for this process's CPU time.

    python -m benchmarks.lightning_overhead [--size small] [--batch 128] [--steps 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.common import (
    SIZES,
    Batches,
    Timing,
    interleaved,
    lightning_step_time,
    machine,
    markdown,
    median,
    paired_ratio,
    plain_step_time,
    pooled_ratio,
)

VARIANTS = ("bare", "default", "wandb")


def trainer_settings(variant: str, root: str) -> dict[str, Any]:
    if variant == "bare":
        return {}
    settings: dict[str, Any] = dict(
        logger=True,
        enable_progress_bar=True,
        enable_checkpointing=True,
        enable_model_summary=True,
        default_root_dir=root,
    )
    if variant == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        settings["logger"] = WandbLogger(project="transferability-benchmarks", offline=True, save_dir=root)
    return settings


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--variants", default="bare,default", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's); 1 is steadier on a machine shared with other jobs",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")

    model = SIZES[args.size]
    # One epoch covers the whole run, so no epoch-end checkpoint lands inside the timed window.
    loader = Batches(model, args.batch, args.warmup + args.steps).loader()
    with tempfile.TemporaryDirectory() as root:
        runs: dict[str, Callable[[], Timing]]
        runs = {
            "plain PyTorch loop": lambda: plain_step_time(model, loader, args.steps, args.warmup),
            "plain loop + the module's training accuracy": lambda: plain_step_time(
                model, loader, args.steps, args.warmup, metrics=True
            ),
        }
        for variant in variants:

            def lightning_run(v: str = variant) -> Timing:
                return lightning_step_time(model, loader, args.steps, args.warmup, trainer=trainer_settings(v, root))

            runs[f"Lightning, {variant}"] = lightning_run
        times = interleaved(runs, args.repeats)

    plain = times["plain PyTorch loop"]
    rows = [
        [
            name,
            f"{median(values, 'typical') * 1e3:.1f}",
            f"{median(values) * 1e3:.1f}",
            f"{pooled_ratio(values, plain):.3f}",
            f"{paired_ratio(values, plain):.3f}",
            f"{paired_ratio(values, plain, 'cpu'):.3f}",
        ]
        for name, values in times.items()
    ]
    report = "\n".join(
        [
            f"Lightning overhead, {args.size} network, batch {args.batch}, {args.steps} timed steps after "
            f"{args.warmup}, {args.repeats} interleaved repeats, {torch.get_num_threads()} torch threads",
            f"Machine: {machine()}; {datetime.date.today()}",
            "",
            markdown(
                rows,
                [
                    "loop",
                    "median step, ms",
                    "mean step, ms",
                    "x plain (median step)",
                    "x plain (mean, paired)",
                    "x plain (CPU time, paired)",
                ],
            ),
        ]
    )
    print(report)
    return report


if __name__ == "__main__":
    main()
