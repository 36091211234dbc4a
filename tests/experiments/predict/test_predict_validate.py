"""Validation of transferability predictions (#25 item 4): exact rank statistics, the manifest's two commands on a
generated study (scores through a stand-in scorer), too-coarse studies, combined tables, the dissimilar check."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from pathlib import Path

import pytest

from experiments.entry import console
from experiments.errors import SettingError
from experiments.predict import ranking, replicates, validate, validation
from experiments.predict.page import page_text
from experiments.predict.validation import Validated
from experiments.report.table import write_table

SEEDS = (0, 1, 2)
DIRECTIONS = (("clothing", "footwear_bags"), ("footwear_bags", "clothing"))


# ------------------------------------------------------------------------------------------ independent references


def brute_tau_b(x, y):
    """Tau-b by counting pairs one by one (the textbook definition)."""
    concordant = discordant = tied_x = tied_y = pairs = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        pairs += 1
        dx, dy = x[i] - x[j], y[i] - y[j]
        tied_x += dx == 0
        tied_y += dy == 0
        if dx * dy > 0:
            concordant += 1
        elif dx * dy < 0:
            discordant += 1
    return (concordant - discordant) / math.sqrt((pairs - tied_x) * (pairs - tied_y))


def midranks(values):
    return [
        sum(other < value for other in values) + (sum(other == value for other in values) + 1) / 2 for value in values
    ]


def brute_rho(x, y):
    return statistics.correlation(midranks(x), midranks(y))


def mahonian(k):
    """The number of permutations of k items with each count of inversions (recurrence, no enumeration)."""
    counts = [1]
    for size in range(2, k + 1):
        new = [0] * (len(counts) + size - 1)
        for inversions, count in enumerate(counts):
            for extra in range(size):
                new[inversions + extra] += count
        counts = new
    return counts


# -------------------------------------------------------------------------------------------------- rank statistics


def test_tau_b_and_rho_match_pair_counts_and_midrank_correlation_with_ties():
    """Tau-b and rho equal the textbook definitions on random data with many ties."""
    generator = random.Random(4)
    for _ in range(40):
        k = generator.randint(3, 8)
        x = [generator.randint(0, 3) for _ in range(k)]
        y = [generator.randint(0, 3) for _ in range(k)]
        if len(set(x)) < 2 or len(set(y)) < 2:
            continue
        assert ranking.kendall_tau_b(x, y) == pytest.approx(brute_tau_b(x, y), abs=1e-12)
        assert ranking.spearman_rho(x, y) == pytest.approx(brute_rho(x, y), abs=1e-12)


def test_textbook_values():
    """Published values: tau-b with ties, rho with a tie, and exact tail probabilities of Kendall's and Spearman's
    tables (n = 5: P(S >= 8) = 5/120, P(rho >= 0.9) = 5/120, doubled for two sides)."""
    assert ranking.kendall_tau_b([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]) == pytest.approx(-0.47140452079103173)
    assert ranking.spearman_rho([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)
    assert ranking.exact_p_value("kendall", [1, 2, 3, 4, 5], [2, 1, 3, 4, 5]) == pytest.approx(10 / 120)
    assert ranking.exact_p_value("spearman", [1, 2, 3, 4, 5], [2, 1, 3, 4, 5]) == pytest.approx(10 / 120)
    assert ranking.exact_p_value("kendall", range(7), range(7)) == pytest.approx(2 / 5040)
    assert ranking.exact_p_value("spearman", range(7), list(reversed(range(7)))) == pytest.approx(2 / 5040)
    assert ranking.exact_p_value("kendall", range(4), range(4)) == pytest.approx(2 / 24)


@pytest.mark.parametrize("k", [6, 7, 8])
def test_exact_kendall_p_equals_the_inversion_distribution(k):
    """Without ties, the exact p is the two tails of the Mahonian distribution (S = C - D = P - 2 inversions)."""
    counts, pairs = mahonian(k), k * (k - 1) // 2
    generator = random.Random(k)
    for _ in range(5):
        y = list(range(k))
        generator.shuffle(y)
        observed = abs(brute_tau_b(list(range(k)), y)) * pairs
        expected = sum(
            count for inversions, count in enumerate(counts) if abs(pairs - 2 * inversions) >= observed - 1e-9
        ) / math.factorial(k)
        assert ranking.exact_p_value("kendall", range(k), y) == pytest.approx(expected, abs=1e-12)


def test_exact_p_with_ties_equals_a_brute_force_permutation_test():
    """With ties, both p-values equal enumerating the orderings with the reference statistics."""
    x, y = [0.3, 0.1, 0.3, 0.7, 0.2, 0.9], [5, 5, 2, 8, 1, 8]
    for name, statistic in (("kendall", brute_tau_b), ("spearman", brute_rho)):
        observed = abs(statistic(x, y))
        extreme = [abs(statistic(x, list(order))) >= observed - 1e-9 for order in itertools.permutations(y)]
        assert ranking.exact_p_value(name, x, y) == pytest.approx(sum(extreme) / len(extreme), abs=1e-12)


def test_rank_statistics_refuse_what_they_cannot_enumerate():
    """More than 8 pairs, unequal lengths or NaN raise; a constant side gives NaN (no ordering to agree with)."""
    with pytest.raises(ValueError, match="at most 8"):
        ranking.exact_p_value("kendall", range(9), range(9))
    with pytest.raises(ValueError, match="same length"):
        ranking.kendall_tau_b([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        ranking.agreement([1, 2, math.nan], [1, 2, 3])
    flat = ranking.agreement([1, 1, 1, 1, 1], [1, 2, 3, 4, 5])
    assert math.isnan(flat.tau) and math.isnan(flat.tau_p) and math.isnan(flat.rho_p)


# ------------------------------------------------------------------------------------------------ a generated study


def anb(seed, n):
    """The generated study's AnB accuracy: falls with n, with a seed's own noise (no two n tie)."""
    return 0.9 - 0.02 * n**1.5 + random.Random(100 * seed + n).uniform(-0.004, 0.004)


def base_value(half, seed):
    return {"A": 0.95, "B": 0.92, "clothing": 0.80, "footwear_bags": 0.96}[half] + 0.001 * seed


def row(split, base_half, target_half, n, family, seed, value, ns_tag=""):
    cell = f"{split}_base-{target_half}_s{seed}" if n == 0 else f"{split}_{base_half}{n}{target_half}_s{seed}"
    return {
        "split": split,
        "base_half": base_half,
        "target_half": target_half,
        "n": n,
        "mode": "frozen" if n else None,
        "family": family,
        "seed": seed,
        "top1_best_k_mean": value,
        "best_k": 2,
        "top1": value,
        "top5": 1.0,
        "epochs": 1,
        "steps": 300,
        "wall_time_s": 1.0,
        "checkpoint": f"cells/{cell}{ns_tag}/checkpoints/last.ckpt",
        "cell": cell + ns_tag,
    }


def study_rows(ns=range(1, 8), seeds=SEEDS, dissimilar=True, bases=True, base_shift=0.0):
    rows = []
    for seed in seeds:
        if bases:
            rows += [
                row("random0", None, half, 0, f"base{half}", seed, base_value(half, seed) + base_shift)
                for half in ("A", "B")
            ]
        rows += [row("random0", "A", "B", n, "AnB", seed, anb(seed, n)) for n in ns]
    if dissimilar:
        for base_half, target_half in DIRECTIONS:
            rows.append(row("dissimilar", None, base_half, 0, "base", 0, base_value(base_half, 0)))
            rows += [
                row("dissimilar", base_half, target_half, n, "AnB", 0, base_value(target_half, 0) * (0.9 - 0.06 * n))
                for n in (1, 3, 5, 7)
            ]
    return rows


def make_folder(folder: Path, rows) -> None:
    """A study folder as --score reads it: results.csv, each cell's config and checkpoint (empty files)."""
    for item in rows:
        (folder / Path(item["checkpoint"]).parent).mkdir(parents=True, exist_ok=True)
        (folder / item["checkpoint"]).write_text("")
        (folder / "cells" / item["cell"] / "config.yaml").write_text("")
    write_table(folder / "results.csv", rows)


