"""Layer similarity: debiased linear CKA between two networks' stage outputs, its chance baseline, table and panel.

``linear_cka(x, y)`` compares two sets of features of the same ``n`` examples: centred kernel alignment
(Kornblith et al. 2019, "Similarity of neural network representations revisited") of the linear Gram
matrices ``K = X Xᵀ`` and ``L = Y Yᵀ``, with HSIC estimated by the unbiased U-statistic ``HSIC_1`` of
Song et al. 2012 ("Feature selection via dependence maximization"), as in the debiased CKA of Nguyen,
Raghu & Kornblith 2021 ("Do wide and deep networks learn the same things?"). The biased estimator
(the centred Grams' plain alignment) is pulled up by width: independent Gaussian features of 1000
examples score about 0.12 at 128 dimensions and 0.70 at 2304, so with it CKA falls with a CaffeNet's
depth whether or not anything is shared. The debiased one is about 0 for independent features of any
width and 1 for features that are the same up to an orthogonal transform, an isotropic scale and a
shift; in between, how much of one side's linear similarity structure (which examples look alike) the
other shares. It can come out slightly below 0 (an estimate of 0 with noise) and is kept as measured.

``cka_and_chance(x, y)`` adds the chance baseline, measured the same way: the CKA of ``x`` against
``y`` of the examples in a seeded random order (the mean over ``CHANCE_PERMUTATIONS`` permutations).
A permutation breaks the example correspondence and keeps everything else (widths, each side's
feature statistics), so it is what those alone give. ``stage_cka(net_a, net_b, images)`` (and
``stage_cka_and_chance``) run two ``models.network.StagedNetwork``s stage by stage over the same images
and compare them at every transferable stage (all but the head): the study's layer-similarity panel,
CKA between base A and base B at layer n, shows where the two halves' features stop being shared
without training a transfer network (``experiments.study.similarity`` computes it for a finished study).

The table (``cka.csv``) has one row per stage: its layer n and name, the mean CKA over seed pairs with
its 95 % t-interval (``experiments.report.intervals``, undefined for one pair), std, min, max, the mean
chance baseline (``chance``), one column per seed pair (``<split>_s<seed>``) with that pair's CKA, then
one per seed pair (``chance_<split>_s<seed>``) with that pair's chance baseline. A table written
before the chance baseline (no ``chance`` columns) still reads, its chance values None.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from experiments.report.intervals import mean_interval
from experiments.report.table import Points, Row, TableError
from models.files import write_atomic
from models.network import StagedNetwork

MAX_IMAGES = 1000  # images compared per network pair (the first ones given)
MIN_EXAMPLES = 4  # the unbiased HSIC estimator divides by n - 3
BATCH_SIZE = 100  # images per forward pass of a stage
BLOCK_BYTES = 1 << 26  # float64 working block when centring and multiplying features (64 MiB)
CHANCE_PERMUTATIONS, CHANCE_SEED = 5, 0  # the chance baseline: mean CKA over these seeded permutations
FIELDS: tuple[str, ...] = ("n", "stage", "count", "mean", "ci_low", "ci_high", "std", "min", "max")
CHANCE = "chance"  # the column after FIELDS (mean chance baseline); each pair's is CHANCE_PREFIX + label
CHANCE_PREFIX = "chance_"
PANEL, CURVE, CHANCE_CURVE = "cka", "CKA(A, B)", "chance (permuted examples)"  # the panel's rows in summary.csv
T = TypeVar("T")


# ----- the measure --------------------------------------------------------------------------------------------
def _matrix(features: Any) -> Tensor:
    """``features`` as an ``(examples, features)`` tensor: each example flattened (a view where possible)."""
    tensor = torch.as_tensor(features)
    if tensor.dim() < 1:
        raise ValueError("CKA needs features of shape (examples, ...), got a scalar")
    return tensor.reshape(tensor.shape[0], -1)


def _centred_blocks(x: Tensor) -> Iterator[Tensor]:
    """The columns of ``x`` in float64 blocks of at most ``BLOCK_BYTES``, each column centred over the examples."""
    width = max(1, BLOCK_BYTES // (8 * max(1, x.shape[0])))
    for start in range(0, x.shape[1], width):
        block = x[:, start : start + width].to(torch.float64)
        yield block - block.mean(0, keepdim=True)


def centred_gram(features: Any) -> Tensor:
    """The ``n x n`` float64 Gram matrix of the centred features (``H X Xᵀ H``), built block by block of features.

    The unbiased HSIC does not change when the features are shifted; centring first keeps large means
    (e.g. after a ReLU) from swamping the Gram matrix's float64 precision.
    """
    x = _matrix(features)
    gram = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64, device=x.device)
    for block in _centred_blocks(x):
        gram.addmm_(block, block.T)
    return gram


def _hollow(gram: Tensor) -> Tensor:
    """``gram`` with its diagonal set to zero (a copy)."""
    return gram - torch.diag_embed(gram.diagonal())


def unbiased_hsic(k: Tensor, l: Tensor) -> float:
    """The unbiased HSIC estimator ``HSIC_1`` (Song et al. 2012, eq. 5) of two ``n x n`` Gram matrices, n >= 4.

    With ``K̃``, ``L̃`` the Grams with zero diagonals: ``[tr(K̃ L̃) + (1ᵀK̃1)(1ᵀL̃1) / ((n-1)(n-2))
    - 2/(n-2) · 1ᵀK̃L̃1] / (n(n-3))``.

    Raises:
        ValueError: Fewer than four examples, or Grams of different sizes.
    """
    n = k.shape[0]
    if l.shape != k.shape or k.shape != (n, n):
        raise ValueError(f"HSIC needs two n x n Gram matrices, got shapes {tuple(k.shape)} and {tuple(l.shape)}")
    _check_examples(n)
    k, l = _hollow(k), _hollow(l)
    return _hsic_hollow(k, l, k.sum(0), l.sum(0))


def _hsic_hollow(k: Tensor, l: Tensor, k_sums: Tensor, l_sums: Tensor) -> float:
    """:func:`unbiased_hsic` of zero-diagonal symmetric Grams with their row sums given (reused across calls)."""
    n = k.shape[0]
    trace = (k * l).sum()
    totals = k_sums.sum() * l_sums.sum() / ((n - 1) * (n - 2))
    cross = 2.0 / (n - 2) * (k_sums @ l_sums)
    return float((trace + totals - cross) / (n * (n - 3)))


def _check_examples(n: int) -> None:
    if n < MIN_EXAMPLES:
        raise ValueError(
            f"debiased CKA needs at least {MIN_EXAMPLES} examples (its HSIC estimator divides by n - 3), got {n}"
        )


def _grams(x: Any, y: Any) -> tuple[Tensor, Tensor]:
    """The two sides' zero-diagonal centred Grams, after checking they hold the same ``n >= 4`` examples."""
    x, y = _matrix(x), _matrix(y)
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"CKA compares features of the same examples: got {n} and {y.shape[0]} examples")
    _check_examples(n)
    return _hollow(centred_gram(x)), _hollow(centred_gram(y.to(x.device)))


