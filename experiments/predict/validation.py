"""Predicted against measured: the statistics of the transferability-prediction validation (#25 item 4).

Per estimator and variant, the score at each n against the measured AnB accuracy (``top1_best_k_mean``) at that n
on the study's random (Figure 2) split. The unit is the seed: seed s's scores come from seed s's bases and are
compared with seed s's AnB curve (per-seed tau, their mean with a 95 % t-interval over seeds). The headline, fixed
before any numbers were seen, is tau-b between the mean over seeds of the scores and the mean over seeds of the
measured accuracy, with its exact two-sided permutation p-value (:mod:`experiments.predict.ranking`); the rows of one
study (estimators x variants) are one family, Holm-adjusted. A study with fewer than :data:`MIN_VALUES` values of n
is too coarse to validate. The dissimilar check compares each dissimilar direction with the random split, measured
(AnB / the target's base) and predicted (the ``difference`` variant), at every n both were run.

Everything here reads committed tables only (``docs/<study>_results.csv``, ``docs/prediction_<study>_scores.csv``).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from experiments.errors import InputFileError, SettingError
from experiments.predict.ranking import Agreement, agreement
from experiments.predict.replicates import anb_curves, base_metrics, read_scores, read_unscored, scores_by_unit
from experiments.report.intervals import Interval, holm, mean_interval
from experiments.report.table import METRIC, Row, is_base, read_table

GOAL_TAU = 0.71  # the goal: a headline tau-b of at least this on every study with enough values of n
MIN_VALUES = 5  # fewer values of n: too coarse (4 values: 24 orderings, the best two-sided p is 2/24 = 0.083)
VARIANTS: tuple[str, ...] = ("raw", "selffer", "difference")
DISSIMILAR_VARIANT = "difference"  # the selffer-normalised score: comparable across target label sets


@dataclass(frozen=True)
class Validated:
    """One study of ``docs/`` and where its predictions come from.

    Args:
        name: The name in ``docs/``: its scores are ``prediction_<name>_scores.csv``, its figure
            ``prediction_<name>.png``.
        title: The page's heading for it.
        results: The committed results tables (in ``docs/``) that hold its measurements, read together; where there
            are several, every base network in more than one must have the same metric exactly (the same networks),
            else they are not combined.
        folder: The study folder (with checkpoints) that ``--score`` reads, or None where none were kept.
        copy_to: The table in ``docs/`` that ``--score`` copies the folder's ``results.csv`` into.
        reason: Why the study is not validated whatever its files say, or None.
    """

    name: str
    title: str
    results: tuple[str, ...]
    folder: str | None = None
    copy_to: str | None = None
    reason: str | None = None


# ---------------------------------------------------------------------------------------------------- measurements


def combine(tables: Mapping[str, list[Row]]) -> list[Row]:
    """The rows of several results tables of one design as one table, each base network once.

    Raises:
        SettingError: A base network (split, half, seed) whose metric differs between tables (retrained to another
            network: the tables do not measure the same bases), or a transfer cell in two tables.
    """
    bases: dict[tuple[str, str, int], tuple[str, float]] = {}
    cells: dict[str, str] = {}
    combined: list[Row] = []
    differing = []
    for source, rows in tables.items():
        for row in rows:
            if is_base(row):
                key = (row["split"], row["target_half"], row["seed"])
                if key in bases:
                    if bases[key][1] != row[METRIC]:
                        differing.append(
                            f"base {key[1]} of {key[0]} seed {key[2]}: {row[METRIC]!r} in {source}, "
                            f"{bases[key][1]!r} in {bases[key][0]}"
                        )
                    continue
                bases[key] = (source, row[METRIC])
            elif row["cell"] in cells:
                raise SettingError(
                    f"cell {row['cell']} is in both {cells[row['cell']]} and {source}: "
                    "which measurement counts is ambiguous; keep it in one table"
                )
            else:
                cells[row["cell"]] = source
            combined.append(row)
    if differing:
        raise SettingError(
            f"not combined: the retrained bases are not the same networks as the shipped ones ({'; '.join(differing)})"
        )
    return combined


def read_measurements(study: Validated, docs: Path) -> list[Row]:
    """The study's results, its tables in ``docs`` combined (:func:`combine`); missing tables are skipped.

    Raises:
        InputFileError: None of its tables is in ``docs``.
        SettingError: From :func:`combine`.
    """
    tables = {name: read_table(docs / name) for name in study.results if (docs / name).is_file()}
    if not tables:
        raise InputFileError(
            f"no results table of {study.name} in docs/ ({', '.join(study.results)})" + _pending(study)
        )
    return combine(tables)


def _pending(study: Validated) -> str:
    """How the study's table that ``--score`` copies gets into ``docs``, where it has a folder."""
    if study.folder is None or study.copy_to is None:
        return ""
    return (
        f"; `python -m experiments.predict.validate --score {study.name}` copies {study.copy_to} from "
        f"{study.folder}/results.csv once that study has run"
    )