def stand_in_scorer(rows, calls):
    """Scores that know the answer: ``oracle`` is the measured relative accuracy, ``reversed`` its negative,
    ``flat`` a constant; ``selffer`` is 1 (oracle) or 0, so ``difference`` keeps each one's order."""
    by_checkpoint = {item["checkpoint"]: item for item in rows}

    def scorer(base, config, target_base, images, seed):
        calls.append((base, config, target_base, images, seed))
        base_row = by_checkpoint[str(Path(base).relative_to(base.parents[3]))]
        target_row = by_checkpoint[str(Path(target_base).relative_to(target_base.parents[3]))]
        ns = sorted(
            item["n"]
            for item in rows
            if item["family"] == "AnB"
            and item["split"] == base_row["split"]
            and item["base_half"] == base_row["target_half"]
            and item["seed"] == base_row["seed"]
        )
        scores = []
        for n in ns:
            measured = next(
                item["top1_best_k_mean"]
                for item in rows
                if item["family"] == "AnB"
                and item["split"] == base_row["split"]
                and item["base_half"] == base_row["target_half"]
                and item["n"] == n
                and item["seed"] == base_row["seed"]
            )
            relative = measured / target_row["top1_best_k_mean"]
            for estimator, raw, selffer in (
                ("oracle", relative, 1.0),
                ("reversed", -relative, 0.0),
                ("flat", 0.5, 0.5),
            ):
                for variant, value in (("raw", raw), ("selffer", selffer), ("difference", raw - selffer)):
                    scores.append(
                        {
                            "n": n,
                            "stage": f"conv{n}",
                            "estimator": estimator,
                            "variant": variant,
                            "score": value,
                            "seconds": 0.25,
                        }
                    )
        return scores

    return scorer


