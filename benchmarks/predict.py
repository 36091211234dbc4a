"""Wall time of ``transferability-predict`` for every stage of each shipped network, beside the study's time to measure
the same curve by training it.

Each network is built as its Fashion-MNIST fit builds it (``experiments/configs/fmnist/{base,resnet18,vit}.yaml``:
the small CaffeNet, ResNet-18 with the small stem, the small ViT), a base A and a base B initialised with their own
seeds and saved as checkpoints (the time does not depend on the weights, so nothing is trained). The prediction is
``experiments.predict.predict`` with its defaults (1000 validation images of half B of ``random0``, ``avg`` pooling,
all four estimators) on Debian's Fashion-MNIST: ``raw`` (base A only) and ``raw + selffer`` (bases A and B). The time
is the call's wall clock (building the data, loading the checkpoints, the features, every estimator; not Python's
imports), the median of ``--repeats`` runs, with this process's CPU time beside it.

The study's time is from a finished study's ``results.csv`` (``wall_time_s`` of each cell's fit; a fused group's
wall time shared equally among its cells, so what the study paid): the AnB cells of one random split and seed, the
mean over the table's random splits and seeds, against ``raw`` (what AnB is predicted from); AnB and BnB cells
against ``raw + selffer``. The shipped studies ran on the 2-core development machine without GPU
(``docs/results.md``), and only the cuts they list (the ViT study: n = 1, 3, 5, 7), while the prediction scores every
stage; the bases, which both need, are counted on neither side.

    python -m benchmarks.predict [--repeats 1] [--images 1000] [--threads N]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks.common import machine, markdown
from experiments.predict import predict
from experiments.report.table import read_table
from models import BackboneClassifier, CaffeNetClassifier
from models.classifier import TransferClassifier
from models.loading import save_untrained

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs" / "fmnist"
SHAPE: dict[str, Any] = dict(num_classes=5, in_channels=1, input_size=28)
# network -> (its fit config, the study whose results.csv times its curve, or None)
NETWORKS: dict[str, tuple[str, str | None]] = {
    "small CaffeNet (fmnist/base.yaml)": ("base", "docs/default_study_results.csv"),
    "ResNet-18, small stem (fmnist/resnet18.yaml)": ("resnet18", None),
    "small ViT (fmnist/vit.yaml)": ("vit", "docs/fmnist_vit_results.csv"),
}


def fit_config(name: str) -> dict[str, Any]:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def base_checkpoint(model: dict[str, Any], seed: int, path: Path) -> Path:
    """The network of a config's model section, initialised with ``seed``, saved as a fit's checkpoint."""
    module: TransferClassifier
    if model.get("class_path"):
        module = BackboneClassifier(**model["init_args"], **SHAPE, init_seed=seed)
    else:
        module = CaffeNetClassifier(**model, **SHAPE, init_seed=seed)
    return save_untrained(module, path)


def study_seconds(path: Path) -> dict[str, Any]:
    """Mean wall seconds, over a study's random splits and seeds, of its AnB cells and of its AnB and BnB cells."""
    totals: dict[tuple[str, int], dict[str, float]] = defaultdict(lambda: {"AnB": 0.0, "BnB": 0.0})
    cuts = set()
    for row in read_table(path):
        if row["split"].startswith("random") and row["family"] in ("AnB", "BnB") and row["wall_time_s"] is not None:
            totals[row["split"], row["seed"]][row["family"]] += row["wall_time_s"]
            cuts.add(row["n"])
    anb = [value["AnB"] for value in totals.values()]
    both = [value["AnB"] + value["BnB"] for value in totals.values()]
    return {"anb": statistics.mean(anb), "both": statistics.mean(both), "replicates": len(totals), "cuts": sorted(cuts)}


def timed(repeats: int, **arguments: Any) -> tuple[float, float, int]:
    """Median wall and CPU seconds of ``predict(**arguments)`` over ``repeats`` runs, and its stage count."""
    walls, cpus, stages = [], [], 0
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        rows = predict(quiet=True, **arguments)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        stages = max(row.n for row in rows)
    return statistics.median(walls), statistics.median(cpus), stages


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, (name, study) in NETWORKS.items():
            config = fit_config(name)
            data = {**config["data"], "init_args": {**config["data"]["init_args"], "half": "B"}}
            bases = [
                base_checkpoint(config["model"], seed, Path(folder) / f"{name}_{half}.ckpt")
                for seed, half in ((0, "A"), (1, "B"))
            ]
            raw = timed(args.repeats, base=bases[0], data=data, images=args.images)
            both = timed(args.repeats, base=bases[0], target_base=bases[1], data=data, images=args.images)
            measured = study_seconds(ROOT / study) if study else None
            cells = (
                ["-", "-", "-", "-"]
                if measured is None
                else [
                    f"{measured['anb']:.0f} (n = {', '.join(map(str, measured['cuts']))})",
                    f"{measured['anb'] / raw[0]:.1f}x",
                    f"{measured['both']:.0f}",
                    f"{measured['both'] / both[0]:.1f}x",
                ]
            )
            rows.append([label, raw[2], f"{raw[0]:.1f} ({raw[1]:.1f})", f"{both[0]:.1f} ({both[1]:.1f})", *cells])
    header = [
        "network",
        "stages",
        "predict raw: wall s (CPU s)",
        "predict raw + selffer: wall s (CPU s)",
        "study AnB cells: s",
        "AnB / raw",
        "study AnB + BnB cells: s",
        "(AnB + BnB) / (raw + selffer)",
    ]
    text = (
        f"Transferability prediction of every stage, {args.images} Fashion-MNIST validation images, all four "
        f"estimators, median of {args.repeats}; {machine()}, {torch.get_num_threads()} torch threads, load "
        f"average {load:.1f} at the start, {datetime.date.today()}. Study: mean over its random splits and seeds "
        "of the cells' wall_time_s (its own run).\n\n" + markdown(rows, header)
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
