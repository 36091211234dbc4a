"""A job's full Lightning CLI config, merged from overlays and rendered by the CLI's own parser.

The overlays merge left to right like ``--config`` files on the command line: the study's fit
config(s), its overrides (the scale), then the job's own settings (seed, halves, transfer, folders,
loggers). Rendering through ``TransferCLI``'s parser validates every job before anything trains,
and the result is exactly what ``transferability fit --config <job>/config.yaml`` reads.

A job's fingerprint (:func:`digest`) covers the overlays, what the study and its user set, not the
library defaults that the rendered config also spells out: upgrading Lightning leaves a finished
study finished.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from experiments.cli import TransferCLI

Overlay = str | dict[str, Any]  # a config file path, or a config as a mapping
UNFINGERPRINTED = ("trainer.logger", "run_folders")  # where a run logs and writes does not change the network


class _ParseOnly(TransferCLI):
    """TransferCLI that stops after parsing (``run=False`` and no instantiation)."""

    def instantiate_classes(self) -> None:
        """Nothing to build: only the parsed config is wanted."""


class ConfigError(ValueError):
    """A config that the Lightning CLI rejects."""


def render(overlays: Sequence[Overlay]) -> str:
    """The complete fit config (YAML) of ``overlays`` merged left to right.

    Raises:
        ConfigError: The CLI rejects the merged config (unknown key, wrong type, missing file).
    """
    args: list[str] = []
    for overlay in overlays:
        args += ["--config", overlay if isinstance(overlay, str) else yaml.safe_dump(overlay, sort_keys=False)]
    try:
        cli = _ParseOnly(args=args, run=False, parser_kwargs={"exit_on_error": False})
    except SystemExit as err:  # argparse may still exit on some errors
        raise ConfigError(f"the Lightning CLI rejected the config (exit {err.code}); see the message above") from err
    except Exception as err:
        raise ConfigError(str(err)) from err
    return cli.parser.dump(cli.config, skip_none=False)


def digest(overlays: Sequence[Overlay], study_dir: str) -> str:
    """A fingerprint of what the overlays set, independent of where the study lives, its loggers and library defaults.

    Args:
        overlays: The job's overlays (config files are read: a changed file changes the fingerprint).
        study_dir: The study's output folder as written in the overlays (replaced by a placeholder).
    """
    contents = []
    for overlay in overlays:
        config = yaml.safe_load(Path(overlay).read_text()) if isinstance(overlay, str) else overlay
        text = json.dumps(config or {}, sort_keys=True, default=str).replace(study_dir, "<study>")
        contents.append(_without(json.loads(text), UNFINGERPRINTED))
    return hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).hexdigest()[:16]


def _without(config: Any, keys: Sequence[str]) -> Any:
    """``config`` less the dotted ``keys``."""
    for key in keys:
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return config