@pytest.fixture
def scored(tmp_path, monkeypatch):
    """A generated study (n = 1..7, 3 seeds, dissimilar panel) scored into docs/ by ``score``."""
    rows = study_rows()
    make_folder(tmp_path / "studies" / "gen", rows)
    study = Validated("gen", "generated", ("gen_results.csv",), "studies/gen", "gen_results.csv")
    monkeypatch.setattr(validate, "STUDIES", {"gen": study})
    calls: list = []
    written = validate.score(
        study, tmp_path / "docs", stand_in_scorer(rows, calls), images=64, seed=3, root=tmp_path, log=lambda line: None
    )
    return study, tmp_path / "docs", written, calls


def test_score_scores_each_replicate_from_its_own_bases(scored):
    """One call per AnB replicate (3 random seeds, 2 dissimilar directions): base A, the smallest n's config, base B."""
    _, docs, written, calls = scored
    assert [path.name for path in written] == ["gen_results.csv", "prediction_gen_scores.csv"]
    assert len(calls) == 5
    base, config, target_base, images, seed = calls[0]
    assert (base.parts[-3], config.parts[-2], target_base.parts[-3], images, seed) == (
        "dissimilar_base-clothing_s0",
        "dissimilar_clothing1footwear_bags_s0",
        "dissimilar_base-footwear_bags_s0",
        64,
        3,
    )
    scores = replicates.read_scores(docs / "prediction_gen_scores.csv")
    assert {(item["panel"], item["seed"]) for item in scores} == {
        ("random", 0),
        ("random", 1),
        ("random", 2),
        ("dissimilar", 0),
    }


def test_validation_of_a_generated_study(scored):
    """Oracle scores agree perfectly (tau 1, p 2/7!, Holm over the 4 testable rows), reversed ones give -1, constant
    ones no statistic; the unit is the seed; the dissimilar check holds for the oracle only."""
    study, docs, _, _ = scored
    result = validation.validate(study, docs)
    assert result.status is None and result.ns == list(range(1, 8)) and result.seeds == [0, 1, 2]
    rows = {(item.estimator, item.variant): item for item in result.correlations}
    assert len(rows) == 9
    oracle, backwards, flat = rows["oracle", "raw"], rows["reversed", "difference"], rows["flat", "raw"]
    assert oracle.headline.tau == pytest.approx(1.0) and oracle.headline.tau_p == pytest.approx(2 / 5040)
    assert oracle.tau_holm == pytest.approx(4 * 2 / 5040) and oracle.goal_met
    assert sorted(oracle.per_seed) == [0, 1, 2] and oracle.seed_tau.estimate == pytest.approx(1.0)
    assert backwards.headline.tau == pytest.approx(-1.0) and not backwards.goal_met
    assert math.isnan(flat.headline.tau) and math.isnan(flat.tau_holm)
    assert result.best.estimator == "oracle" and result.best.headline.tau == pytest.approx(1.0)
    checks = {(check.direction, check.curve): check for check in result.dissimilar}
    assert set(checks) == {
        (f"{a} -> {b}", curve) for a, b in DIRECTIONS for curve in ("measured", "oracle", "reversed", "flat")
    }
    for a, b in DIRECTIONS:
        measured, oracle_check = checks[f"{a} -> {b}", "measured"], checks[f"{a} -> {b}", "oracle"]
        assert sorted(measured.margins) == [1, 3, 5, 7] and measured.seeds == (0,)
        assert measured.holds and oracle_check.holds
        assert oracle_check.margins == pytest.approx(measured.margins)
        assert not checks[f"{a} -> {b}", "reversed"].holds and not checks[f"{a} -> {b}", "flat"].holds
        assert oracle_check.agrees == (1, 3, 5, 7) and checks[f"{a} -> {b}", "reversed"].agrees == ()
        assert measured.agrees is None
    assert result.seconds == {
        "flat": pytest.approx(7 * 0.25),
        "oracle": pytest.approx(7 * 0.25),
        "reversed": pytest.approx(7 * 0.25),
    }


