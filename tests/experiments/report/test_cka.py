"""The layer-similarity panel: debiased linear CKA on inputs with a known answer (against the biased estimator and a
direct reference of the formula), its chance baseline, stage by stage on tiny networks, its table, the study step
that computes it from finished base checkpoints, and the report that draws it."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, TensorDataset

from experiments.report import cka, figures
from experiments.report.cka import PairCKA, cka_and_chance, linear_cka, stage_cka, stage_cka_and_chance
from experiments.report.intervals import mean_interval
from experiments.report.table import TableError, write_table
from experiments.report.write import write_report
from experiments.study.similarity import SimilarityError, base_pairs, write_similarity
from models.caffenet import CaffeNet
from models.caffenet_classifier import CaffeNetClassifier
from tests.helpers.studies import run_study, write_study
from tests.helpers.tiny_data import TINY_MODEL, TINY_NETWORK

STAGES = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")
CHANCE_BOUND = 0.08  # |chance| on 50 images, a mean of five permutations (measured: at most 0.031)


def gaussian(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def orthogonal(size: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(gaussian(size, size, seed=seed).double())
    return q


def biased_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kornblith et al.'s biased estimator: the centred Grams' alignment <HKH, HLH> / (|HKH| |HLH|), float64."""
    x, y = x.reshape(len(x), -1).double(), y.reshape(len(y), -1).double()
    h = torch.eye(len(x), dtype=torch.float64) - 1.0 / len(x)
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float((k * l).sum() / (k.norm() * l.norm()))


def reference_hsic(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC_1, term by term as written, in numpy (no centring, no blocks)."""
    n = len(k)
    k, l = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    ones = np.ones(n)
    return float(
        (
            np.trace(k @ l)
            + (ones @ k @ ones) * (ones @ l @ ones) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * ones @ k @ l @ ones
        )
        / (n * (n - 3))
    )


def reference_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Debiased CKA from :func:`reference_hsic` of the raw (uncentred) linear Grams."""
    x, y = x.reshape(len(x), -1).double().numpy(), y.reshape(len(y), -1).double().numpy()
    k, l = x @ x.T, y @ y.T
    return reference_hsic(k, l) / math.sqrt(reference_hsic(k, k) * reference_hsic(l, l))


# ----- the measure ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(60, 12), (16, 3, 5, 5)], ids=["features", "more-features-than-examples"])
def test_identical_features_give_one(shape: tuple[int, ...]):
    """CKA(x, x) = 1, with fewer and with more features than examples, for vectors and feature maps."""
    x = gaussian(*shape)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("examples, features", [(80, 10), (12, 40)], ids=["n>d", "d>n"])
def test_invariant_to_orthogonal_transforms_isotropic_scaling_and_shifts(examples: int, features: int):
    """y = s·x·Q + c gives 1; CKA(x, y) is unchanged when either side is rotated, scaled or shifted."""
    x = gaussian(examples, features, seed=1).double()  # the transforms exact to float64's rounding
    y = x + 0.8 * gaussian(examples, features, seed=2).double()
    q = orthogonal(features, seed=3)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x, 0.01 * x) == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x, -2.5 * x @ q + 7.0) == pytest.approx(1.0, abs=1e-6)
    before = linear_cka(x, y)
    assert 0.2 < before < 0.99
    assert linear_cka(x @ q, 0.01 * y) == pytest.approx(before, abs=1e-9)
    assert linear_cka(3.0 * x + 1.0, y @ orthogonal(features, seed=4)) == pytest.approx(before, abs=1e-9)
    assert linear_cka(y, x) == pytest.approx(before, abs=1e-12)  # symmetric


