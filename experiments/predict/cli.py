"""The ``transferability-predict`` command: per-stage transferability scores of a base network for target data.

    transferability-predict --base BASE.ckpt --config FIT.yaml [--data.init_args.half B] [--target_base B.ckpt]
        [--images 1000] [--seed 0] [--pooling avg|grid] [--estimators [logme, probe]] [--output DIR]
        [--wandb off|offline|online]

``--config`` takes a fit config (``experiments/configs/fmnist/base.yaml``, a study cell's ``config.yaml``): only its
``data`` section is read, and dotted ``--data...`` overrides after it change it, as ``transferability fit`` reads
them. A torchvision weights file as the base needs ``--backbone`` (and ``--backbone_options``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningDataModule

import datamodules  # noqa: F401 -- registers the data modules, so `--data FashionMNISTHalf` finds them by name
from experiments.errors import InputFileError, SettingError, ShortParseErrors
from experiments.predict import outputs
from experiments.predict.features import GRID, MAX_DIM, Pooling
from experiments.predict.run import BATCH_SIZE, IMAGES, WANDB_PROJECT, predict
from experiments.predict.scores import ESTIMATOR_NAMES, EstimatorName

PROG = "transferability-predict"


class PredictArgumentParser(ShortParseErrors, ArgumentParser):
    """jsonargparse's parser whose parse errors are the setting's line and a hint (``experiments.errors``)."""


def build_parser() -> ArgumentParser:
    """The command line: the inputs, the target data (``--config``, ``--data``), the settings."""
    parser = PredictArgumentParser(
        prog=PROG,
        description=(
            "Predict how transferable each stage of a base network is to target data, in seconds: LogME, the "
            "regularised H-score, TransRate and a linear probe on each stage's features of a sample of the target's "
            "validation images (see docs and experiments/predict)."
        ),
    )
    parser.add_argument(
        "--base",
        type=str,
        required=True,
        help="base network A: a checkpoint of this project (a fit's or a study cell's last.ckpt), or "
        "a torchvision weights file with --backbone",
    )
    parser.add_argument(
        "--config",
        type=str | None,
        default=None,
        help="a fit config whose data section is the target data (repeatable, merged left to right, "
        "--data.* overrides after it win)",
    )
    parser.add_subclass_arguments(
        LightningDataModule, "data", required=False, help="the target data module (or its section from --config)"
    )
    parser.add_argument(
        "--target_base",
        type=str | None,
        default=None,
        help="the target's own base network B (a checkpoint): adds the selffer and difference variants",
    )
    parser.add_argument(
        "--backbone",
        type=str | None,
        default=None,
        help="the torchvision backbone a --base weights file holds (resnet18, resnet50, vit_b_16, vit)",
    )
    parser.add_argument(
        "--backbone_options",
        type=dict[str, Any] | None,
        default=None,
        help="its options, e.g. '{stem: small}' (models.backbones.build_backbone)",
    )
    parser.add_argument("--images", type=int, default=IMAGES, help="validation images in the sample")
    parser.add_argument("--seed", type=int, default=0, help="draws the sample and the probe's held-out part")
    parser.add_argument(
        "--pooling",
        type=Pooling,
        default="avg",
        help="avg: mean over space or tokens; grid: adaptive average pool to grid x grid, flattened",
    )
    parser.add_argument("--grid", type=int, default=GRID, help="the grid pooling's side")
    parser.add_argument("--max_dim", type=int, default=MAX_DIM, help="the most features per stage")
    parser.add_argument(
        "--estimators", type=list[EstimatorName], default=list(ESTIMATOR_NAMES), help="which estimators (default all)"
    )
    parser.add_argument(
        "--match_mean",
        type=bool,
        default=True,
        help="each network reads the images with its own training data's mean image, where its "
        "checkpoint records it (as the study's AnB transfers)",
    )
    parser.add_argument("--batch_size", type=int, default=BATCH_SIZE, help="images per forward pass")
    parser.add_argument("--device", type=str, default="cpu", help="cpu, cuda or auto")
    parser.add_argument(
        "--output", type=str, default="runs/predict", help="folder for scores.csv, scores.md, scores.png, scores.json"
    )
    parser.add_argument(
        "--wandb",
        type=outputs.WandbMode,
        default="off",
        help="log the scores as a W&B table: off, offline or online (unreachable: offline)",
    )
    parser.add_argument("--wandb_project", type=str, default=WANDB_PROJECT, help="the W&B project")
    return parser


def data_section(path: str) -> dict[str, Any]:
    """The ``data`` section of a fit config file.

    Raises:
        InputFileError: No such file.
        SettingError: Not YAML, or no ``data`` section with a ``class_path``.
    """
    file = Path(path)
    if not file.is_file():
        raise InputFileError(
            f"--config {path!r} does not exist or is not a file: give a fit config, e.g. "
            "experiments/configs/fmnist/base.yaml or a study cell's config.yaml"
        )
    try:
        config = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        raise SettingError(f"--config {path!r} is not YAML: {err}") from err
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, dict) or not data.get("class_path"):
        raise SettingError(f"--config {path!r} has no data section with a class_path: give a fit config")
    return data


def expand_configs(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` with each ``--config FILE`` replaced by ``--data <its data section>``, in place (so overrides after
    it win, as the fit command merges them); and the config files."""
    args, files = [], []
    items = iter(argv)
    for arg in items:
        if arg == "--config" or arg.startswith("--config="):
            path = arg.partition("=")[2] if "=" in arg else next(items, None)
            if path is None:
                raise SettingError("--config needs a file")
            files.append(path)
            args += ["--data", json.dumps(data_section(path))]
        else:
            args.append(arg)
    return args, files


def main(argv: Sequence[str] | None = None) -> None:
    """The ``transferability-predict`` command (run by ``experiments.entry``); returns None, raises on failure."""
    args, files = expand_configs(sys.argv[1:] if argv is None else argv)
    config = build_parser().parse_args(args)
    if config.data is None:
        raise SettingError(
            "no target data: give --config FILE (a fit config with a data section) or --data CLASS "
            "with its --data.init_args.*"
        )
    predict(
        config.base,
        config.data.as_dict(),
        target_base=config.target_base,
        backbone=config.backbone,
        backbone_options=config.backbone_options,
        images=config.images,
        seed=config.seed,
        pooling=config.pooling,
        grid=config.grid,
        max_dim=config.max_dim,
        estimators=config.estimators,
        match_mean=config.match_mean,
        batch_size=config.batch_size,
        device=config.device,
        output=config.output,
        wandb=config.wandb,
        wandb_project=config.wandb_project,
        config_files=files,
    )


if __name__ == "__main__":
    from experiments.entry import predict as _predict

    sys.exit(_predict())