# ------------------------------------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Correlation:
    """One estimator and variant of one study against the measured AnB curve.

    Args:
        estimator, variant: As in the score table.
        headline: Tau and rho of the seeds' mean score against the seeds' mean accuracy, over ``ns``.
        per_seed: The same for each seed alone (its scores against its own AnB curve).
        seed_tau: The mean of the per-seed taus with its 95 % t-interval over seeds (undefined for one seed; None
            where a seed's tau is undefined).
        tau_holm, rho_holm: The headline p-values Holm-adjusted over the study's rows.
        predicted: n -> the seeds' mean score (the headline's predicted curve).
    """

    estimator: str
    variant: str
    headline: Agreement
    per_seed: dict[int, Agreement]
    seed_tau: Interval | None
    tau_holm: float
    rho_holm: float
    predicted: dict[int, float]

    @property
    def goal_met(self) -> bool:
        """Whether the headline tau reaches the issue's goal (:data:`GOAL_TAU`)."""
        return self.headline.tau >= GOAL_TAU

    @property
    def seed_goal_met(self) -> bool | None:
        """Whether the mean of the per-seed taus reaches the goal; None where it is undefined."""
        return None if self.seed_tau is None else self.seed_tau.estimate >= GOAL_TAU


@dataclass(frozen=True)
class DissimilarCheck:
    """The dissimilar split's transfer against the random split's, at each n both were run, on shared seeds.

    Args:
        direction: ``base half -> target half`` of the dissimilar split.
        curve: ``measured`` (AnB / the target's base) or an estimator (its ``difference`` variant).
        margins: n -> dissimilar minus random (the check holds at n where it is negative).
        seeds: The seeds both panels have.
        agrees: For an estimator, the n where its margin has the measured margin's sign (both below 0, or both
            not); None for the measured curve.
    """

    direction: str
    curve: str
    margins: dict[int, float]
    seeds: tuple[int, ...]
    agrees: tuple[int, ...] | None = None

    @property
    def holds(self) -> bool:
        """Whether the dissimilar split is below the random one at every n checked."""
        return bool(self.margins) and all(margin < 0 for margin in self.margins.values())


