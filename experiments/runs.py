"""Run folders: each ``fit`` is a run of its own, ``version_N`` under ``trainer.default_root_dir``.

A run folder holds the run's ``config.yaml`` (re-runnable: it names the run's version and W&B id), its
``checkpoints/`` and its ``wandb/`` files, so a second fit of one config never overwrites the first's
``last.ckpt`` or ``config.yaml``. ``--ckpt_path last`` resumes the run that ``--run_version`` names (or the only one),
with the run's own seed, settings and W&B id. A study's cells are runs already (one folder each): the study
sets ``run_folders: false`` and the cell folder is the run folder.
"""

from __future__ import annotations

import importlib
import json
import re
import secrets
from pathlib import Path
from typing import Any

import yaml

from experiments.errors import SettingError

VERSION_FOLDER = re.compile(r"^version_(\d+)$")
CONFIG = "config.yaml"
# Settings a resumed run must share with the run it continues (the rest, e.g. trainer.max_steps, may grow).
SAME_RUN_KEYS = ("seed_everything", "model", "data", "transfer")
# The loggers a run config names (the CLI's default, and a study cell's CSV metrics), by class path.
CSV_LOGGER = "lightning.pytorch.loggers.CSVLogger"
WANDB_LOGGER = "lightning.pytorch.loggers.WandbLogger"


class RunFolderError(SettingError):
    """A fit that would mix two runs in one folder, or resume a run that is not there."""


