"""Training throughput of the paper's 227-pixel CaffeNet: fp32 against the speed switches, alone and together.

The switches are the config's: ``trainer.precision: bf16-mixed``, ``model.channels_last``,
``model.compile``. Each variant trains ``CaffeNetClassifier`` under a bare Trainer (no logger, bar or
checkpoint; Lightning's own overhead is ``benchmarks.lightning_overhead``) on batches already in
memory on the device, so the figure is the model's training speed, not the loader's. Steps are timed
after ``--warmup`` steps (compilation happens there); variants run round-robin ``--repeats`` times.

On a CPU the paper's batch of 256 takes tens of seconds a step: the default there is batch 32 and a
few steps. ``benchmarks.gpu_checks`` runs the GPU table at batch 256.

    python -m benchmarks.throughput [--device cpu] [--batch 32] [--steps 3] [--warmup 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import datetime
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
)

# name -> (precision, model switches)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "fp32": ("32-true", {}),
    "bf16-mixed": ("bf16-mixed", {}),
    "channels_last": ("32-true", {"channels_last": True}),
    "compile": ("32-true", {"compile": True}),
    "bf16-mixed + channels_last": ("bf16-mixed", {"channels_last": True}),
    "bf16-mixed + channels_last + compile": ("bf16-mixed", {"channels_last": True, "compile": True}),
}


def throughput_table(
    model: dict[str, Any], batch: int, steps: int, warmup: int, repeats: int, device: str, variants: list[str]
) -> list[list[str]]:
    """Rows ``[variant, images/s, ms/step, x fp32 (wall), x fp32 (CPU)]``: medians and paired ratios."""
    loader = Batches(model, batch, count=4, device=device).loader()
    accelerator = "gpu" if torch.device(device).type == "cuda" else "cpu"
    runs: dict[str, Callable[[], Timing]] = {}
    for name in variants:
        precision, switches = VARIANTS[name]

        def run(p: str = precision, s: dict[str, Any] = switches) -> Timing:
            return lightning_step_time({**model, **s}, loader, steps, warmup, accelerator=accelerator, precision=p)

        runs[name] = run
    times = interleaved(runs, repeats)
    baseline = times.get("fp32")
    rows = []
    for name, values in times.items():
        seconds = median(values)
        speedups = [
            f"{1 / paired_ratio(values, baseline, field):.2f}" if baseline else "-" for field in ("wall", "cpu")
        ]
        rows.append([name, f"{batch / seconds:,.1f}", f"{seconds * 1e3:.1f}", *speedups])
    return rows


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", choices=sorted(SIZES), default="paper")
    parser.add_argument("--batch", type=int, default=None, help="default: 256 on a GPU, 32 on the CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 50 on a GPU, 3 on the CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 10 GPU, 2 CPU)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's); 1 is steadier on a machine shared with other jobs",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.device(args.device).type == "cuda"
    batch = args.batch or (256 if gpu else 32)
    steps = args.steps or (50 if gpu else 3)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 2)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")

    rows = throughput_table(SIZES[args.size], batch, steps, warmup, args.repeats, args.device, variants)
    report = "\n".join(
        [
            f"Training throughput, {args.size} CaffeNet, batch {batch}, {steps} timed steps after {warmup}, "
            f"{args.repeats} repeat(s), data in memory on {args.device}, {torch.get_num_threads()} torch threads",
            f"Machine: {machine(args.device)}; {datetime.date.today()}",
            "",
            markdown(rows, ["variant", "images/s", "ms/step", "speed-up (wall)", "speed-up (CPU time)"]),
        ]
    )
    print(report)
    return report


if __name__ == "__main__":
    main()