def _cka(cross: float, self_k: float, self_l: float) -> float:
    """CKA from the three HSICs; NaN where a side's self-similarity is not positive (no variance)."""
    return cross / math.sqrt(self_k * self_l) if self_k > 0 and self_l > 0 else math.nan


def linear_cka(x: Any, y: Any) -> float:
    """Debiased linear CKA between two sets of features of the same ``n >= 4`` examples (module docstring).

    ``HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L))`` with ``K = X Xᵀ``, ``L = Y Yᵀ`` of each example's
    flattened features, in float64, the Grams built block by block of features. About 0 for independent
    features of any width, 1 for ``y = s·x·Q + c`` (``Q`` orthogonal, ``s ≠ 0``); it can be slightly
    negative, and is returned as measured (not clipped). NaN where a side has no variance (every example
    alike), for which CKA is undefined.

    Args:
        x: Features ``(n, ...)`` (a tensor or anything ``torch.as_tensor`` takes).
        y: Features ``(n, ...)`` of the same examples, any number of them.

    Raises:
        ValueError: Different numbers of examples, or fewer than four.
    """
    k, l = _grams(x, y)
    k_sums, l_sums = k.sum(0), l.sum(0)
    return _cka(
        _hsic_hollow(k, l, k_sums, l_sums), _hsic_hollow(k, k, k_sums, k_sums), _hsic_hollow(l, l, l_sums, l_sums)
    )