def test_matches_a_direct_reference_of_the_unbiased_hsic_formula():
    """On n = 20 examples, with a shared part: the blocked, centred computation equals Song et al.'s formula on the
    raw Grams, also with a Gram built from many small float64 blocks; and it is not the biased estimator."""
    x, y = gaussian(20, 30, seed=5), gaussian(20, 50, seed=6)
    y[:, :30] += x
    expected = reference_cka(x, y)
    assert linear_cka(x, y) == pytest.approx(expected, abs=1e-10)
    assert linear_cka(x, y[:, :8]) == pytest.approx(reference_cka(x, y[:, :8]), abs=1e-10)  # d < n
    k = x.double() @ x.double().T
    assert cka.unbiased_hsic(k, k) == pytest.approx(reference_hsic(k.numpy(), k.numpy()), rel=1e-10)
    blocks = cka.BLOCK_BYTES
    try:
        cka.BLOCK_BYTES = 8 * 20 * 7  # 7 columns per block
        assert linear_cka(x, y) == pytest.approx(expected, abs=1e-10)
    finally:
        cka.BLOCK_BYTES = blocks
    assert abs(biased_cka(x, y) - expected) > 0.05


@pytest.mark.parametrize("features", [128, 2304])
def test_independent_random_features_give_about_zero_at_any_width(features: int):
    """Independent Gaussian features of n = 1000 examples: debiased CKA about 0 at 128 and at 2304 dimensions (as is
    the chance baseline), where the biased estimator gives about 0.12 and 0.70 (its pull with width is gone)."""
    x, y = gaussian(1000, features, seed=7), gaussian(1000, features, seed=8)
    value, chance = cka_and_chance(x, y)
    assert value == linear_cka(x, y)
    assert abs(value) < 0.03 and abs(chance) < 0.03
    assert biased_cka(x, y) > (0.5 if features == 2304 else 0.05)


def test_chance_baseline_is_about_zero_for_identical_features_and_seeded():
    """x against itself: CKA 1, chance (x against its permuted examples) about 0; the same permutations every call."""
    x = gaussian(500, 64, seed=9)
    value, chance = cka_and_chance(x, x)
    assert value == pytest.approx(1.0, abs=1e-9) and abs(chance) < 0.03
    assert cka_and_chance(x, x) == (value, chance)
    assert cka_and_chance(x, x, seed=1)[1] != chance
    with pytest.raises(ValueError, match="at least one permutation"):
        cka_and_chance(x, x, permutations=0)


def test_undefined_and_invalid_inputs():
    """Constant features have no CKA (NaN); different examples, or fewer than four, are refused naming the count."""
    assert math.isnan(linear_cka(torch.ones(10, 4), gaussian(10, 4)))
    assert all(math.isnan(value) for value in cka_and_chance(torch.ones(10, 4), gaussian(10, 4)))
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(gaussian(10, 4), gaussian(11, 4))
    for n in (1, 3):
        with pytest.raises(ValueError, match=f"at least 4 examples .*got {n}"):
            linear_cka(gaussian(n, 4), gaussian(n, 4))
        with pytest.raises(ValueError, match=f"at least 4 examples .*got {n}"):
            cka_and_chance(gaussian(n, 4), gaussian(n, 4))
    assert not math.isnan(linear_cka(gaussian(4, 4, seed=1), gaussian(4, 4, seed=2)))  # four is enough


# ----- two networks, stage by stage -------------------------------------------------------------------------
def tiny_net(seed: int) -> CaffeNet:
    return CaffeNet(in_channels=1, input_size=28, init_seed=seed, **TINY_NETWORK)


def test_same_network_twice_gives_one_at_every_transferable_stage():
    """Every stage but the head, each exactly 1; the network's mode is restored and no gradient is kept."""
    net = tiny_net(1).train()
    values = stage_cka(net, net, gaussian(120, 1, 28, 28, seed=9))
    assert tuple(values) == STAGES
    assert all(value == pytest.approx(1.0, abs=1e-9) for value in values.values())
    assert net.training and all(parameter.grad is None for parameter in net.parameters())


def test_independently_initialised_networks_agree_less_and_less_with_depth():
    """Two initialisations: below 1 at every stage, and lower at the later stages than at the first; the chance
    baseline, from the same features, about 0 at every stage."""
    both = stage_cka_and_chance(tiny_net(1), tiny_net(2), gaussian(200, 1, 28, 28, seed=10))
    values = {stage: value for stage, (value, _) in both.items()}
    assert values == stage_cka(tiny_net(1), tiny_net(2), gaussian(200, 1, 28, 28, seed=10))
    assert all(-0.05 < value < 0.95 for value in values.values())
    assert values["fc7"] < values["conv2"] < values["conv1"]
    assert max(values["fc6"], values["fc7"]) < 0.5 * values["conv1"]
    assert all(abs(chance) < 0.03 for _, chance in both.values())