@dataclass
class StudyValidation:
    """Everything the page says about one study.

    Args:
        study: Its manifest entry.
        status: None where validated; else why not (too coarse, not scored, not combined, ...).
        ns: The values of n compared; ``seeds``: the seeds of the headline.
        measured: seed -> n -> AnB's metric on the random split; ``measured_ns``: every n measured there.
        correlations: One per estimator and variant (empty when not validated).
        dissimilar: The dissimilar checks (empty where the study has no scored dissimilar panel), and
            ``dissimilar_status`` why not where so.
        seconds: estimator -> mean seconds per scored base of the random split (all its stages), where scores exist.
        predicted: (estimator, variant) -> seed -> n -> score, on the random split.
        unscored: (split, base half, target half, seed) -> why that replicate was not scored.
    """

    study: Validated
    status: str | None = None
    ns: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    measured: dict[int, dict[int, float]] = field(default_factory=dict)
    measured_ns: list[int] = field(default_factory=list)
    correlations: list[Correlation] = field(default_factory=list)
    dissimilar: list[DissimilarCheck] = field(default_factory=list)
    dissimilar_status: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    predicted: dict[tuple[str, str], dict[int, dict[int, float]]] = field(default_factory=dict)
    unscored: dict[tuple[str, str, str, int], str] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """The status's first words (``too coarse to validate``, ``not scored yet``, ...), or ``validated``."""
        return self.status.split(":")[0] if self.status else "validated"

    @property
    def best(self) -> Correlation | None:
        """The row with the highest headline tau (ties: the higher mean per-seed tau), or None."""
        defined = [row for row in self.correlations if not math.isnan(row.headline.tau)]
        return max(
            defined, key=lambda row: (row.headline.tau, row.seed_tau.estimate if row.seed_tau else -2.0), default=None
        )


def _rounded(value: float) -> str:
    return f"{value:.4f}"


def _seed_means(by_seed: Mapping[int, Mapping[int, float]], ns: Sequence[int]) -> list[float]:
    return [statistics.fmean(curve[n] for curve in by_seed.values() if n in curve) for n in ns]


def check_fingerprints(scores: list[Row], rows: list[Row], source: str) -> None:
    """Refuse scores whose bases are not the networks the results measured (their metrics must be equal).

    Raises:
        SettingError: A scored base that the results lack or measured differently.
    """
    bases = base_metrics(rows)
    for row in scores:
        for half, column in ((row["base_half"], "base_top1"), (row["target_half"], "target_base_top1")):
            measured = bases.get((row["split"], half, int(row["seed"])))
            if measured != float(row[column]):
                raise SettingError(
                    f"{source} scored base {half} of {row['split']} seed {row['seed']} with metric {row[column]!r}, "
                    f"but the results table has {measured!r}: the scores and the measurements are of different "
                    "networks. Score the study again (--score) after its results table changed"
                )


def correlate(
    measured: Mapping[int, Mapping[int, float]],
    predicted: Mapping[tuple[str, str], Mapping[int, Mapping[int, float]]],
    ns: Sequence[int],
) -> list[Correlation]:
    """Every estimator and variant's agreement with the measured curve over ``ns`` (headline, per seed, Holm)."""
    drafts = []
    for (estimator, variant), by_seed in sorted(predicted.items()):
        seeds = [
            seed for seed in by_seed if seed in measured and all(n in by_seed[seed] and n in measured[seed] for n in ns)
        ]
        if not seeds:
            continue
        mean_scores = _seed_means({seed: by_seed[seed] for seed in seeds}, ns)
        per_seed = {seed: agreement([by_seed[seed][n] for n in ns], [measured[seed][n] for n in ns]) for seed in seeds}
        taus = [value.tau for value in per_seed.values()]
        target = _seed_means({seed: measured[seed] for seed in seeds}, ns)  # the same seeds on both sides
        drafts.append(
            (
                estimator,
                variant,
                agreement(mean_scores, target),
                per_seed,
                None if any(math.isnan(tau) for tau in taus) else mean_interval(taus),
                dict(zip(ns, mean_scores, strict=True)),
            )
        )
    tau_steps = holm([None if math.isnan(draft[2].tau_p) else draft[2].tau_p for draft in drafts])
    rho_steps = holm([None if math.isnan(draft[2].rho_p) else draft[2].rho_p for draft in drafts])
    return [
        Correlation(
            estimator,
            variant,
            headline,
            per_seed,
            seed_tau,
            tau_step.adjusted_p if tau_step else math.nan,
            rho_step.adjusted_p if rho_step else math.nan,
            predicted_curve,
        )
        for (estimator, variant, headline, per_seed, seed_tau, predicted_curve), tau_step, rho_step in zip(
            drafts, tau_steps, rho_steps, strict=True
        )
    ]


