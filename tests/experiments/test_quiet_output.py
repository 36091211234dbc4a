"""A fit and its resume, written to a log file, print none of the project's noise lines and no cursor or colour codes.

One subprocess (output to a file, so not a terminal) runs a fit and then resumes it through the entry point, with
W&B offline and *not* silenced: the log must hold plain progress lines and none of W&B's "anonymous setting" and
"git root" warnings, Lightning's litlogger tip or, on the resume, "Checkpoint directory ... exists and is not empty".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.helpers.run_dirs import run_dir
from tests.helpers.tiny_data import tiny_model_args

NOISE = ("anonymous setting", "git root", "litlogger", "exists and is not empty", "LeafSpec")
FIT = [
    "fit",
    *tiny_model_args(),
    "--data",
    "tests.helpers.tiny_data.TinyData",
    "--data.num_samples",
    "32",
    "--seed_everything",
    "0",
    "--trainer.accelerator",
    "cpu",
    "--trainer.val_check_interval",
    "2",
    "--trainer.log_every_n_steps",
    "1",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.default_root_dir",
    "run",
]
SCRIPT = """
import json, sys
import wandb
from experiments.cli import main
from experiments.entry import console
fit, sys.argv = json.loads(sys.argv[1]), sys.argv[:1]
assert console("transferability", main, [*fit, "--trainer.max_steps", "2"]) == 0
assert wandb.run is None, "the fit left its W&B run open"  # the resume starts its own
print("=== resume", file=sys.stderr, flush=True)
assert console("transferability", main, [*fit, "--trainer.max_steps", "4", "--ckpt_path", "last"]) == 0
"""


@pytest.mark.slow
def test_fit_and_resume_log_is_plain_and_quiet(tmp_path: Path) -> None:
    """The log of a fit and its resume: plain step lines, no tqdm cursor codes, none of the noise lines."""
    env = {key: value for key, value in os.environ.items() if key not in ("WANDB_SILENT", "TRANSFERABILITY_DEBUG")}
    env.update(WANDB_MODE="offline", PYTHONPATH=str(REPO))
    log = tmp_path / "fit.log"
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, json.dumps(FIT)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    text = log.read_text()
    assert done.returncode == 0, text[-3000:]
    assert "\r" not in text and "\x1b[A" not in text, "tqdm's cursor codes in a log file"
    assert "\x1b" not in text, "colour codes in a log file (W&B's exit hook prints them when a run is left open)"
    assert "wandb sync" in resume_part(text), "the resumed fit's W&B run was not closed at its end"
    assert "step 2/2 (epoch 0)" in text and "step 4/4" in text and "validation at step 2:" in text
    for noise in NOISE:
        assert noise not in text, f"{noise!r} in the log:\n{text}"
    resume = resume_part(text)
    assert "Restoring states from the checkpoint path" in resume
    assert (run_dir(tmp_path / "run") / "checkpoints" / "last.ckpt").is_file()


def resume_part(text: str) -> str:
    """The log of the resumed fit."""
    return text.split("=== resume")[1]
