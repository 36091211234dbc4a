"""Where a study's files are: its folder, each cell's and each fused group's folder, and ``study.json``.

Under the study's ``output_dir`` (default ``studies/<name>``): ``cells/<cell>/`` (a cell's folder,
``experiments.study.cells``), ``fused/<group>/`` (a fused group's job, ``experiments.study.groups``) and
``study.json``: the study's name and the prefix of its W&B run ids, written once by
:meth:`StudyFolders.write_study_file` before any run is named, so that a resume keeps its runs' ids.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

from experiments.study import groups
from experiments.study.cells import CellFolder
from experiments.study.grid import Cell
from models.files import write_atomic

STUDY_FILE = "study.json"


class StudyFolders:
    """The folders and files of one study.

    Args:
        out: The study's folder as the study config gives it (the cells' configs name it as given).
    """

    def __init__(self, out: str) -> None:
        self.out = out
        self.root = Path(out)
        self.study_file = self.root / STUDY_FILE

    def cell(self, cell: Cell) -> CellFolder:
        """The folder of ``cell``."""
        return CellFolder(self.root / "cells" / cell.name)

    def fused(self, group: Sequence[Cell]) -> Path:
        """The folder of a fused group's job."""
        return self.root / "fused" / groups.group_name(group)

    def fused_named(self, prefix: str) -> list[Path]:
        """The fused groups' folders whose name starts with ``prefix``, sorted."""
        return sorted((self.root / "fused").glob(f"{prefix}*"))

    def write_study_file(self, name: str) -> None:
        """Write ``study.json`` (the study's ``name`` and a new W&B id prefix) unless it is there already."""
        if not self.study_file.is_file():
            write_atomic(self.study_file, json.dumps({"name": name, "wandb_id_prefix": secrets.token_hex(4)}) + "\n")

    def wandb_id(self, name: str) -> str:
        """A W&B run id unique to this study folder and ``name`` (a cell, a group), stable across resumes.

        Raises:
            FileNotFoundError: ``study.json`` is not written yet (:meth:`write_study_file`).
        """
        prefix = json.loads(self.study_file.read_text())["wandb_id_prefix"]
        return f"{prefix}-{re.sub(r'[^A-Za-z0-9_-]', 'p', name)}"[:64]