def _relative(
    curves: Mapping[int, Mapping[int, float]],
    bases: Mapping[tuple[str, str, int], float],
    split: str,
    half: str,
    seeds: Sequence[int],
) -> dict[int, float]:
    """n -> the mean over ``seeds`` of AnB / the base of its target ``half`` (n where every seed has both)."""
    ratios: dict[int, list[float]] = defaultdict(list)
    for seed in seeds:
        for n, value in curves[seed].items():
            if (split, half, seed) in bases:
                ratios[n].append(value / bases[split, half, seed])
    return {n: statistics.fmean(values) for n, values in ratios.items() if len(values) == len(seeds)}


def dissimilar_checks(
    rows: list[Row], scores: list[Row], unscored: Mapping[tuple[str, str, str, int], str] | None = None
) -> tuple[list[DissimilarCheck], str | None]:
    """Each dissimilar direction against the random split, measured (AnB / base) and predicted (``difference``).

    At each n where both panels were measured and scored, on the seeds both have (their mean where several):
    the dissimilar value minus the random one. Returns the checks and, where there are none, why.
    """
    random_curves, other_curves = anb_curves(rows, random=True), anb_curves(rows, random=False)
    if not other_curves:
        return [], "the study has no dissimilar-split panel"
    if not random_curves:
        return [], "the study has no random-split AnB panel"
    bases = base_metrics(rows)
    ((random_key, random_measured),) = list(random_curves.items())[:1]
    by_unit = scores_by_unit(scores)
    checks, missing = [], []
    for key, measured in other_curves.items():
        split, base_half, target_half = key
        direction = f"{base_half} -> {target_half}"
        seeds = tuple(sorted(seed for seed in measured if seed in random_measured))
        if not seeds:
            missing.append(f"{direction}: no seed in common with the random split")
            continue
        dis = _relative(measured, bases, split, target_half, seeds)
        ran = _relative(random_measured, bases, random_key[0], random_key[2], seeds)
        ns = sorted(set(dis) & set(ran))
        measured_margins = {n: dis[n] - ran[n] for n in ns}
        checks.append(DissimilarCheck(direction, "measured", measured_margins, seeds))
        estimators = sorted({row["estimator"] for row in scores})
        scored = False
        for estimator in estimators:
            predicted = by_unit.get((split, base_half, target_half, estimator, DISSIMILAR_VARIANT))
            reference = by_unit.get((*random_key, estimator, DISSIMILAR_VARIANT))
            if not predicted or not reference or not all(seed in predicted and seed in reference for seed in seeds):
                continue
            margins = {
                n: statistics.fmean(predicted[seed][n] for seed in seeds)
                - statistics.fmean(reference[seed][n] for seed in seeds)
                for n in ns
                if all(n in predicted[seed] and n in reference[seed] for seed in seeds)
            }
            agrees = tuple(n for n in margins if (margins[n] < 0) == (measured_margins[n] < 0))
            checks.append(DissimilarCheck(direction, estimator, margins, seeds, agrees))
            scored = True
        if not scored:
            reasons = [
                reason
                for (unit_split, a, b, seed), reason in (unscored or {}).items()
                if (unit_split, a, b) == key and seed in seeds
            ]
            missing.append(
                f"{direction}: not scored ({'; '.join(reasons)})"
                if reasons
                else f"{direction}: not scored (the scored study folder has no network of this direction)"
            )
    return checks, "; ".join(missing) or None