def test_write_page_from_committed_files(scored):
    """``--write`` (the real entry point) writes the page and the figure from docs/ alone."""
    _, docs, _, _ = scored
    assert console("validate", validate.main, ["--write", str(docs)]) == 0
    page = (docs / "transferability_prediction.md").read_text()
    assert (docs / "prediction_gen.png").stat().st_size > 10_000
    assert "| gen | 7 (1, 2, 3, 4, 5, 6, 7) | 3 | oracle (" in page
    assert (
        "| oracle | raw | 1.00 | 0.0004 | 0.0016 | 1.00 | 0.0004 | 0.0016 | 1.00, 1.00, 1.00 | 1.00 [1.00, 1.00] "
        "| met; per seed met |"
    ) in page
    assert "| reversed | raw | -1.00 | 0.0004 | 0.0016 |" in page and "| not met; per seed not met |" in page
    assert "the goal tau >= 0.71 is **met** on the seeds' mean curves" in page
    assert "| clothing -> footwear_bags | 0 | measured: AnB / target's base |" in page
    assert "| yes | 4 of 4 (n = 1, 3, 5, 7) |" in page and "| no | 0 of 4 |" in page
    assert console("validate", validate.main, ["--check", str(docs)]) == 0
    (docs / "transferability_prediction.md").write_text(page.replace("| 1.00 | 0.0004 |", "| 0.99 | 0.0004 |", 1))
    assert console("validate", validate.main, ["--check", str(docs)]) == 1


def test_scores_of_other_networks_are_refused(scored):
    """Scores whose bases' metrics are not the results table's (a rerun study) do not validate."""
    study, docs, _, _ = scored
    write_table(docs / "gen_results.csv", study_rows(base_shift=0.001))
    result = validation.validate(study, docs)
    assert result.status.startswith("not validated:") and "different networks" in result.status
    assert not result.correlations


def test_a_differing_results_table_is_replaced_only_on_request(tmp_path):
    """--score does not overwrite a committed results table that differs from the folder's, unless told to."""
    rows = study_rows(dissimilar=False, seeds=(0,))
    make_folder(tmp_path / "studies" / "gen", rows)
    write_table(tmp_path / "docs" / "gen_results.csv", study_rows(dissimilar=False, seeds=(0,), base_shift=0.01))
    study = Validated("gen", "generated", ("gen_results.csv",), "studies/gen", "gen_results.csv")
    scorer = stand_in_scorer(rows, [])
    with pytest.raises(SettingError, match="--replace_results"):
        validate.score(study, tmp_path / "docs", scorer, root=tmp_path, log=lambda line: None)
    validate.score(study, tmp_path / "docs", scorer, replace_results=True, root=tmp_path, log=lambda line: None)
    assert (tmp_path / "docs" / "gen_results.csv").read_bytes() == (tmp_path / "studies/gen/results.csv").read_bytes()


