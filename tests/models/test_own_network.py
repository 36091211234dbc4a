"""A researcher's own network (tests/own_network.py) goes through everything a shipped one does: the transfer
(frozen stages and batch norm bit-identical to the base), loading back as its own class, and a whole study with
fused groups, effects and the layer-similarity panel."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Trainer, seed_everything

from callbacks.transfer import TransferCallback
from experiments.study.runner import main as run_study
from models.loading import load_classifier
from tests.helpers.own_network import PerceptronClassifier
from tests.helpers.tiny_data import TinyData

TRAINER = dict(
    accelerator="cpu",
    devices=1,
    max_steps=4,
    val_check_interval=2,
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    num_sanity_val_steps=0,
)


def test_own_network_transfers_its_stages_and_loads_back_as_itself(tmp_path: Path) -> None:
    seed_everything(0, verbose=False)
    trainer = Trainer(**TRAINER, default_root_dir=tmp_path, enable_checkpointing=False)
    trainer.fit(PerceptronClassifier(num_classes=4, input_size=8), datamodule=TinyData(image_size=8, shuffle=True))
    trainer.save_checkpoint(tmp_path / "base.ckpt")
    base = load_classifier(tmp_path / "base.ckpt")
    assert type(base) is PerceptronClassifier

    target = PerceptronClassifier(num_classes=4, input_size=8, init_seed=1)
    Trainer(
        **TRAINER,
        default_root_dir=tmp_path / "t",
        enable_checkpointing=False,
        callbacks=[TransferCallback(str(tmp_path / "base.ckpt"), n=2)],
    ).fit(target, datamodule=TinyData(image_size=8, shuffle=True, seed=1))
    for key, value in base.net.state_dict().items():
        if key.startswith(("hidden1.", "hidden2.")):  # weights and the batch norm's running statistics
            torch.testing.assert_close(target.net.state_dict()[key], value, rtol=0, atol=0)
    assert not torch.equal(target.net.head.weight, base.net.head.weight)

    with pytest.raises(ValueError, match="hidden1, 2 = hidden2"):
        Trainer(
            **TRAINER,
            default_root_dir=tmp_path / "u",
            enable_checkpointing=False,
            callbacks=[TransferCallback(str(tmp_path / "base.ckpt"), n=3)],
        ).fit(PerceptronClassifier(num_classes=4, input_size=8), datamodule=TinyData(image_size=8))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter")
def test_a_study_of_own_network_runs_fused_with_effects_and_layer_similarity(tmp_path: Path) -> None:
    fit = {
        "seed_everything": 0,
        "trainer": {
            "max_steps": 4,
            "val_check_interval": 2,
            "check_val_every_n_epoch": None,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
        },
        "model": {"class_path": "tests.helpers.own_network.PerceptronClassifier", "init_args": {"width": 8}},
        "data": {"class_path": "tests.helpers.study_data.StudyData"},
    }
    (tmp_path / "fit.yaml").write_text(yaml.safe_dump(fit))
    study = {
        "name": "own",
        "fit_configs": [str(tmp_path / "fit.yaml")],
        "output_dir": str(tmp_path / "out"),
        "checkpoint_every_n_steps": 2,
        "wandb": {"enabled": False},
        "grid": {
            "n": [1, 2],
            "seeds": [0, 1],
            "figure2": {"splits": ["random0"], "selffer_targets": ["B"], "transfer_targets": ["B"]},
            "dissimilar": None,
            "random_features": None,
        },
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    run_study(["--config", str(tmp_path / "study.yaml")])
    out = tmp_path / "out"
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 * (2 + 4 * 2)  # per seed: bases A and B, BnB/AnB/BnB+/AnB+ at n = 1, 2
    assert list(out.glob("fused/*/group.json")), "the frozen cells trained in fused groups"
    assert [row["stage"] for row in csv.DictReader((out / "cka.csv").open())] == ["hidden1", "hidden2"]
    specificity = [
        line.split("|")[3].strip()
        for line in (out / "effects.md").read_text().splitlines()
        if line.startswith("| specificity |")
    ]
    assert specificity == ["1", "2"]  # this network's top two stages (claims.ClaimStages), not CaffeNet's 6 and 7
    assert "co-adaptation dip" not in (out / "effects.md").read_text()
    assert "lasting boost" in (out / "effects.md").read_text()
    assert (out / "figures" / "figure2.png").is_file()