def cka_and_chance(
    x: Any, y: Any, permutations: int = CHANCE_PERMUTATIONS, seed: int = CHANCE_SEED
) -> tuple[float, float]:
    """:func:`linear_cka` of ``x`` and ``y``, and its chance baseline from the same Gram matrices.

    The baseline is the mean debiased CKA of ``x`` against ``y`` with its examples permuted, over
    ``permutations`` permutations drawn from a ``torch.Generator`` seeded with ``seed`` (the same
    permutations for every call with the same ``n``): what the widths and each side's feature statistics
    give without the example correspondence. About 0; like the CKA, kept as measured.

    Raises:
        ValueError: Different numbers of examples, fewer than four, or ``permutations`` < 1.
    """
    if permutations < 1:
        raise ValueError(f"the chance baseline needs at least one permutation, got {permutations}")
    k, l = _grams(x, y)
    k_sums, l_sums = k.sum(0), l.sum(0)
    self_k, self_l = _hsic_hollow(k, k, k_sums, k_sums), _hsic_hollow(l, l, l_sums, l_sums)
    value = _cka(_hsic_hollow(k, l, k_sums, l_sums), self_k, self_l)
    generator = torch.Generator().manual_seed(seed)
    chance = []
    for _ in range(permutations):
        order = torch.randperm(k.shape[0], generator=generator).to(l.device)
        # a permuted Gram keeps its zero diagonal, its self-HSIC and (permuted) its row sums
        chance.append(_cka(_hsic_hollow(k, l[order][:, order], k_sums, l_sums[order]), self_k, self_l))
    return value, sum(chance) / len(chance)


# ----- two networks, stage by stage --------------------------------------------------------------------------
def transferable_stages(net: StagedNetwork) -> tuple[str, ...]:
    """The stages a transfer can copy: all but the head."""
    return tuple(net.stage_names[:-1])


def collect_images(images_or_loader: Tensor | Iterable[Any], max_images: int = MAX_IMAGES) -> Tensor:
    """The first ``max_images`` images of a tensor ``(N, C, H, W)`` or of a loader's batches (a batch is the images,
    or a tuple/list whose first item is), read no further than needed.

    Raises:
        ValueError: ``max_images`` < ``MIN_EXAMPLES`` (4), or no images.
    """
    if max_images < MIN_EXAMPLES:
        raise ValueError(
            f"max_images must be at least {MIN_EXAMPLES} (debiased CKA compares examples), got {max_images}"
        )
    if isinstance(images_or_loader, Tensor):
        return images_or_loader[:max_images]
    batches, count = [], 0
    for batch in images_or_loader:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        batches.append(images[: max_images - count])
        count += len(batches[-1])
        if count >= max_images:
            break
    if not batches:
        raise ValueError("no images to compare the networks on (an empty loader)")
    return torch.cat(batches)


def stage_features(
    net: StagedNetwork, images: Tensor, batch_size: int = BATCH_SIZE
) -> Generator[tuple[str, Tensor], None, None]:
    """``(stage name, that stage's outputs for every image)`` for each transferable stage in order, in eval mode
    without gradients.

    Memory: the images are released after the first stage, and at any time only one stage's outputs and
    the next's, as they are computed, are held (``2 x len(images) x`` the larger stage's outputs per image),
    on the network's device. The network is put in eval mode and back in the mode it was in at the end.

    Raises:
        ValueError: ``images`` is not a batch of the network's input (``check_input``).
    """
    net.check_input(images[:1])
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        x = images
        del images
        for index, name in enumerate(transferable_stages(net), start=1):
            out: Tensor | None = None
            for start in range(0, len(x), batch_size):
                with torch.no_grad():
                    part = net.forward_stages(x[start : start + batch_size].to(device), index, index)
                if out is None:
                    out = part.new_empty((len(x), *part.shape[1:]))
                out[start : start + len(part)] = part
            if out is None:
                raise ValueError("stage_features needs at least one image")
            x = out
            yield name, x
    finally:
        net.train(was_training)


