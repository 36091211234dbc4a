"""A ``WandbLogger`` made ready before its run starts: no noise, and no wait for a network that is not there.

``prepare_wandb`` is called by the CLI before a fit starts (and by the study for its results run):

- online requested (``offline: false`` and ``WANDB_MODE`` not offline) but the W&B server cannot be reached
  within ``PROBE_TIMEOUT_S`` seconds: the run falls back to offline, and says so, with the ``wandb sync``
  command that uploads it later (W&B itself would block for about 100 s, then fail with a traceback);
- online and reachable, the run is started at once, so that a refusal (no API key) is a ``SettingError``
  that names the two ways out, before anything trains;
- Lightning passes ``anonymous=None``, which W&B answers at every run with "The anonymous setting has no
  effect": the key is dropped when it is None; the run's folder is created first, or W&B warns
  "git root ... does not exist" while it looks for the commit.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from experiments.errors import SettingError

DEFAULT_HOST = "https://api.wandb.ai"
OFFLINE_MODES = ("offline", "dryrun", "disabled")
PROBE_TIMEOUT_S = 3.0
WAYS_OUT = (
    "log offline with `--trainer.logger.init_args.offline true` (a study: `wandb: {{offline: true}}`) or "
    "WANDB_MODE=offline, and upload later with `wandb sync {folder}/wandb/offline-run-*`"
)


def wants_online(logger: WandbLogger) -> bool:
    """Whether the logger would try to reach the W&B server (neither it nor ``WANDB_MODE`` says offline)."""
    mode = logger._wandb_init.get("mode") or os.environ.get("WANDB_MODE", "")
    return not logger._offline and mode not in OFFLINE_MODES


def server_reachable(url: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if a TCP connection to the W&B server opens within ``timeout`` seconds, else why not.

    Args:
        url: The server (default: ``WANDB_BASE_URL`` or W&B's cloud).
        timeout: Seconds for the name look-up and the connection together.
    """
    parsed = urlparse(url or os.environ.get("WANDB_BASE_URL") or DEFAULT_HOST)
    host, port = parsed.hostname or "", parsed.port or (80 if parsed.scheme == "http" else 443)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(f"{type(err).__name__}: {err}")

    thread = threading.Thread(target=probe, daemon=True)  # a name look-up ignores socket timeouts
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer from {host}:{port} within {timeout:g} s"


def prepare_wandb(logger: WandbLogger) -> None:
    """Make ``logger`` ready to start its run (see the module's docstring).

    Raises:
        SettingError: online was requested, the server answers, and W&B refuses to start the run (no API key).
    """
    if logger._wandb_init.get("anonymous", "unset") is None:
        logger._wandb_init.pop("anonymous")
    folder = logger.save_dir or "."
    os.makedirs(folder, exist_ok=True)
    if logger._experiment is not None or not wants_online(logger):
        return
    problem = server_reachable()
    if problem is not None:
        logger._wandb_init["mode"] = "offline"
        _announce(
            f"W&B: the server is not reachable ({problem}), so this run logs OFFLINE to {folder}/wandb; "
            f"upload it later with `wandb sync {folder}/wandb/offline-run-*` (offline: true or "
            "WANDB_MODE=offline goes offline without this check)"
        )
        return
    import wandb

    try:
        logger.experiment  # noqa: B018 -- starts the run now, so that a refusal comes before any work
    except (wandb.errors.UsageError, wandb.errors.CommError, wandb.errors.AuthenticationError) as err:
        raise SettingError(
            f"W&B cannot start an online run ({type(err).__name__}: {str(err).strip()}): "
            f"run `wandb login`, or {WAYS_OUT.format(folder=folder)}"
        ) from err


@rank_zero_only
def _announce(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def finish_wandb_run(exit_code: int) -> None:
    """Close this process's W&B run, if one is open: the end of a fit or evaluation.

    A run left open is closed by W&B's own exit hook, which prints its closing lines to stdout with colour codes
    whether or not it is a terminal (they land in log files as escape sequences); and a ``WandbLogger`` reuses an
    open run, so the next fit in the same process (a study's next cell) would log into it.
    """
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)
