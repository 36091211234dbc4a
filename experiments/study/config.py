"""A study's configuration: the :class:`Study` dataclass and the ``transferability-study`` command line.

A study config is YAML with the fields of :class:`Study` (see ``experiments/configs/studies/``);
``--config`` files merge left to right and any field can be overridden with a dotted flag
(``--grid.seeds [0,1]``), as with the Lightning CLI. ``--print_config`` prints the merged config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser

from experiments.errors import ShortParseErrors
from experiments.study.grid import Grid
from experiments.study.launchers import LauncherName


@dataclass
class WandbSettings:
    """Weights & Biases: every cell is a run in the study's group; the table and figures are a last run.

    Args:
        enabled: Log to W&B at all (the CSV metrics in each cell folder are always written).
        project: The W&B project.
        group: The runs' group (None: the study's name).
        offline: Write runs locally only (upload later with ``wandb sync``); needs no network.
        entity: The W&B entity (None: your default).
    """

    enabled: bool = True
    project: str = "transferability"
    group: str | None = None
    offline: bool = True
    entity: str | None = None


@dataclass
class Study:
    """A transferability study: which networks to train, at what scale, where, and where the results go.

    Args:
        name: The study's name (the W&B group and the default output folder).
        fit_configs: Lightning CLI fit configs every cell starts from, merged left to right
            (e.g. ``experiments/configs/fmnist/base.yaml``); paths are relative to the working folder.
        output_dir: Where the cell folders, ``results.csv``, ``summary.csv`` and ``figures/`` go
            (None: ``studies/<name>``).
        overrides: A config merged over the fit configs for every cell: the study's scale
            (e.g. ``{trainer: {max_steps: 300}, data: {init_args: {images_per_class: 500}}}``).
        grid: Which cells to train (``experiments.grid.Grid``).
        checkpoint_every_n_steps: Save ``last.ckpt`` every this many steps (it is also saved at
            every validation and at the end). A killed study loses at most the steps since the last save.
        launcher: ``inprocess`` (default), ``subprocess``, ``gpus`` (one job per GPU), ``cpus`` (``cpu_workers``
            jobs at once on the CPU's cores) or ``slurm``
            (submitit job arrays). On each, a job starts as soon as the job training its base has finished.
        gpus: GPU indices for the ``gpus`` launcher (None: every visible GPU).
        cpu_workers: Jobs at once for the ``cpus`` launcher, each in a subprocess with an equal share of the
            cores as its threads and no GPU (2: on 2 cores, two 1-thread jobs).
        slurm: submitit ``AutoExecutor`` parameters for ``slurm`` (e.g. ``slurm_partition``,
            ``timeout_min``, ``gpus_per_node``, ``cpus_per_task``, ``mem_gb``,
            ``slurm_array_parallelism``; ``cluster: local`` tries it on this machine).
        wandb: Weights & Biases settings.
        paper_overlay: Overlay the paper's ImageNet numbers on the figures and print its value beside each effect
            (for the CaffeNet ImageNet study: the paper's numbers are CaffeNet's).
        convergence_tolerance: tau of the report's convergence check, as a fraction of top-1 (0.005: 0.5
            points): BnB+ - base must be shown equivalent to zero within it, every base's final rise must stay
            under it, and an effect under twice it is read as within the tolerance
            (``experiments.report.convergence``).
        fused: Train the frozen transfer cells that share a base network, a target half and a seed
            together in one fit (``models.fused.FusedTransfer``: the base's frozen layers once per batch),
            a job with its own ``config.yaml`` under ``fused/``; each cell keeps its own folder, checkpoint
            and row. Applies on every launcher to
            single-device cells without ``compile``; ``false`` trains every cell alone.
    """

    name: str
    fit_configs: list[str]
    output_dir: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    grid: Grid = field(default_factory=Grid)
    checkpoint_every_n_steps: int = 1000
    launcher: LauncherName = "inprocess"
    gpus: list[int] | None = None
    cpu_workers: int = 2
    slurm: dict[str, Any] = field(default_factory=dict)
    wandb: WandbSettings = field(default_factory=WandbSettings)
    paper_overlay: bool = False
    convergence_tolerance: float = 0.005
    fused: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.convergence_tolerance < 1:
            raise ValueError(
                f"convergence_tolerance is a fraction of top-1 accuracy in (0, 1) (0.005: 0.5 points), "
                f"got {self.convergence_tolerance!r}"
            )


class StudyArgumentParser(ShortParseErrors, ArgumentParser):
    """jsonargparse's parser whose parse errors are the setting's line and a hint (``experiments.errors``)."""


def build_parser() -> ArgumentParser:
    """The ``transferability-study`` command line: a :class:`Study` (``--config`` YAML, dotted overrides)."""
    parser = StudyArgumentParser(
        prog="transferability-study",
        description=(
            "Run a transferability study (Yosinski et al. 2014): the grid of networks in dependency order, "
            "resumable, then the results table and the paper's figures."
        ),
    )
    parser.add_argument("--config", action=ActionConfigFile, help="a study config (YAML)")
    parser.add_class_arguments(Study)
    parser.add_argument(
        "--plan", action="store_true", help="write the cell configs and list the cells with their state; train nothing"
    )
    parser.add_argument("--figures_only", action="store_true", help="redraw the figures from results.csv only")
    return parser


def study_from_config(parser: ArgumentParser, config: Any) -> Study:
    """The :class:`Study` of a parsed command line; ``overrides`` and ``slurm`` stay plain mappings (a
    ``class_path`` inside them is config for the cells, not an object to build here)."""
    init = parser.instantiate(config)
    plain = yaml.safe_load(parser.dump(config, skip_check=True))
    values = {f.name: init[f.name] for f in dataclasses.fields(Study)}
    return Study(**{**values, "overrides": plain["overrides"], "slurm": plain["slurm"]})
