"""Where a CLI run's files go: its run folder (``experiments.runs``), its checkpoints and its loggers' files.

:func:`place_run` is called by the CLI before it builds anything; a DDP rank that rank 0 launched takes rank 0's
run folder and W&B id from ``RUN_ENV``.
"""

from __future__ import annotations

import os
from typing import Any

import yaml
from jsonargparse import ArgumentParser, Namespace

from experiments import runs
from experiments.errors import InputFileError
from experiments.runs import WANDB_LOGGER

DEFAULT_ROOT_DIR = "runs/fit"
RUN_ENV = "TRANSFERABILITY_RUN"  # rank 0's run folder and W&B id ("<version>:<id>"), for the ranks it launches


def place_run(parser: ArgumentParser | None, config: Any, subcommand: str | None) -> str:
    """Choose the run's folder and point ``--ckpt_path last``, the checkpoints and each logger's files at it.

    Args:
        parser: The subcommand's parser (to dump the config a resumed run is checked against); None without one.
        config: The subcommand's config, edited in place.
        subcommand: ``fit``, ``validate``, ``test`` or None (a study rendering a cell's config).

    Returns:
        The run folder: a ``version_N`` under ``trainer.default_root_dir`` for a fit with ``run_folders``, else
        ``trainer.default_root_dir`` itself.
    """
    root = config.trainer.default_root_dir or DEFAULT_ROOT_DIR
    run = root
    if subcommand == "fit" and config.run_folders:
        run = choose_run_folder(parser, config, root)
    elif subcommand is not None and config.run_folders and str(config.ckpt_path).lower() == "last":
        config.ckpt_path = str(runs.last_checkpoint(root, config.run_version))
    if runs.derived(config.checkpoint.dirpath, root):
        config.checkpoint.dirpath = os.path.join(run, "checkpoints")
    loggers = config.trainer.logger if isinstance(config.trainer.logger, list) else [config.trainer.logger]
    for logger in loggers:  # each logger's files in the run folder, unless the config puts them elsewhere
        if not isinstance(logger, Namespace) or not logger.get("init_args"):
            continue
        save_dir = logger.init_args.get("save_dir")
        if (save_dir is not None or logger.class_path == WANDB_LOGGER) and runs.derived(
            save_dir, root, logger_dir=True
        ):
            logger.init_args.save_dir = run
    return run


def choose_run_folder(parser: Any, config: Namespace, root: str) -> str:
    """The run folder of a fit (``experiments.runs``): a new ``version_N``, or the run ``--ckpt_path`` resumes,
    checked to be started with this command's seed and settings; records its version and W&B id in ``config``.

    Raises:
        RunFolderError: a fit that would overwrite a run, or resume another run than the command describes.
    """
    inherited = os.environ.get(RUN_ENV) if launched_rank() else None
    if inherited:  # a DDP rank started by rank 0: rank 0's run (rank 0 may have created its folder already)
        version_text, _, wandb_id = inherited.partition(":")
        version = int(version_text)
    else:
        version, resume = runs.choose_run(root, config.run_version, config.ckpt_path)
        saved = runs.saved_config(runs.run_folder(root, version)) if resume else None
        if saved is not None:
            current = yaml.safe_load(parser.dump(config, skip_none=False, skip_check=True))
            runs.check_same_run(saved, current, runs.run_folder(root, version))
        wandb_id = (runs.saved_wandb_id(saved) if resume else None) or runs.new_wandb_id()
        os.environ[RUN_ENV] = f"{version}:{wandb_id}"  # what the ranks Lightning's DDP launcher starts inherit
    config.run_version = version
    logger = config.trainer.logger
    if isinstance(logger, Namespace) and logger.class_path == WANDB_LOGGER:
        logger.init_args.id = wandb_id
        logger.init_args.resume = "allow"
    return str(runs.run_folder(root, version))


def launched_rank() -> bool:
    """Whether this process is a DDP rank > 0 that Lightning's launcher started (``LOCAL_RANK`` or ``RANK`` > 0)."""
    return any(int(os.environ.get(key, "0") or 0) > 0 for key in ("LOCAL_RANK", "RANK"))


def check_ckpt_path(path: str | None) -> None:
    """Refuse a ``--ckpt_path`` that names no file (``last``, ``best``, ``hpc``, registry names and URLs pass).

    Raises:
        InputFileError: the path is neither a special name nor an existing file.
    """
    name = str(path).lower()
    if path is None or name in ("last", "best", "hpc", "registry") or name.startswith("registry:") or "://" in name:
        return
    if not os.path.isfile(path):
        raise InputFileError(
            f"--ckpt_path {str(path)!r} is not a file: give an existing checkpoint, or `last` to resume from "
            "the last.ckpt of the run --run_version names (or of the only run under trainer.default_root_dir)"
        )
