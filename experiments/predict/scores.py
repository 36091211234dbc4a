"""Scores per cut point: every estimator on every stage's features, in three variants.

Cut point ``n`` (stages ``1..n`` copied and frozen, the rest trained: the paper's AnB) is scored from the features
of stage ``n``. Variants:

- ``raw``: the estimator on base A's stage-``n`` features of the target sample;
- ``selffer``: the same on the target's own base B's stage-``n`` features (BnB's frozen part), where one is given;
- ``difference``: ``raw - selffer``. A raw score tends to rise with depth (later features separate the classes
  better) while AnB accuracy falls, so the score relative to the target's own network may predict better.

``seconds`` is the wall time of that row's estimator on cached features (0 for ``difference``, a subtraction).
The estimators run on one thread: their matrices are small (at most ``max_dim`` wide), and on a machine whose cores
are shared, threads waiting for one another made them ten times slower than one thread alone.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, dataclass
from typing import Literal

import torch
from torch import Tensor

from experiments.predict.estimators import ESTIMATORS, linear_probe

EstimatorName = Literal["logme", "hscore", "transrate", "probe"]
ESTIMATOR_NAMES: tuple[str, ...] = tuple(ESTIMATORS)
VARIANTS: tuple[str, ...] = ("raw", "selffer", "difference")
FIELDS: tuple[str, ...] = ("n", "stage", "estimator", "variant", "score", "seconds")  # scores.csv's columns


@dataclass(frozen=True)
class ScoreRow:
    """One score: cut point ``n`` (its stage's name), estimator, variant, the score and its seconds."""

    n: int
    stage: str
    estimator: str
    variant: str
    score: float
    seconds: float

    def values(self) -> tuple[int, str, str, str, float, float]:
        """The row in ``FIELDS`` order."""
        return astuple(self)


def estimator_functions(names: Sequence[str], seed: int) -> dict[str, Callable[[Tensor, Tensor], float]]:
    """The named estimators, the probe's held-out split drawn with ``seed``.

    Raises:
        ValueError: An unknown or repeated name, or none.
    """
    unknown = [name for name in names if name not in ESTIMATORS]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"estimators must be distinct names among {', '.join(ESTIMATORS)}, got {list(names)}")
    return {
        name: functools.partial(linear_probe, seed=seed) if ESTIMATORS[name] is linear_probe else ESTIMATORS[name]
        for name in names
    }


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch's CPU operations on one thread inside the block, then on as many as before."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _timed(estimator: Callable[[Tensor, Tensor], float], features: Tensor, labels: Tensor) -> tuple[float, float]:
    start = time.perf_counter()
    score = estimator(features, labels)
    return score, time.perf_counter() - start


def score_stages(
    stages: Sequence[str],
    raw: Sequence[Tensor],
    labels: Tensor,
    selffer: Sequence[Tensor] | None,
    estimators: Sequence[str],
    seed: int = 0,
) -> list[ScoreRow]:
    """Every estimator at every cut point ``n = 1..len(stages)``, raw, and selffer and difference where given.

    Args:
        stages: The transferable stages' names, in order.
        raw: Base A's features per stage, ``(N, D_n)``.
        labels: The sample's labels ``(N,)``.
        selffer: Base B's features per stage, of the same images in the same order, or None.
        estimators: Names of ``ESTIMATORS``.
        seed: The probe's held-out split.

    Returns:
        Rows ordered by ``n``, then estimator (as given), then variant (``VARIANTS`` order).
    """
    functions = estimator_functions(estimators, seed)
    if len(raw) != len(stages) or (selffer is not None and len(selffer) != len(stages)):
        raise ValueError(
            f"features for {len(raw)} and {None if selffer is None else len(selffer)} stages, expected {len(stages)}"
        )
    rows = []
    with one_thread():
        for n, stage in enumerate(stages, start=1):
            for name, estimator in functions.items():
                score, seconds = _timed(estimator, raw[n - 1], labels)
                rows.append(ScoreRow(n, stage, name, "raw", score, seconds))
                if selffer is not None:
                    own, own_seconds = _timed(estimator, selffer[n - 1], labels)
                    rows.append(ScoreRow(n, stage, name, "selffer", own, own_seconds))
                    rows.append(ScoreRow(n, stage, name, "difference", score - own, 0.0))
    return rows