def test_stage_cka_reads_a_loader_up_to_max_images_and_takes_b_inputs():
    """A loader of (images, labels) is read up to max_images only: the same values as the first images as a
    tensor; ``images_b`` shifted by a constant (another mean image) changes nothing at the first stage's input."""
    images = gaussian(100, 1, 28, 28, seed=11)
    net_a, net_b = tiny_net(1), tiny_net(2)
    seen = []

    class Counting(DataLoader):
        def __iter__(self):
            for batch in super().__iter__():
                seen.append(len(batch[0]))
                yield batch

    loader = Counting(TensorDataset(images, torch.zeros(100)), batch_size=16)
    assert stage_cka(net_a, net_b, loader, max_images=40) == pytest.approx(stage_cka(net_a, net_b, images[:40]))
    assert sum(seen) == 48  # three batches: no further than needed
    with pytest.raises(ValueError, match="same images"):
        stage_cka(net_a, net_b, images, max_images=40, images_b=images[:30])
    with pytest.raises(ValueError, match="expects input"):
        stage_cka(net_a, net_b, gaussian(10, 3, 28, 28))
    with pytest.raises(ValueError, match="at least 4"):
        stage_cka(net_a, net_b, images, max_images=3)


# ----- the table ----------------------------------------------------------------------------------------------
def pair(label: str, offset: float, chance: float | None = None) -> PairCKA:
    return PairCKA(
        label,
        {stage: 0.9 - 0.1 * n + offset for n, stage in enumerate(STAGES)},
        None if chance is None else dict.fromkeys(STAGES, chance),
    )


def test_table_has_one_row_per_stage_with_the_mean_and_interval_over_pairs(tmp_path: Path):
    pairs = [pair("random0_s0", 0.0, 0.002), pair("random0_s1", 0.02, -0.001), pair("random0_s2", -0.01, 0.005)]
    rows = cka.write_cka_table(tmp_path / "cka.csv", pairs)
    back = cka.read_cka_table(tmp_path / "cka.csv")
    assert [row["stage"] for row in back] == list(STAGES) and [row["n"] for row in back] == list(range(1, 8))
    assert back == rows
    third = back[2]
    interval = mean_interval([0.7, 0.72, 0.69])
    assert (third["count"], third["mean"]) == (3, pytest.approx(interval.estimate, abs=1e-6))
    assert (third["ci_low"], third["ci_high"]) == (
        pytest.approx(interval.low, abs=1e-6),
        pytest.approx(interval.high, abs=1e-6),
    )
    assert third["values"] == {
        "random0_s0": pytest.approx(0.7),
        "random0_s1": pytest.approx(0.72),
        "random0_s2": pytest.approx(0.69),
    }
    assert third["chance"] == pytest.approx(0.002) and third["chance_values"] == {
        "random0_s0": pytest.approx(0.002),
        "random0_s1": pytest.approx(-0.001),
        "random0_s2": pytest.approx(0.005),
    }
    with open(tmp_path / "cka.csv", newline="") as file:
        header = next(csv.reader(file))
    labels = ["random0_s0", "random0_s1", "random0_s2"]
    assert header == [*cka.FIELDS, "chance", *labels, *(f"chance_{label}" for label in labels)]
    points = cka.cka_points(back)
    assert sorted(points) == list(range(1, 8)) and len(points[1]) == 3
    assert cka.chance_points(back) == {
        n: [pytest.approx(0.002), pytest.approx(-0.001), pytest.approx(0.005)] for n in range(1, 8)
    }
    summary = cka.summary_rows(back)
    assert {row["panel"] for row in summary} == {"cka"}
    assert [row["n"] for row in summary if row["curve"] == "CKA(A, B)"] == list(range(1, 8))
    chance = [row for row in summary if row["curve"] == "chance (permuted examples)"]
    assert [row["n"] for row in chance] == list(range(1, 8)) and chance[0]["count"] == 3
    assert chance[0]["mean"] == pytest.approx(0.002) and chance[0]["ci_low"] < 0 < chance[0]["ci_high"]
    assert "conv1 0.903 (chance 0.002)" in cka.describe(back)