def test_too_coarse_and_unscorable_studies_are_marked(tmp_path, monkeypatch):
    """n = 1, 3, 5, 7 is too coarse (said, not scored silently); a study without checkpoints says why; --score of it
    is a user error (exit 2)."""
    docs = tmp_path / "docs"
    write_table(docs / "coarse_results.csv", study_rows(ns=(1, 3, 5, 7)))
    write_table(docs / "kept_results.csv", study_rows(ns=(1, 3, 5, 7)))
    coarse = validation.validate(Validated("coarse", "c", ("coarse_results.csv",), "studies/coarse", "x.csv"), docs)
    assert coarse.status.startswith("too coarse to validate: AnB was measured at 4 values of n (1, 3, 5, 7)")
    unkept = Validated("kept", "k", ("kept_results.csv",), reason="no checkpoints were kept")
    assert validation.validate(unkept, docs).status == (
        "not validated: no checkpoints were kept; and too coarse to validate: AnB was measured at 4 values of n "
        "(1, 3, 5, 7); a rank correlation needs at least 5"
    )
    missing = validation.validate(
        Validated("full", "f", ("full_results.csv",), "studies/full", "full_results.csv"), docs
    )
    assert missing.status.startswith("not validated: no results table of full")
    monkeypatch.setattr(validate, "STUDIES", {"kept": unkept})
    assert console("validate", validate.main, ["--score", "kept"]) == 2
    assert console("validate", validate.main, ["--write", str(docs)]) == 0
    page = (docs / "transferability_prediction.md").read_text()
    assert "**Not validated: no checkpoints were kept; and too coarse" in page and "not assessed" in page


def test_a_replicate_the_scorer_refuses_is_listed_not_dropped(tmp_path):
    """A diverged network (the scorer raises) leaves its replicate out of the scores, listed with its reason in
    prediction_<study>_unscored.csv, on the page, and as the reason its dissimilar direction is not checked."""
    rows = study_rows()
    make_folder(tmp_path / "studies" / "gen", rows)
    study = Validated("gen", "generated", ("gen_results.csv",), "studies/gen", "gen_results.csv")
    knowing = stand_in_scorer(rows, [])

    def scorer(base, config, target_base, images, seed):
        if "footwear_bags1clothing" in str(config):
            raise RuntimeError("linalg.eigh: The algorithm failed to converge")
        return knowing(base, config, target_base, images, seed)

    written = validate.score(study, tmp_path / "docs", scorer, root=tmp_path, log=lambda line: None)
    assert written[-1].name == "prediction_gen_unscored.csv"
    result = validation.validate(study, tmp_path / "docs")
    assert result.status is None and result.unscored == {
        ("dissimilar", "footwear_bags", "clothing", 0): "RuntimeError: linalg.eigh: The algorithm failed to converge"
    }
    assert result.dissimilar_status == (
        "footwear_bags -> clothing: not scored (RuntimeError: linalg.eigh: The algorithm failed to converge)"
    )
    assert {check.direction for check in result.dissimilar if check.curve == "oracle"} == {"clothing -> footwear_bags"}
    page = page_text([result])
    assert "- dissimilar footwear_bags -> clothing, seed 0: RuntimeError: linalg.eigh" in page
    validate.score(study, tmp_path / "docs", knowing, root=tmp_path, log=lambda line: None)
    assert not (tmp_path / "docs" / "prediction_gen_unscored.csv").exists()


def test_a_diverged_checkpoint_is_refused_by_name(tmp_path):
    """NaN weights are refused before scoring, naming the tensors (a diverged base, as the demo folder's vehicle)."""
    import torch

    path = tmp_path / "last.ckpt"
    torch.save(
        {"state_dict": {"net.conv1.weight": torch.tensor([1.0, float("nan")]), "net.fc8.bias": torch.ones(2)}}, path
    )
    with pytest.raises(SettingError, match=r"NaN or infinite weights in 1 tensors \(net.conv1.weight\)"):
        replicates._check_finite(path)
    torch.save({"state_dict": {"net.conv1.weight": torch.ones(2)}}, path)
    replicates._check_finite(path)


def test_a_flat_measured_curve_is_not_validated(tmp_path):
    """Where AnB measured the same at every n (an easy target), there is no ordering to predict: said, not scored."""
    rows = study_rows(dissimilar=False)
    for item in rows:
        if item["family"] == "AnB":
            item["top1_best_k_mean"] = 1.0
    make_folder(tmp_path / "studies" / "flat", rows)
    study = Validated("flat", "f", ("flat_results.csv",), "studies/flat", "flat_results.csv")
    validate.score(study, tmp_path / "docs", stand_in_scorer(rows, []), root=tmp_path, log=lambda line: None)
    result = validation.validate(study, tmp_path / "docs")
    assert result.status == (
        "not validated: the measured AnB curve is the same at every n (1.0000): there is no ordering to predict"
    )
    assert result.best is None and len(result.correlations) == 9


