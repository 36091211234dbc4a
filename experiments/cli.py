"""The Lightning CLI entry point: ``transferability fit|validate|test --config ...``.

Groups: ``model`` (a LightningModule class path; default ``models.CaffeNetClassifier``, whose
arguments may be given without ``class_path``; ``models.fused.FusedTransfer`` trains a fused group),
``data`` (any LightningDataModule, e.g. ``datamodules.FashionMNISTHalf``), ``transfer``
(TransferCallback), ``checkpoint`` (ModelCheckpoint), ``lr_monitor`` (LearningRateMonitor) and ``trainer``.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

import datamodules  # noqa: F401 -- registers the data modules, so `--help` and `--data.help` list them by name
from callbacks.checkpoint import BestAndLastCheckpoint, LearningRateMonitorWhenLogging
from callbacks.lineage import WandbLineage
from callbacks.progress import PlainProgress
from callbacks.rng import GlobalRNGState
from callbacks.throughput import ImageThroughput
from callbacks.transfer import TransferCallback
from experiments.errors import SettingError, ShortParseErrors, user_error
from experiments.machine import check_accelerator, plain_progress_wanted
from experiments.noise import silence_noise
from experiments.run_config import DEFAULT_ROOT_DIR, check_ckpt_path, place_run
from experiments.runs import WANDB_LOGGER
from experiments.wandb_setup import finish_wandb_run, prepare_wandb
from models import BackboneClassifier, CaffeNetClassifier  # noqa: F401 -- likewise the classifiers
from models.classifier import DEFAULT_CLASSIFIER, LINKED_FROM_DATA
from models.fused import FusedCell, FusedTransfer
from models.loading import import_path

# The config groups of one class each (the others, model and data, name theirs in class_path).
CLASS_GROUPS: dict[str, type] = {
    "transfer": TransferCallback,
    "checkpoint": BestAndLastCheckpoint,
    "lr_monitor": LearningRateMonitorWhenLogging,
    "trainer": Trainer,
}


class TransferArgumentParser(ShortParseErrors, LightningArgumentParser):
    """Lightning's parser whose parse errors are the setting's line and a hint (``experiments.errors``)."""


class LoggedConfigCallback(SaveConfigCallback):
    """Saves ``config.yaml`` in the run's folder and logs the full config to every logger."""

    run_dir: str | None = None  # the fit's run folder (``experiments.runs``), set by the CLI

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """A fit writes its run's ``config.yaml`` into the run folder (whatever its loggers' folders); ``validate``
        and ``test`` only log theirs (the run's file stays the fit's)."""
        if stage != "fit":
            self.save_config(trainer, pl_module, stage)
        elif self.run_dir is None:
            super().setup(trainer, pl_module, stage)
        elif not self.already_saved:
            if trainer.is_global_zero:
                os.makedirs(self.run_dir, exist_ok=True)
                self.parser.save(
                    self.config,
                    os.path.join(self.run_dir, self.config_filename),
                    skip_none=False,
                    overwrite=True,
                    multifile=self.multifile,
                )
                self.save_config(trainer, pl_module, stage)
            self.already_saved = True

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams({"cli": self.config.as_dict()})