def test_a_table_written_before_the_chance_baseline_still_reads(tmp_path: Path):
    """The old format (no chance columns): the same CKA rows, every chance None, no chance curve; pairs without a
    chance baseline write empty chance cells."""
    old = tmp_path / "old.csv"
    old.write_text(
        "n,stage,count,mean,ci_low,ci_high,std,min,max,random0_s0,random0_s1\n"
        "1,conv1,2,0.85,0.2,1.5,0.07,0.8,0.9,0.8,0.9\n"
        "2,conv2,1,0.5,,,,0.5,0.5,0.5,\n"
    )
    table = cka.read_cka_table(old)
    assert [(row["n"], row["stage"], row["mean"], row["chance"]) for row in table] == [
        (1, "conv1", 0.85, None),
        (2, "conv2", 0.5, None),
    ]
    assert table[1]["values"] == {"random0_s0": 0.5, "random0_s1": None}
    assert table[0]["chance_values"] == {"random0_s0": None, "random0_s1": None}
    assert cka.chance_points(table) == {} and cka.cka_points(table) == {1: [0.8, 0.9], 2: [0.5]}
    assert {row["curve"] for row in cka.summary_rows(table)} == {"CKA(A, B)"}
    assert "chance" not in cka.describe(table)
    rows = cka.write_cka_table(tmp_path / "new.csv", [pair("random0_s0", 0.0)])  # no chance measured
    assert rows[0]["chance"] is None and cka.read_cka_table(tmp_path / "new.csv") == rows
    (tmp_path / "bad.csv").write_text(
        old.read_text()
        .replace("random0_s1\n", "random0_s1,chance\n", 1)
        .replace(
            "n,stage,count,mean,ci_low,ci_high,std,min,max,", "n,stage,count,mean,ci_low,ci_high,std,min,max,chance,"
        )
    )
    with pytest.raises(TableError, match="bad.csv is corrupt"):  # chance columns that do not match the pairs
        cka.read_cka_table(tmp_path / "bad.csv")


def test_one_pair_has_no_interval_and_a_corrupt_table_is_named(tmp_path: Path):
    rows = cka.write_cka_table(tmp_path / "cka.csv", [pair("random0_s0", 0.0)])
    assert rows[0]["count"] == 1 and rows[0]["ci_low"] is None and rows[0]["ci_high"] is None
    assert cka.read_cka_table(tmp_path / "cka.csv")[0]["ci_low"] is None
    (tmp_path / "bad.csv").write_text("n,stage\n1,conv1\n")
    with pytest.raises(TableError, match="bad.csv is corrupt"):
        cka.read_cka_table(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="different stages|has stages"):
        cka.cka_rows([pair("a", 0.0), PairCKA("b", {"conv1": 0.5})])


# ----- the study step --------------------------------------------------------------------------------------
def save_base(root: Path, cell: str, half: str, seed: int) -> None:
    """A base cell folder: a tiny network's checkpoint (no training: its initialisation) and a study config."""
    folder = root / "cells" / cell
    module = CaffeNetClassifier(**{**TINY_MODEL, "init_seed": seed})
    trainer = Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        default_root_dir=str(folder),
    )
    trainer.strategy.connect(module)
    trainer.save_checkpoint(folder / "checkpoints" / "last.ckpt")
    data = {
        "class_path": "tests.helpers.study_data.StudyData",
        "init_args": {"split": "random0", "half": half, "batch_size": 8, "images_per_class": 20, "mean_half": None},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump({"seed_everything": seed, "data": data}))


def base_row(root: Path, cell: str, half: str, seed: int) -> dict:
    return {
        "split": "random0",
        "base_half": None,
        "target_half": half,
        "n": 0,
        "mode": None,
        "family": f"base{half}",
        "seed": seed,
        "top1_best_k_mean": 0.5,
        "cell": cell,
        "checkpoint": str(root / "cells" / cell / "checkpoints" / "last.ckpt"),
    }