def stage_cka(
    net_a: StagedNetwork,
    net_b: StagedNetwork,
    images_or_loader: Tensor | Iterable[Any],
    max_images: int = MAX_IMAGES,
    *,
    images_b: Tensor | Iterable[Any] | None = None,
    batch_size: int = BATCH_SIZE,
) -> dict[str, float]:
    """Debiased linear CKA between ``net_a`` and ``net_b`` at each transferable stage (all but the head), on the
    same images.

    Both networks run stage by stage (eval mode, no gradients) over at most ``max_images`` images (the first
    ones of ``images_or_loader``, default 1000): memory is bounded by the images and about four stage outputs
    (two per network, see :func:`stage_features`) of ``max_images`` images each, plus a few ``max_images²``
    float64 Gram matrices.

    Args:
        net_a, net_b: Networks with the same stages (e.g. base A and base B).
        images_or_loader: Images ``(N, C, H, W)`` or a loader of batches (images, or ``(images, labels)``).
        max_images: How many images to compare on (at least 4).
        images_b: The same images as ``net_b`` takes them where its preprocessing differs from ``net_a``'s
            (e.g. another mean image subtracted), in the same order; None: ``net_b`` takes ``images_or_loader``.
        batch_size: Images per forward pass.

    Returns:
        Stage name -> CKA, in stage order.

    Raises:
        ValueError: Networks with different stages, inputs of different shapes, or images the networks do not take.
    """
    return _by_stage(linear_cka, net_a, net_b, images_or_loader, max_images, images_b, batch_size)


def stage_cka_and_chance(
    net_a: StagedNetwork,
    net_b: StagedNetwork,
    images_or_loader: Tensor | Iterable[Any],
    max_images: int = MAX_IMAGES,
    *,
    images_b: Tensor | Iterable[Any] | None = None,
    batch_size: int = BATCH_SIZE,
) -> dict[str, tuple[float, float]]:
    """As :func:`stage_cka`, each stage's value with its chance baseline (:func:`cka_and_chance`), from the same
    features in one pass: stage name -> (CKA, chance)."""
    return _by_stage(cka_and_chance, net_a, net_b, images_or_loader, max_images, images_b, batch_size)


def _by_stage(
    measure: Callable[[Tensor, Tensor], T],
    net_a: StagedNetwork,
    net_b: StagedNetwork,
    images_or_loader: Tensor | Iterable[Any],
    max_images: int,
    images_b: Tensor | Iterable[Any] | None,
    batch_size: int,
) -> dict[str, T]:
    """``measure`` of the two networks' outputs at each transferable stage (see :func:`stage_cka`)."""
    if tuple(net_a.stage_names) != tuple(net_b.stage_names):
        raise ValueError(f"the networks have different stages: {net_a.stage_names} and {net_b.stage_names}")
    inputs_a = collect_images(images_or_loader, max_images)
    inputs_b = inputs_a if images_b is None else collect_images(images_b, max_images)
    if inputs_a.shape != inputs_b.shape:
        raise ValueError(
            f"images_b must be the same images as images_or_loader: shapes {tuple(inputs_a.shape)} and "
            f"{tuple(inputs_b.shape)}"
        )
    modes = [(net, net.training) for net in (net_a, net_b)]
    features_a = stage_features(net_a, inputs_a, batch_size)
    features_b = stage_features(net_b, inputs_b, batch_size)
    del inputs_a, inputs_b  # held by the generators until their first stage only
    try:
        return {name: measure(x, y) for (name, x), (_, y) in zip(features_a, features_b)}
    finally:  # both generators done, then each network in its mode (net_a may be net_b)
        features_a.close()
        features_b.close()
        for net, mode in modes:
            net.train(mode)


