"""A cell's full Lightning CLI config, rendered by the CLI's own parser without instantiating anything.

The layers merge left to right like ``--config`` files on the command line: the study's fit
config(s), its overrides (the scale), then the cell's own settings (seed, halves, transfer, folders,
loggers). Rendering through ``TransferCLI``'s parser validates every cell before anything trains,
and the result is exactly what ``transferability fit --config <cell>/config.yaml`` reads.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from typing import Any

import yaml

from experiments.cli import TransferCLI

# The runner hands the CLI its arguments while sys.argv holds its own; LightningCLI warns about that mix.
warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")

Layer = str | dict[str, Any]  # a config file path, or a config as a mapping


class _ParseOnly(TransferCLI):
    """TransferCLI that stops after parsing (``run=False`` and no instantiation)."""

    def instantiate_classes(self) -> None:
        """Nothing to build: only the parsed config is wanted."""


class ConfigError(ValueError):
    """A config that the Lightning CLI rejects."""


def render(layers: Sequence[Layer]) -> str:
    """The complete fit config (YAML) of ``layers`` merged left to right.

    Raises:
        ConfigError: The CLI rejects the merged config (unknown key, wrong type, missing file).
    """
    args: list[str] = []
    for layer in layers:
        args += ["--config", layer if isinstance(layer, str) else yaml.safe_dump(layer, sort_keys=False)]
    try:
        cli = _ParseOnly(args=args, run=False, parser_kwargs={"exit_on_error": False})
    except SystemExit as err:  # argparse may still exit on some errors
        raise ConfigError(f"the Lightning CLI rejected the config (exit {err.code}); see the message above") from err
    except Exception as err:
        raise ConfigError(str(err)) from err
    return cli.parser.dump(cli.config, skip_none=False)


def digest(config_text: str, study_dir: str, ignore: Sequence[str] = ("trainer.logger",)) -> str:
    """A fingerprint of what a config trains, independent of where the study lives and of its loggers.

    Args:
        config_text: A rendered config.
        study_dir: The study's output folder as written in the config (replaced by a placeholder).
        ignore: Dotted keys left out (logging settings do not change the network).
    """
    config = yaml.safe_load(config_text.replace(study_dir, "<study>"))
    for key in ignore:
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