@pytest.fixture
def study(tmp_path: Path) -> tuple[Path, list[dict]]:
    """A finished study's folder with the bases A and B of seeds 0 and 1, base A only of seed 2, and a transfer."""
    rows = []
    for seed, halves in ((0, "AB"), (1, "AB"), (2, "A")):
        for half in halves:
            cell = f"random0_base-{half}_s{seed}"
            save_base(tmp_path, cell, half, seed=10 * seed + (half == "B"))
            rows.append(base_row(tmp_path, cell, half, seed))
    rows.append(
        {**base_row(tmp_path, "random0_A1B_s0", "B", 0), "n": 1, "family": "AnB", "base_half": "A", "mode": "frozen"}
    )
    return tmp_path, rows


def test_study_writes_one_row_per_stage_and_the_report_draws_it(
    study: tuple[Path, list[dict]], capsys: pytest.CaptureFixture[str]
):
    root, rows = study
    pairs, missing = base_pairs(rows)
    assert [(p.seed, p.cell_a, p.cell_b) for p in pairs] == [
        (0, "random0_base-A_s0", "random0_base-B_s0"),
        (1, "random0_base-A_s1", "random0_base-B_s1"),
    ]
    assert missing == ["random0 seed 2 (no finished base B)"]
    path = write_similarity(root, rows, max_images=50)
    assert path == root / "cka.csv"
    table = cka.read_cka_table(path)
    assert [row["stage"] for row in table] == list(STAGES)  # one row per transferable stage
    assert all(row["count"] == 2 and set(row["values"]) == {"random0_s0", "random0_s1"} for row in table)
    assert all(-0.1 < value < 1 for row in table for value in row["values"].values())
    assert all(row["ci_low"] <= row["mean"] <= row["ci_high"] for row in table)
    assert table[0]["mean"] > 0.3  # the first stage of two initialisations on the same images: far above chance
    chances = [value for row in table for value in row["chance_values"].values()]  # from the same features
    assert len(chances) == 2 * len(STAGES) and all(abs(value) < CHANCE_BOUND for value in chances)
    record = json.loads((root / "cka.json").read_text())["pairs"][0]
    assert (record["base_a"], record["base_b"], record["images"]) == ("random0_base-A_s0", "random0_base-B_s0", 50)
    assert list(record["chance"]) == list(STAGES)
    output = capsys.readouterr().out
    assert "skipping random0 seed 2 (no finished base B)" in output and "CKA(A, B) by layer (2 seed pairs)" in output

    again = write_similarity(root, rows, max_images=50)  # deterministic: the same values when recomputed
    assert cka.read_cka_table(again) == table

    write_table(root / "results.csv", rows)
    files = write_report(rows, root)
    assert root / "cka.csv" in files
    assert (root / "figures" / "figure2.png").stat().st_size > 1000
    with open(root / "summary.csv", newline="") as file:
        summary = [line for line in csv.DictReader(file) if line["panel"] == "cka"]
    assert [(line["curve"], int(line["n"])) for line in summary] == [
        *(("CKA(A, B)", n) for n in range(1, 8)),
        *(("chance (permuted examples)", n) for n in range(1, 8)),
    ]
    assert float(summary[0]["mean"]) == pytest.approx(table[0]["mean"])
    assert float(summary[7]["mean"]) == pytest.approx(table[0]["chance"], abs=1e-6)
    figure = figures.figure2(rows, cka=cka.cka_points(table))
    assert len(figure.axes) == 3 and "CKA" in figure.axes[2].get_ylabel()
    assert len(figures.figure2(rows).axes) == 2  # without the panel, Figure 2 is as before


