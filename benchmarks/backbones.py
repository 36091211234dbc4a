"""Training step cost of the study's backbones on 28-pixel inputs, against the small CaffeNet of the default study.

Each network is built as its shipped Fashion-MNIST fit builds it (``experiments/configs/fmnist/*.yaml``) and
trains plain steps (forward, cross-entropy, backward, its recipe's optimizer) on one batch held in memory.
The networks take turns for ``--repeats`` rounds, so other load on the machine hits each alike, and the
figure is this process's CPU time per step (steadier than the wall clock on a shared machine), median over
rounds; the ratio is against the small CaffeNet in the same run.

    python -m benchmarks.backbones [--steps 5] [--batch 128] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml

from benchmarks.common import SMALL, machine, markdown
from models import BackboneClassifier, CaffeNetClassifier
from models.classifier import TransferClassifier

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "fmnist"
SHAPE: dict[str, Any] = dict(num_classes=5, in_channels=1, input_size=28)


def shipped(name: str) -> TransferClassifier:
    """The network of ``experiments/configs/fmnist/<name>.yaml``."""
    model = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["model"]
    return BackboneClassifier(**model["init_args"], **SHAPE)


def cpu_seconds_per_step(module: TransferClassifier, images: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    optimizer = module.recipe.make_optimizer(module.parameter_groups())
    start = time.process_time()
    for _ in range(steps):
        loss = F.cross_entropy(module(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.process_time() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    networks = {
        "small CaffeNet (fmnist/base.yaml)": CaffeNetClassifier(**SMALL),
        "ViT, 7x7 patches, 6 blocks of 64 (fmnist/vit.yaml)": shipped("vit"),
        "ResNet-18, small stem (fmnist/resnet18.yaml)": shipped("resnet18"),
    }
    images, labels = torch.randn(args.batch, 1, 28, 28), torch.randint(0, 5, (args.batch,))
    for module in networks.values():  # warm-up: first allocations
        cpu_seconds_per_step(module.train(), images, labels, 1)
    times: dict[str, list[float]] = {name: [] for name in networks}
    for _ in range(args.repeats):
        for name, module in networks.items():
            times[name].append(cpu_seconds_per_step(module, images, labels, args.steps))
    baseline = statistics.median(next(iter(times.values())))
    rows = []
    for name, module in networks.items():
        step = statistics.median(times[name])
        parameters = sum(p.numel() for p in module.net.parameters())
        rows.append(
            [name, f"{parameters:,}", len(module.net.stage_names) - 1, f"{1000 * step:.1f}", f"{step / baseline:.2f}x"]
        )
    print(
        f"Backbone step cost, batch {args.batch}, 28x28x1, {args.threads} thread(s), median of {args.repeats} "
        f"rounds of {args.steps} steps, CPU time; {machine()}, {datetime.date.today()}\n"
    )
    print(markdown(rows, ["network", "parameters", "transferable stages", "CPU ms/step", "vs small CaffeNet"]))


if __name__ == "__main__":
    main()