def versions(root: str | Path) -> list[int]:
    """The version numbers of the run folders under ``root``, ascending."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in root.iterdir() if p.is_dir() and (m := VERSION_FOLDER.match(p.name)))


def run_folder(root: str | Path, version: int) -> Path:
    """The folder of run ``version`` under ``root``."""
    return Path(root) / f"version_{version}"


def derived(path: str | None, root: str | Path, logger_dir: bool = False) -> bool:
    """Whether a checkpoint folder (or, with ``logger_dir``, a logger's save folder) is the CLI's own choice under
    ``root`` (unset, ``root[/checkpoints]`` or ``root/version_N[/checkpoints]``, as a run's saved config records it),
    so it follows the run folder; any other folder is the user's and is kept."""
    if path in (None, "", "."):
        return True
    try:
        relative = Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return False
    pattern = r"\.|version_\d+" if logger_dir else r"checkpoints|version_\d+(/checkpoints)?"
    return re.fullmatch(pattern, relative) is not None


def _has_run(folder: Path) -> bool:
    """Whether a fit has written into ``folder`` (a config or a checkpoint)."""
    checkpoints = folder / "checkpoints"
    return (folder / CONFIG).is_file() or (checkpoints.is_dir() and any(checkpoints.iterdir()))


def choose_run(root: str | Path, version: int | None, ckpt_path: str | None) -> tuple[int, bool]:
    """The run a fit writes into, and whether it resumes that run.

    Args:
        root: ``trainer.default_root_dir``.
        version: ``--run_version``: the run to resume (with ``--ckpt_path last``) or to start; None: chosen here.
        ckpt_path: ``--ckpt_path``: None (a fresh run), ``last`` (resume a run under ``root``) or a file.

    Raises:
        RunFolderError: a fresh fit into a version that already holds a run, ``last`` with a named version that
            does not exist, or ``last`` with several runs and no ``--run_version``.
    """
    found = versions(root)
    if ckpt_path is not None and str(ckpt_path).lower() == "last":
        if version is not None:
            if version not in found:
                raise RunFolderError(
                    f"--run_version {version}: {run_folder(root, version)} does not exist, so --ckpt_path last has "
                    f"nothing to resume; runs under {root}: {_listing(found)}"
                )
            return version, True
        if len(found) > 1:
            raise RunFolderError(
                f"--ckpt_path last: {root} holds {len(found)} runs ({_listing(found)}); name the one to resume "
                f"with --run_version N, or resume from its own config: --config {run_folder(root, found[-1])}/{CONFIG} "
                "--ckpt_path last"
            )
        return (found[0], True) if found else (0, False)
    if ckpt_path is not None:
        owner = _owner(root, Path(ckpt_path), found)
        if owner is not None and version in (None, owner):
            return owner, True
    if version is None:
        return (found[-1] + 1 if found else 0), False
    if version in found and _has_run(run_folder(root, version)):
        raise RunFolderError(
            f"--run_version {version}: {run_folder(root, version)} already holds a run; resume it with "
            "--ckpt_path last, or leave --run_version unset for a new run (the next free version)"
        )
    return version, False


def last_checkpoint(root: str | Path, version: int | None) -> Path:
    """``--ckpt_path last`` of ``validate`` or ``test``: the ``last.ckpt`` of the run ``version`` names, or of the
    only run under ``root``.

    Raises:
        RunFolderError: no such run, several runs and no ``--run_version``, or a run without ``last.ckpt``.
    """
    chosen, exists = choose_run(root, version, "last")
    path = run_folder(root, chosen) / "checkpoints" / "last.ckpt"
    if not exists or not path.is_file():
        raise RunFolderError(f"--ckpt_path last: {path} does not exist; runs under {root}: {_listing(versions(root))}")
    return path


def _owner(root: str | Path, ckpt_path: Path, found: list[int]) -> int | None:
    """The version whose folder holds ``ckpt_path`` (None: a checkpoint from elsewhere starts a new run)."""
    for version in found:
        try:
            ckpt_path.resolve().relative_to(run_folder(root, version).resolve())
        except ValueError:
            continue
        return version
    return None


def _listing(found: list[int]) -> str:
    return ", ".join(f"version_{v}" for v in found) or "none"


def versioned_hint(path: str | Path) -> str:
    """For a checkpoint path written as before run folders (``ROOT/checkpoints/last.ckpt``), the runs under ROOT
    and the path of the newest one's file; "" when ROOT holds no run folders."""
    path = Path(path)
    root = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    found = versions(root)
    if not found:
        return ""
    newest = run_folder(root, found[-1]) / "checkpoints" / path.name
    return f"; each fit under {root} has a run folder of its own ({_listing(found)}): name the run, e.g. {newest}"


def saved_config(folder: str | Path) -> dict[str, Any] | None:
    """The ``config.yaml`` a run folder holds (None when it holds none)."""
    path = Path(folder) / CONFIG
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def check_same_run(saved: dict[str, Any], current: dict[str, Any], folder: str | Path) -> None:
    """Refuse to resume a run with another seed, network, data or transfer than the run was started with.

    Settings the current command leaves unset (null) are not compared: the run's data module may have recorded what
    it found (an image folder's classes, a split file's checksum).

    Raises:
        RunFolderError: the first differing setting, and the command that resumes the run as it was.
    """
    for key in SAME_RUN_KEYS:
        found = _first_difference(_canonical(saved.get(key)), _canonical(current.get(key)), key)
        if found is not None:
            name, there, here = found
            raise RunFolderError(
                f"{folder} was run with {name} {_short(there)}, this command gives {_short(here)}; resume the run as "
                f"it was with --config {Path(folder) / CONFIG} --ckpt_path last, or leave --ckpt_path unset for a "
                "new run"
            )


def _first_difference(there: Any, here: Any, name: str) -> tuple[str, Any, Any] | None:
    """The first dotted setting where ``here`` (unset leaves skipped) differs from ``there``, with both values."""
    if here is None:
        return None
    if isinstance(there, dict) and isinstance(here, dict):
        for key in sorted(here):
            found = _first_difference(there.get(key), here[key], f"{name}.{key}")
            if found is not None:
                return found
        return None
    return None if there == here else (name, there, here)


def _canonical(value: Any) -> Any:
    """``value`` as plain YAML data, each ``class_path`` written as its class's own module path
    (``models.CaffeNetClassifier`` and ``models.caffenet_classifier.CaffeNetClassifier`` are one class)."""
    value = yaml.safe_load(yaml.safe_dump(value, sort_keys=True)) if value is not None else None
    if isinstance(value, dict):
        value = {key: _canonical(item) for key, item in value.items()}
        if isinstance(value.get("class_path"), str):
            module, _, name = value["class_path"].rpartition(".")
            try:
                found = getattr(importlib.import_module(module), name)
                value["class_path"] = f"{found.__module__}.{found.__qualname__}"
            except (ImportError, AttributeError, ValueError):
                pass
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def saved_wandb_id(saved: dict[str, Any] | None) -> str | None:
    """The W&B run id a run folder's config recorded (None: none recorded)."""
    logger = (saved or {}).get("trainer", {}).get("logger")
    for entry in logger if isinstance(logger, list) else [logger]:
        if isinstance(entry, dict) and str(entry.get("class_path", "")).endswith(WANDB_LOGGER.rpartition(".")[2]):
            return (entry.get("init_args") or {}).get("id")
    return None


def new_wandb_id() -> str:
    """A fresh W&B run id (8 lowercase hex characters, as W&B's own)."""
    return secrets.token_hex(4)
