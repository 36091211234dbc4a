"""The plan of a study: its cells, the fused groups among them, and the jobs (cells and groups) that train them.

:class:`StudyPlan` expands the grid (``experiments.study.grid``) on the halves and stages the study's shared fit
config gives (``experiments.study.shared_config``), has each cell's config written and checked
(``experiments.study.cell_configs``) in its folder (``experiments.study.folders``), groups the frozen transfers that
can train fused (``experiments.study.groups``) and says which job needs which (a transfer needs the job that trains
its base).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from experiments.study import groups
from experiments.study.cell_configs import CellConfigs
from experiments.study.cells import CellFolder
from experiments.study.config import Study
from experiments.study.errors import StudyError
from experiments.study.folders import StudyFolders
from experiments.study.grid import Cell, expand
from experiments.study.jobs import Job
from experiments.study.shared_config import SharedConfig


class StudyPlan:
    """The cells of a study, their folders and configs, and the jobs that train them.

    Args:
        study: The study config.
    """

    def __init__(self, study: Study) -> None:
        self.study = study
        self.folders = StudyFolders(study.output_dir or os.path.join("studies", study.name))
        self.root = self.folders.root
        self.group = study.wandb.group or study.name
        self.shared = SharedConfig(study)
        self.configs = CellConfigs(study, self.folders, self.shared, self.group)

    def folder(self, cell: Cell) -> CellFolder:
        """The folder of ``cell``."""
        return self.folders.cell(cell)

    def fused_dir(self, group: list[Cell]) -> Path:
        """The folder of a fused group's job."""
        return self.folders.fused(group)

    def write_study_file(self) -> None:
        """Write ``study.json`` (``experiments.study.folders``) if the study logs to W&B: its runs' ids need it.

        The first step of running a study, before its configs name any W&B run; a resume keeps the file.
        """
        if self.study.wandb.enabled:
            self.folders.write_study_file(self.study.name)

    def cells(self) -> list[Cell]:
        """Every cell of the grid, bases before the cells that copy them.

        Raises:
            StudyError: The grid names a half or a stage the data or the network does not have.
        """
        try:
            return expand(self.study.grid, self.shared.split_halves, self.shared.network_stage_names())
        except ValueError as err:
            raise StudyError(f"grid: {err}") from err

    def prepare(self, cells: list[Cell]) -> list[Cell]:
        """Write the configs of unstarted cells and check the others; return the cells still to run
        (``experiments.study.cell_configs.CellConfigs.prepare``; W&B runs need :meth:`write_study_file` first).

        Raises:
            StudyError: A finished or started cell whose config changed, a finished base whose
                ``last.ckpt`` is gone, or a config that cannot work (every problem listed).
        """
        return self.configs.prepare(cells)

    def fused_groups(self, pending: list[Cell]) -> list[list[Cell]]:
        """Pending frozen transfer cells to train together: same split, base network, target half and seed.

        A cell already started alone is left to resume alone; a started group resumes with its members.
        """
        if not self.study.fused:
            return []
        found: dict[tuple[str, str, str, int], list[Cell]] = {}
        for cell in pending:
            key = groups.group_key(cell)
            if key is not None and groups.unfusable(yaml.safe_load(self.folder(cell).config.read_text())) is None:
                found.setdefault(key, []).append(cell)
        chosen = []
        for group in found.values():
            resumed = self._started_groups(group)
            chosen += resumed
            in_resumed = {cell for started in resumed for cell in started}
            fresh = [cell for cell in group if cell not in in_resumed and not self.folder(cell).started()]
            if len(fresh) > 1:
                chosen.append(fresh)
        return chosen

    def _started_groups(self, cells: list[Cell]) -> list[list[Cell]]:
        """The groups among ``cells`` (one group key) that a fit already started, each with its members as it
        started (under this grid or an earlier one, e.g. before ``grid.n`` changed): such a group resumes as it was,
        from its own checkpoint; its members' folders hold only their weights, so none of them can resume alone."""
        prefix = groups.group_name(cells[:1]).rsplit("_n", 1)[0] + "_n"
        by_folder = {str(self.folder(cell).path): cell for cell in cells}
        started = []
        for folder in self.folders.fused_named(prefix):
            names = groups.members(folder)
            if CellFolder(folder).started() and names and all(name in by_folder for name in names):
                started.append([by_folder[name] for name in names])
        return started

    def plan_jobs(self, pending: list[Cell]) -> list[Job]:
        """The jobs that train ``pending``: fused groups (their ``config.yaml`` written) and single cells.

        Raises:
            StudyError: a group's config is invalid.
        """
        fused = self.fused_groups(pending)
        in_group = {cell: group for group in fused for cell in group}
        jobs: list[Job] = []
        for cell in pending:
            group = in_group.get(cell)
            if group is None:
                needs = (cell.base_cell.name,) if cell.base_cell is not None else ()
                jobs.append(Job(cell.name, self.folder(cell).path, (cell.name,), needs))
            elif cell is group[0]:
                jobs.append(self._group_job(group))
        return jobs

    def _group_job(self, group: list[Cell]) -> Job:
        folder = self.fused_dir(group)
        name = f"fused_{folder.name}"
        self.configs.write_group(group, folder, name)
        base = group[0].base_cell  # None: a pretrained weights file, which nothing trains
        return Job(name, folder, tuple(cell.name for cell in group), (base.name,) if base is not None else ())
