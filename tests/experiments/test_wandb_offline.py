"""W&B asked to go online without a network: within seconds, an announced offline run or a clear refusal.

The machines that run these tests have no route to W&B's server (each test checks that, and skips where there
is one); a refusal is provoked with a local server that answers every request with 401.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import wandb
from lightning.pytorch.loggers import WandbLogger

from experiments.cli import run_cli
from experiments.errors import SettingError
from experiments.wandb_setup import prepare_wandb, server_reachable
from tests.helpers.run_dirs import run_dir
from tests.helpers.tiny_data import tiny_model_args

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"  # the right shape, known to no server


@pytest.fixture(autouse=True)
def online_requested(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Nothing says offline, no API key anywhere (a fresh HOME), a fresh folder; no W&B run left open."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "NETRC", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / ".config" / "wandb"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["transferability"])
    wandb.finish()
    wandb.teardown()  # W&B's process-wide settings would keep the WANDB_MODE=offline of an earlier test's fit
    yield
    wandb.finish()


def no_network() -> None:
    """Skip where W&B's server can be reached: these tests are about a machine without a network."""
    if server_reachable() is None:
        pytest.skip("W&B's server is reachable from here")


@pytest.mark.parametrize("key", [None, FAKE_KEY], ids=["no-key", "key"])
def test_online_without_network_falls_back_to_offline_and_says_so(
    capfd, monkeypatch, tmp_path: Path, key: str | None
) -> None:
    """With or without an API key, an online logger with no network becomes an offline run within seconds."""
    no_network()
    if key:
        monkeypatch.setenv("WANDB_API_KEY", key)
    logger = WandbLogger(project="transferability", save_dir=str(tmp_path / "run"), offline=False)
    began = time.monotonic()
    prepare_wandb(logger)
    assert time.monotonic() - began < 10
    err = capfd.readouterr().err
    assert "OFFLINE" in err and f"wandb sync {tmp_path / 'run'}/wandb/offline-run-*" in err
    run = logger.experiment
    assert time.monotonic() - began < 60
    assert run.settings._offline
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_online_fit_without_network_runs_offline(capfd, tmp_path: Path) -> None:
    """docs/usage.md's `--trainer.logger.init_args.offline false` without a network: the fit runs, offline."""
    no_network()
    args = [
        "fit",
        *tiny_model_args(),
        "--data",
        "tests.helpers.tiny_data.TinyData",
        "--data.num_samples",
        "16",
        "--seed_everything",
        "0",
        "--trainer.max_steps",
        "1",
        "--trainer.accelerator",
        "cpu",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.num_sanity_val_steps",
        "0",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.default_root_dir",
        "run",
        "--trainer.logger.init_args.offline",
        "false",
    ]
    began = time.monotonic()
    cli = run_cli(args)
    assert cli.trainer.global_step == 1
    assert "OFFLINE" in capfd.readouterr().err
    assert list((run_dir("run") / "wandb").glob("offline-run-*"))
    assert time.monotonic() - began < 90


@pytest.fixture
def refusing_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local W&B "server" answering 401 to everything, as ``WANDB_BASE_URL``."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(2)
                try:
                    connection.recv(65536)
                    connection.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setenv("WANDB_BASE_URL", url)
    yield url
    stop.set()
    thread.join(2)
    server.close()


def test_online_without_key_is_refused_with_the_ways_out(refusing_server: str, tmp_path: Path) -> None:
    """A reachable server but no API key: a SettingError within seconds naming `wandb login`, offline, wandb sync."""
    logger = WandbLogger(project="transferability", save_dir=str(tmp_path / "run"), offline=False)
    began = time.monotonic()
    with pytest.raises(SettingError) as refused:
        prepare_wandb(logger)
    assert time.monotonic() - began < 30
    message = str(refused.value)
    for part in ("wandb login", "offline true", "offline: true", "WANDB_MODE=offline", "wandb sync"):
        assert part in message