# ----- the table ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairCKA:
    """One pair of networks' CKA at each stage, and its chance baseline where measured.

    Args:
        label: The pair's column in the table, e.g. ``random0_s0`` (split and seed of the two bases).
        values: Stage name -> CKA, in stage order (stage n is the n-th).
        chance: Stage name -> the chance baseline (:func:`cka_and_chance`) for the same stages, or None.
    """

    label: str
    values: Mapping[str, float]
    chance: Mapping[str, float] | None = None


def _round(number: float | None) -> float | None:
    return None if number is None or math.isnan(number) else round(number, 6)


def _defined(values: Iterable[float | None]) -> list[float]:
    return [value for value in values if value is not None and not math.isnan(value)]


def _statistics(values: Sequence[float]) -> Row:
    """Mean, 95 % t-interval (None for one value), std, min and max of ``values`` (at least one), rounded."""
    interval = mean_interval(values)
    return {
        "mean": _round(interval.estimate),
        "ci_low": _round(interval.low),
        "ci_high": _round(interval.high),
        "std": _round(interval.std),
        "min": _round(min(values)),
        "max": _round(max(values)),
    }


def cka_rows(pairs: Sequence[PairCKA]) -> list[Row]:
    """The table's rows: one per stage with n, name, count, mean, 95 % t-interval, std, min, max, the mean chance
    baseline (``chance``), each pair's CKA (``values``) and each pair's chance baseline (``chance_values``).

    NaN values (undefined CKA) are left out of the statistics. The interval is over seed pairs, undefined
    (None) for one pair. A pair without a chance baseline has None there.

    Raises:
        ValueError: No pairs, pairs over different stages, or two pairs with one label.
    """
    if not pairs:
        raise ValueError("a CKA table needs at least one pair of networks")
    stages = list(pairs[0].values)
    labels = [pair.label for pair in pairs]
    if len(set(labels)) != len(labels) or set(labels) & {*FIELDS, CHANCE}:
        raise ValueError(f"pair labels must be unique and not a column name: {labels}")
    for pair in pairs:
        for what, values in (("stages", pair.values), ("chance stages", pair.chance)):
            if values is not None and list(values) != stages:
                raise ValueError(f"pair {pair.label} has {what} {list(values)}, {pairs[0].label} has stages {stages}")
    rows = []
    for n, stage in enumerate(stages, start=1):
        defined = _defined(pair.values[stage] for pair in pairs)
        row: Row = {"n": n, "stage": stage, "count": len(defined)}
        row |= _statistics(defined) if defined else {}
        chance = {pair.label: None if pair.chance is None else _round(pair.chance[stage]) for pair in pairs}
        defined_chance = _defined(chance.values())
        row[CHANCE] = _round(sum(defined_chance) / len(defined_chance)) if defined_chance else None
        row["values"] = {pair.label: _round(pair.values[stage]) for pair in pairs}
        row["chance_values"] = chance
        rows.append(row)
    return rows


def write_cka_table(path: Path, pairs: Sequence[PairCKA]) -> list[Row]:
    """Write :func:`cka_rows` as CSV (``FIELDS``, ``chance``, one column per pair, then ``chance_<pair>`` per pair;
    undefined values empty), atomically; return the rows."""
    rows = cka_rows(pairs)
    labels = [pair.label for pair in pairs]
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=[*FIELDS, CHANCE, *labels, *(CHANCE_PREFIX + label for label in labels)], lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        flat = (
            {key: row.get(key) for key in (*FIELDS, CHANCE)}
            | dict(row["values"])
            | {CHANCE_PREFIX + label: value for label, value in row["chance_values"].items()}
        )
        writer.writerow({key: "" if value is None else value for key, value in flat.items()})
    write_atomic(path, buffer.getvalue())
    return rows


