"""The Lightning CLI entry point: ``transferability fit|validate|test --config ...``.

Groups: ``model`` (a LightningModule class path; default ``models.CaffeNetClassifier``, whose
arguments may be given without ``class_path``; ``models.fused.FusedTransfer`` trains a fused group),
``data`` (any LightningDataModule, e.g. ``datamodules.FashionMNISTHalf``), ``transfer``
(TransferCallback), ``checkpoint`` (ModelCheckpoint), ``lr_monitor`` (LearningRateMonitor) and ``trainer``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from callbacks.checkpoint import BestAndLastCheckpoint, LearningRateMonitorWhenLogging
from callbacks.lineage import WandbLineage
from callbacks.rng import GlobalRNGState
from callbacks.throughput import ImageThroughput
from callbacks.transfer import TransferCallback
from models.fused import FusedCell, FusedTransfer
from models.loading import import_path

# Lightning 2.6 on torch 2.14 warns at every fit about its own use of a deprecated pytree API.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# The epoch's training accuracy is summed over the ranks by models.module.TrainAccuracy before it is logged,
# and validation metrics by torchmetrics: Lightning's advice to add sync_dist does not apply.
warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting")
# On a machine with SLURM installed Lightning suggests `srun` at every fit; study jobs reach SLURM through submitit.
warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system")

DEFAULT_ROOT_DIR = "runs/fit"
# Model arguments the data module supplies (linked, never stated twice).
LINKED_FROM_DATA = ("num_classes", "in_channels", "input_size")
WANDB_LOGGER = "lightning.pytorch.loggers.WandbLogger"
MODEL = "models.CaffeNetClassifier"


class LoggedConfigCallback(SaveConfigCallback):
    """Saves ``config.yaml`` next to the run (Lightning's default) and logs the full config to every logger."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams({"cli": self.config.as_dict()})


class TransferCLI(LightningCLI):
    """LightningCLI with the paper's defaults: W&B offline, best and last checkpoints, LR logging."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_callback", LoggedConfigCallback)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("auto_configure_optimizers", False)
        kwargs.setdefault("trainer_defaults",  # always on
                          {"callbacks": [WandbLineage(), ImageThroughput(), GlobalRNGState()]})
        super().__init__(LightningModule, LightningDataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(TransferCallback, "transfer")
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LearningRateMonitorWhenLogging, "lr_monitor")
        for key in LINKED_FROM_DATA:
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")
        parser.set_defaults({
            "model": {"class_path": MODEL},
            "checkpoint.monitor": "val/top1",
            "checkpoint.mode": "max",
            "checkpoint.save_last": True,
            "checkpoint.filename": "best-{step}",
            "lr_monitor.logging_interval": "step",
            "trainer.default_root_dir": DEFAULT_ROOT_DIR,
            "trainer.logger": {"class_path": WANDB_LOGGER,
                               "init_args": {"project": "transferability", "offline": True}},
        })

    def before_instantiate_classes(self) -> None:
        """Read ``--ckpt_path`` with ``weights_only``; checkpoints and W&B files under ``trainer.default_root_dir``."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if "weights_only" in config and config.weights_only is None:
            config.weights_only = True  # resume checkpoints are read safely too
        if issubclass(import_path(config.model.class_path), FusedTransfer):
            check_fused_config(config)
        root = config.trainer.default_root_dir or DEFAULT_ROOT_DIR
        if config.checkpoint.dirpath is None:
            config.checkpoint.dirpath = os.path.join(root, "checkpoints")
        logger = config.trainer.logger
        if isinstance(logger, list) or not logger or logger is True:
            return
        if logger.class_path == WANDB_LOGGER and logger.init_args.get("save_dir") in (None, "."):
            logger.init_args.save_dir = root

    def before_fit(self) -> None:
        """Name a missing ``--ckpt_path`` file before the loggers start a run (W&B would keep it, failed)."""
        check_ckpt_path(self.config_init[self.subcommand].get("ckpt_path"))

    before_validate = before_test = before_predict = before_fit


def check_ckpt_path(path: str | None) -> None:
    """Refuse a ``--ckpt_path`` that names no file (``last``, ``best``, ``hpc``, registry names and URLs pass).

    Raises:
        FileNotFoundError: the path is neither a special name nor an existing file.
    """
    name = str(path).lower()
    if path is None or name in ("last", "best", "hpc", "registry") or name.startswith("registry:") or "://" in name:
        return
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"--ckpt_path {str(path)!r} is not a file: give an existing checkpoint, or `last` to resume from "
            "the newest last.ckpt under trainer.default_root_dir (a fresh start when there is none)"
        )


def check_fused_config(config: Any) -> None:
    """Refuse, by name, the settings of a config that cannot apply to a fused group, before anything is built.

    Raises:
        ValueError: transfer settings (a group takes its base and each cell's n from ``model.init_args``), a
            checkpoint monitor that no cell logs, or a trainer setting the group refuses.
    """
    transfer, cells = config.transfer, config.model.init_args.cells or []
    if transfer.n or transfer.base_checkpoint is not None:
        raise ValueError(
            "transfer.n and transfer.base_checkpoint apply to one network; a fused group (model "
            "models.fused.FusedTransfer) takes its base from model.init_args.base_checkpoint and each cell's n from "
            "model.init_args.cells: leave the transfer group unset"
        )
    labels = [FusedCell(n=cell["n"], root=cell["root"], name=cell.get("name")).label for cell in cells]
    monitor = config.checkpoint.monitor
    if monitor is not None and not any(monitor.startswith(f"{label}/") for label in labels):
        raise ValueError(
            f"checkpoint.monitor={monitor!r} is not logged by a fused group, whose metrics are per cell "
            f"(<cell>/val/top1, cells {', '.join(labels)}): set checkpoint.monitor null (keep last.ckpt "
            "only, with checkpoint.save_top_k 0) or a cell's metric"
        )
    FusedTransfer.check_trainer_settings(config.trainer)


def run_cli(args: list[str] | None = None) -> TransferCLI:
    """Run the CLI on ``args`` (default: ``sys.argv``) and return it, with its trainer, model and data."""
    return TransferCLI(args=args)


def main(args: list[str] | None = None) -> None:
    """Console-script entry point: returns None, so ``sys.exit(main())`` exits 0 on success."""
    run_cli(args)


if __name__ == "__main__":
    main()