def validate(study: Validated, docs: Path, min_values: int = MIN_VALUES) -> StudyValidation:
    """Everything the page says about ``study``, from its committed tables in ``docs`` (no exception for a study
    that cannot be validated: its ``status`` says why)."""
    if study.reason and not any((docs / name).is_file() for name in study.results):
        return StudyValidation(study, f"not validated: {study.reason}")
    try:
        rows = read_measurements(study, docs)
    except (InputFileError, SettingError) as err:
        return StudyValidation(study, f"not validated: {err}")
    random_curves = anb_curves(rows, random=True)
    if not random_curves:
        return StudyValidation(study, "not validated: no AnB network on a random split in its results")
    ((random_key, measured),) = list(random_curves.items())[:1]
    measured_ns = sorted({n for curve in measured.values() for n in curve})
    result = StudyValidation(study, measured=measured, measured_ns=measured_ns, seeds=sorted(measured))
    absent = [name for name in study.results if not (docs / name).is_file()]
    coarse = (
        f"too coarse to validate: AnB was measured at {len(measured_ns)} values of n "
        f"({', '.join(map(str, measured_ns))}); a rank correlation needs at least {min_values}"
        + (f" ({', '.join(absent)} not in docs/ yet{_pending(study)})" if absent else "")
    )
    if study.reason:
        result.status = f"not validated: {study.reason}" + (f"; and {coarse}" if len(measured_ns) < min_values else "")
        return result
    scores_path = docs / f"prediction_{study.name}_scores.csv"
    if len(measured_ns) < min_values:
        result.status = coarse
        return result
    if not scores_path.is_file():
        result.status = (
            f"not scored yet: no docs/{scores_path.name} (python -m experiments.predict.validate "
            f"--score {study.name}, with the checkpoints of {study.folder})"
        )
        return result
    unscored_path = docs / f"prediction_{study.name}_unscored.csv"
    try:
        scores, unscored = read_scores(scores_path), read_unscored(unscored_path)
        check_fingerprints(scores, rows, f"docs/{scores_path.name}")
        check_fingerprints(unscored, rows, f"docs/{unscored_path.name}")
    except SettingError as err:
        result.status = f"not validated: {err}"
        return result
    result.unscored = {
        (row["split"], row["base_half"], row["target_half"], int(row["seed"])): row["reason"] for row in unscored
    }
    by_unit = scores_by_unit(scores)
    result.predicted = {
        (estimator, variant): by_seed
        for (split, base_half, target_half, estimator, variant), by_seed in by_unit.items()
        if (split, base_half, target_half) == random_key
    }
    scored_ns = {n for by_seed in result.predicted.values() for curve in by_seed.values() for n in curve}
    result.ns = [n for n in measured_ns if n in scored_ns]
    if not result.predicted:
        result.status = "not validated: no replicate of the random split was scored (see the units not scored)"
        return result
    if len(result.ns) < min_values:
        result.status = (
            f"too coarse to validate: {len(result.ns)} values of n both measured and scored "
            f"({', '.join(map(str, result.ns))}); a rank correlation needs at least {min_values}"
        )
        return result
    result.correlations = correlate(measured, result.predicted, result.ns)
    result.seeds = sorted({seed for row in result.correlations for seed in row.per_seed})
    if result.best is None:
        mean_curve = _seed_means(measured, result.ns)
        result.status = "not validated: " + (
            f"the measured AnB curve is the same at every n ({_rounded(mean_curve[0])}): there is no ordering to "
            "predict"
            if len(set(mean_curve)) == 1
            else "every estimator's tau is undefined (constant scores)"
        )
    result.dissimilar, result.dissimilar_status = dissimilar_checks(rows, scores, result.unscored)
    per_unit: dict[str, dict[tuple[str, str, str, int], float]] = defaultdict(lambda: defaultdict(float))
    for row in scores:
        if row["variant"] == "raw" and row["panel"] == "random" and not math.isnan(row["seconds"]):
            unit = (row["split"], row["base_half"], row["target_half"], row["seed"])
            per_unit[row["estimator"]][unit] += row["seconds"]
    result.seconds = {estimator: statistics.fmean(units.values()) for estimator, units in sorted(per_unit.items())}
    return result
