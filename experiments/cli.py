"""The Lightning CLI entry point: ``transferability fit|validate|test --config ...``.

Groups: ``model`` (CaffeNetClassifier), ``data`` (any LightningDataModule, e.g.
``datamodules.FashionMNISTHalf``), ``transfer`` (TransferCallback), ``checkpoint``
(ModelCheckpoint), ``lr_monitor`` (LearningRateMonitor) and ``trainer``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from callbacks.checkpoint import BestAndLastCheckpoint, LearningRateMonitorWhenLogging
from callbacks.transfer import TransferCallback
from models.module import CaffeNetClassifier

# Lightning 2.6 on torch 2.14 warns at every fit about its own use of a deprecated pytree API.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# The epoch's training accuracy is summed over the ranks by models.module.TrainAccuracy before it is logged,
# and validation metrics by torchmetrics: Lightning's advice to add sync_dist does not apply.
warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting")

DEFAULT_ROOT_DIR = "runs/fit"
# Model arguments the data module supplies (linked, never stated twice).
LINKED_FROM_DATA = ("num_classes", "in_channels", "input_size")
WANDB_LOGGER = "lightning.pytorch.loggers.WandbLogger"


class LoggedConfigCallback(SaveConfigCallback):
    """Saves ``config.yaml`` next to the run (Lightning's default) and logs the full config to the logger."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.logger is not None:
            trainer.logger.log_hyperparams({"cli": self.config.as_dict()})


class TransferCLI(LightningCLI):
    """LightningCLI with the paper's defaults: W&B offline, best and last checkpoints, LR logging."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_callback", LoggedConfigCallback)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("auto_configure_optimizers", False)
        super().__init__(CaffeNetClassifier, LightningDataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(TransferCallback, "transfer")
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LearningRateMonitorWhenLogging, "lr_monitor")
        for key in LINKED_FROM_DATA:
            parser.link_arguments(f"data.{key}", f"model.{key}", apply_on="instantiate")
        parser.set_defaults({
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
        """Load ``--ckpt_path`` with ``weights_only``; keep checkpoints and W&B files under ``trainer.default_root_dir``."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if "weights_only" in config and config.weights_only is None:
            config.weights_only = True  # resume checkpoints are read safely too
        root = config.trainer.default_root_dir or DEFAULT_ROOT_DIR
        if config.checkpoint.dirpath is None:
            config.checkpoint.dirpath = os.path.join(root, "checkpoints")
        logger = config.trainer.logger
        if isinstance(logger, list) or not logger or logger is True:
            return
        if logger.class_path == WANDB_LOGGER and logger.init_args.get("save_dir") in (None, "."):
            logger.init_args.save_dir = root


def main(args: list[str] | None = None) -> TransferCLI:
    """Console-script entry point."""
    return TransferCLI(args=args)


if __name__ == "__main__":
    main()