def test_study_reuses_unchanged_pairs_and_recomputes_changed_ones(
    study: tuple[Path, list[dict]], monkeypatch: pytest.MonkeyPatch
):
    root, rows = study
    first = cka.read_cka_table(write_similarity(root, rows, max_images=30))
    computed = []
    from experiments.study import similarity

    original = similarity._compute
    monkeypatch.setattr(similarity, "_compute", lambda *args: computed.append(args[1].label) or original(*args))
    assert cka.read_cka_table(write_similarity(root, rows, max_images=30)) == first
    assert computed == []
    summary = json.loads((root / "cka.json").read_text())
    old = {
        **summary,
        "pairs": [{key: value for key, value in record.items() if key != "chance"} for record in summary["pairs"]],
    }
    del old["estimator"]
    (root / "cka.json").write_text(json.dumps(old))  # written by the biased estimator: recomputed, not reused
    assert cka.read_cka_table(write_similarity(root, rows, max_images=30)) == first
    assert computed == ["random0_s0", "random0_s1"]
    computed.clear()
    checkpoint = root / "cells" / "random0_base-B_s1" / "checkpoints" / "last.ckpt"
    save_base(root, "random0_base-B_s1", "B", seed=99)  # B of seed 1 retrained
    os.utime(checkpoint, ns=(1, 1))
    changed = cka.read_cka_table(write_similarity(root, rows, max_images=30))
    assert computed == ["random0_s1"]
    assert [row["values"]["random0_s0"] for row in changed] == [row["values"]["random0_s0"] for row in first]
    assert [row["values"]["random0_s1"] for row in changed] != [row["values"]["random0_s1"] for row in first]


def test_study_without_both_bases_skips_and_a_corrupt_checkpoint_is_named(
    study: tuple[Path, list[dict]], capsys: pytest.CaptureFixture[str]
):
    root, rows = study
    assert write_similarity(root, rows, max_images=20) is not None
    only_a = [row for row in rows if row["target_half"] == "A"]
    assert write_similarity(root, only_a, max_images=20) is None
    assert "layer similarity: skipped" in capsys.readouterr().out
    assert not (root / "cka.csv").exists() and not (root / "cka.json").exists()  # no stale panel

    broken = root / "cells" / "random0_base-A_s1" / "checkpoints" / "last.ckpt"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(SimilarityError, match=r"cannot load base network random0_base-A_s1 from .*last\.ckpt"):
        write_similarity(root, rows, max_images=20)
    assert not (root / "cka.csv").exists()
    broken.unlink()
    with pytest.raises(SimilarityError, match="random0_base-A_s1"):
        write_similarity(root, rows, max_images=20)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter")
def test_runner_computes_the_panel_after_the_jobs_and_names_a_corrupt_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A whole tiny study (the bases of two seeds): cka.csv, Figure 2 with its panel and the summary's rows; a
    rerun reuses the values; a corrupt base stops the study with its name after the report is drawn."""

    output = tmp_path / "out"
    config = write_study(
        tmp_path, output, {"n": [1], "seeds": [0, 1], "figure2": {"families": []}}, wandb={"enabled": False}
    )
    run_study(config)
    table = cka.read_cka_table(output / "cka.csv")
    assert [row["stage"] for row in table] == list(STAGES) and all(row["count"] == 2 for row in table)
    assert (output / "figures" / "figure2.png").stat().st_size > 1000
    with open(output / "summary.csv", newline="") as file:
        curves = [line["curve"] for line in csv.DictReader(file) if line["panel"] == "cka"]
    assert curves == ["CKA(A, B)"] * 7 + ["chance (permuted examples)"] * 7
    assert "CKA between random0_base-A_s1 and random0_base-B_s1" in capsys.readouterr().out

    run_study(config)
    assert "CKA between" not in capsys.readouterr().out  # unchanged bases: the values are reused
    assert cka.read_cka_table(output / "cka.csv") == table

    broken = output / "cells" / "random0_base-A_s1" / "checkpoints" / "last.ckpt"
    broken.write_bytes(broken.read_bytes()[:100])
    os.utime(broken, ns=(1, 1))
    with pytest.raises(
        SystemExit, match="layer-similarity panel could not be computed: cannot load base network random0_base-A_s1"
    ):
        run_study(config)
    assert not (output / "cka.csv").exists() and (output / "figures" / "figure2.png").is_file()