def _labels(header: list[str]) -> tuple[list[str], bool] | None:
    """The pair labels of a CKA table's header and whether it has the chance columns; None if it is no CKA table."""
    if header[: len(FIELDS)] != list(FIELDS):
        return None
    rest = header[len(FIELDS) :]
    if rest[:1] != [CHANCE]:  # written before the chance baseline: one column per pair
        return (rest, False) if rest else None
    rest = rest[1:]
    labels = rest[: len(rest) // 2]
    if not labels or rest[len(labels) :] != [CHANCE_PREFIX + label for label in labels]:
        return None
    return labels, True


def read_cka_table(path: Path) -> list[Row]:
    """Read a table :func:`write_cka_table` wrote: rows with ``FIELDS`` and ``chance`` (typed, None where empty),
    ``values`` and ``chance_values``. A table written before the chance baseline reads with every chance None.

    Raises:
        TableError: Unreadable or not a CKA table (it is derived from the study's base networks: delete it and
            run the study again to recompute it).
    """
    fix = f"{path} is derived from the study's base networks: delete it and run the study again to recompute it"
    try:
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            header = list(reader.fieldnames or [])
            lines = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise TableError(f"CKA table {path} is unreadable ({err}). {fix}") from err
    found = _labels(header)
    if found is None:
        raise TableError(
            f"CKA table {path} is corrupt: its header is {header}, expected {list(FIELDS)}, "
            f"{CHANCE!r}, one column per seed pair and one {CHANCE_PREFIX}<pair> column per seed pair. "
            f"{fix}"
        )
    labels, has_chance = found
    rows = []
    for number, line in enumerate(lines, start=2):
        try:
            if None in line or any(value is None for value in line.values()):
                raise ValueError("a row of the wrong length")

            def number_or_none(key: str, present: bool = True, line: dict[str, str] = line) -> float | None:
                return None if not present or line[key] == "" else float(line[key])

            row: Row = {"n": int(line["n"]), "stage": line["stage"], "count": int(line["count"])}
            row |= {key: number_or_none(key) for key in FIELDS[3:]}
            row[CHANCE] = number_or_none(CHANCE, has_chance)
            row["values"] = {label: number_or_none(label) for label in labels}
            row["chance_values"] = {label: number_or_none(CHANCE_PREFIX + label, has_chance) for label in labels}
        except (ValueError, TypeError) as err:
            raise TableError(f"CKA table {path} is corrupt at line {number} ({err}). {fix}") from err
        rows.append(row)
    return rows


def cka_points(table: Sequence[Row]) -> Points:
    """The panel's points: layer n -> every seed pair's CKA at that stage (undefined ones left out)."""
    return {row["n"]: _defined(row["values"].values()) for row in table}


def chance_points(table: Sequence[Row]) -> Points:
    """The chance baseline's points: layer n -> every seed pair's chance value at that stage, for the stages that
    have one (none for a table written before the chance baseline)."""
    points = {row["n"]: _defined(row.get("chance_values", {}).values()) for row in table}
    return {n: values for n, values in points.items() if values}


def summary_rows(table: Sequence[Row]) -> list[Row]:
    """The table as rows of the report's ``summary.csv`` (panel ``cka``, n = the stage): curve ``CKA(A, B)``, then
    curve ``chance (permuted examples)`` where the table has the chance baseline."""
    rows = [
        {
            "panel": PANEL,
            "curve": CURVE,
            "n": row["n"],
            "count": row["count"],
            **{key: row[key] for key in ("mean", "ci_low", "ci_high", "std", "min", "max")},
        }
        for row in table
    ]
    rows += [
        {"panel": PANEL, "curve": CHANCE_CURVE, "n": n, "count": len(values), **_statistics(values)}
        for n, values in chance_points(table).items()
    ]
    return rows


def describe(table: Sequence[Row]) -> str:
    """One line of the per-stage means, e.g. ``CKA(A, B) by layer (2 seed pairs): conv1 0.98 (chance 0.001), ...``."""
    pairs = max((len(row["values"]) for row in table), default=0)

    def stage(row: Row) -> str:
        text = f"{row['stage']} {row['mean']:.3f}" if row["mean"] is not None else f"{row['stage']} -"
        return text if row.get(CHANCE) is None else f"{text} (chance {row[CHANCE]:.3f})"

    return f"{CURVE} by layer ({pairs} seed pair{'s' if pairs != 1 else ''}): {', '.join(map(stage, table))}"