def test_tables_combine_only_when_their_bases_are_the_same_networks(tmp_path):
    """Shipped n = 1, 3, 5, 7 plus retrained bases with n = 2, 4, 6: combined (7 values) where every base's metric is
    equal, refused (with the base named) where one differs."""
    docs = tmp_path / "docs"
    write_table(docs / "old_results.csv", study_rows(ns=(1, 3, 5, 7)))
    write_table(docs / "new_results.csv", study_rows(ns=(2, 4, 6), dissimilar=False))
    study = Validated("both", "b", ("old_results.csv", "new_results.csv"), "studies/new", "new_results.csv")
    rows = validation.read_measurements(study, docs)
    assert sorted({item["n"] for item in rows if item["family"] == "AnB" and item["split"] == "random0"}) == list(
        range(1, 8)
    )
    assert sum(item["n"] == 0 and item["split"] == "random0" for item in rows) == 6
    assert validation.validate(study, docs).status.startswith("not scored yet")
    shifted = study_rows(ns=(2, 4, 6), dissimilar=False)
    shifted[1]["top1_best_k_mean"] += 1e-7  # seed 0's base B retrained to another network
    write_table(docs / "new_results.csv", shifted)
    with pytest.raises(SettingError, match=r"not the same networks .*base B of random0 seed 0"):
        validation.read_measurements(study, docs)
    assert validation.validate(study, docs).status.startswith("not validated: not combined")
    duplicate = Validated("dup", "d", ("old_results.csv", "old_copy.csv"))
    write_table(docs / "old_copy.csv", study_rows(ns=(1,), dissimilar=False))
    with pytest.raises(SettingError, match="ambiguous"):
        validation.read_measurements(duplicate, docs)


def test_predict_scorer_passes_the_cell_configs_data_section(tmp_path, monkeypatch):
    """The scorer hands ``predict`` the AnB cell config's data section, the bases, the sample and the options, and
    returns its rows as the score columns."""
    import torch

    from experiments.predict import run
    from experiments.predict.scores import ScoreRow

    seen = {}

    def fake_predict(base, data, target_base, **settings):
        seen.update(base=base, data=data, target_base=target_base, settings=settings)
        return [ScoreRow(1, "conv1", "logme", "raw", -0.25, 0.5)]

    monkeypatch.setattr(run, "predict", fake_predict)
    config = tmp_path / "config.yaml"
    config.write_text(
        "model: {}\ndata:\n  class_path: datamodules.FashionMNISTHalf\n"
        "  init_args: {split: random0, half: B, mean_half: A}\n"
    )
    base, target_base = tmp_path / "a.ckpt", tmp_path / "b.ckpt"
    for path in (base, target_base):
        torch.save({"state_dict": {"net.conv1.weight": torch.ones(2)}}, path)
    rows = replicates.predict_scorer(device="cuda")(base, config, target_base, 64, 3)
    assert rows == [{"n": 1, "stage": "conv1", "estimator": "logme", "variant": "raw", "score": -0.25, "seconds": 0.5}]
    assert seen["data"] == {
        "class_path": "datamodules.FashionMNISTHalf",
        "init_args": {"split": "random0", "half": "B", "mean_half": "A"},
    }
    assert (seen["base"], seen["target_base"]) == (base, target_base)
    assert seen["settings"] == {"seed": 3, "images": 64, "device": "cuda", "config_files": [config], "quiet": True}
    config.write_text("model: {}\n")
    with pytest.raises(SettingError, match="no readable data section"):
        replicates.predict_scorer()(base, config, target_base, None, 0)


DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_the_committed_page_is_what_the_command_writes():
    """docs/transferability_prediction.md is written from the committed tables (never edited by hand)."""
    assert validate.main(["--check", str(DOCS)]) == 0, "run python -m experiments.predict.validate --write docs/"


def test_the_manifest_names_every_finished_study_in_docs():
    """Every docs/<study>_results.csv of the repository is in the manifest (validated, or with its reason)."""
    shipped = {path.name for path in DOCS.glob("*_results.csv")}
    named = {name for study in validate.STUDIES.values() for name in study.results}
    assert shipped <= named
    assert validate.STUDIES["fmnist_vit"].reason and validate.STUDIES["fmnist_vit"].folder is None