class TransferCLI(LightningCLI):
    """LightningCLI with the paper's defaults: W&B offline, best and last checkpoints, LR logging."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        silence_noise()  # every fit comes through here: the console, a study in-process, a study job
        kwargs.setdefault("parser_class", TransferArgumentParser)
        kwargs.setdefault("save_config_callback", LoggedConfigCallback)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("auto_configure_optimizers", False)
        kwargs.setdefault(
            "trainer_defaults",  # always on
            {"callbacks": [WandbLineage(), ImageThroughput(), GlobalRNGState()]},
        )
        super().__init__(LightningModule, LightningDataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(TransferCallback, "transfer")
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LearningRateMonitorWhenLogging, "lr_monitor")
        for key in LINKED_FROM_DATA:
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")
        parser.add_argument(
            "--run_version",
            type=int | None,
            default=None,
            help="The run (version_N under trainer.default_root_dir) a fit starts, or resumes with "
            "--ckpt_path last; null: a new run takes the next free N (experiments.runs)",
        )
        parser.add_argument(
            "--run_folders",
            type=bool,
            default=True,
            help="Each fit in a version_N folder of its own; false: trainer.default_root_dir is the "
            "run's folder (a study's cells)",
        )
        for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches"):
            # Lightning's Union[int, float] reaches jsonargparse as float | int, which reads "1" as 1.0 (every
            # batch); int first reads it as one batch, and "0.5" still as a fraction (a private jsonargparse attribute).
            action = parser._option_string_actions[f"--trainer.{name}"]
            action._typehint = int | float | None  # type: ignore[attr-defined]
        parser.set_defaults(
            {
                "model": {"class_path": DEFAULT_CLASSIFIER},
                "checkpoint.monitor": "val/top1",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{step}",
                "lr_monitor.logging_interval": "step",
                "trainer.default_root_dir": DEFAULT_ROOT_DIR,
                "trainer.logger": {
                    "class_path": WANDB_LOGGER,
                    "init_args": {"project": "transferability", "offline": True},
                },
            }
        )

    def before_instantiate_classes(self) -> None:
        """Read ``--ckpt_path`` with ``weights_only``; checkpoints and W&B files under ``trainer.default_root_dir``."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if "weights_only" in config and config.weights_only is None:
            config.weights_only = True  # resume checkpoints are read safely too
        if issubclass(import_path(config.model.class_path), FusedTransfer):
            check_fused_config(config)
        if self.subcommand is not None:  # a run, not a study rendering a cell's config on a login node
            check_accelerator(config)
        run = place_run(self._parser(self.subcommand) if self.subcommand else None, config, self.subcommand)
        self.run_dir = run if self.subcommand == "fit" else None

    def instantiate_classes(self) -> None:
        """Build the classes; a class that refuses its settings is a ``SettingError`` naming the setting.

        Raises:
            SettingError, InputFileError: a constructor raised a ``ValueError`` or ``FileNotFoundError``.
        """
        try:
            super().instantiate_classes()
        except Exception as err:
            refused = user_error(err, self.config[self.subcommand] if self.subcommand else self.config, CLASS_GROUPS)
            if refused is None:
                raise
            raise refused from err

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer; with plain progress lines instead of tqdm's bar when stderr is not a terminal."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        if plain_progress_wanted(config.trainer):
            kwargs["callbacks"] = [*(config.trainer.get("callbacks") or []), PlainProgress()]
        trainer = super().instantiate_trainer(**kwargs)
        for callback in trainer.callbacks:  # type: ignore[attr-defined]  # set at run time by Lightning
            if isinstance(callback, LoggedConfigCallback):
                callback.run_dir = getattr(self, "run_dir", None)
        return trainer

    def before_fit(self) -> None:
        """Check what the user gave before the loggers start a run (W&B would keep it, failed): ``--ckpt_path``,
        the transfer against the network and its base; then make W&B ready (``experiments.wandb_setup``)."""
        ckpt_path = self.config_init[self.subcommand].get("ckpt_path")
        check_ckpt_path(ckpt_path)
        if self.subcommand == "fit":
            for callback in self.trainer.callbacks:  # type: ignore[attr-defined]  # set at run time by Lightning
                if isinstance(callback, TransferCallback):
                    callback.check(self.model)
        if ckpt_path is not None and self.trainer.checkpoint_callback is not None:
            # Resuming into its own folder: Lightning's "exists and is not empty" is what a resume expects.
            folder = getattr(self.trainer.checkpoint_callback, "dirpath", None) or ""
            warnings.filterwarnings("ignore", message=f"Checkpoint directory {re.escape(folder)} exists and is not")
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger):
                prepare_wandb(logger)

    before_validate = before_test = before_predict = before_fit


def check_fused_config(config: Any) -> None:
    """Refuse, by name, the settings of a config that cannot apply to a fused group, before anything is built.

    Raises:
        SettingError: transfer settings (a group takes its base and each cell's n from ``model.init_args``), a
            checkpoint monitor that no cell logs, or a trainer setting the group refuses.
    """
    transfer, cells = config.transfer, config.model.init_args.cells or []
    if transfer.n or transfer.base_checkpoint is not None or transfer.get("base_sha256") is not None:
        raise SettingError(
            "transfer.n and transfer.base_checkpoint apply to one network; a fused group (model "
            "models.fused.FusedTransfer) takes its base from model.init_args.base_checkpoint (its sha256 from "
            "model.init_args.base_sha256) and each cell's n from model.init_args.cells: leave the transfer group unset"
        )
    labels = [FusedCell(n=cell["n"], root=cell["root"], name=cell.get("name")).label for cell in cells]
    monitor = config.checkpoint.monitor
    if monitor is not None and not any(monitor.startswith(f"{label}/") for label in labels):
        raise SettingError(
            f"checkpoint.monitor={monitor!r} is not logged by a fused group, whose metrics are per cell "
            f"(<cell>/val/top1, cells {', '.join(labels)}): set checkpoint.monitor null (keep last.ckpt "
            "only, with checkpoint.save_top_k 0) or a cell's metric"
        )
    try:
        FusedTransfer.check_trainer_settings(config.trainer)
    except ValueError as err:
        raise SettingError(str(err)) from err


def run_cli(args: list[str] | None = None) -> TransferCLI:
    """Run the CLI on ``args`` (default: ``sys.argv``) and return it, with its trainer, model and data."""
    return TransferCLI(args=args)


def main(args: list[str] | None = None) -> None:
    """The ``transferability`` command (run by ``experiments.entry``); returns None, raises on failure.

    The run's W&B run is closed at the end, failed or not (``experiments.wandb_setup.finish_wandb_run``).
    """
    try:
        run_cli(args)
    except BaseException:
        finish_wandb_run(exit_code=1)
        raise
    finish_wandb_run(exit_code=0)


if __name__ == "__main__":
    from experiments.entry import transferability

    sys.exit(transferability())
