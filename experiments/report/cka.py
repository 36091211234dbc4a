"""Layer similarity: linear CKA (Kornblith et al. 2019) between two networks' stage outputs, its table and its panel.

``linear_cka(x, y)`` compares two sets of features of the same examples (each example's features
flattened, centred over the examples, in float64): 1 for features that are the same up to an
orthogonal transform and an isotropic scale, near 0 for independent ones (about ``d / n`` for ``d``
independent Gaussian features of ``n`` examples). ``stage_cka(net_a, net_b, images)`` runs two
``models.network.StagedNetwork``s stage by stage over the same images and compares them at every
transferable stage (all but the head): the study's layer-similarity panel, CKA between base A and
base B at layer n, shows where the two halves' features stop being shared without training a
transfer network (``experiments.study.similarity`` computes it for a finished study).

The table (``cka.csv``) has one row per stage: its layer n and name, the mean over seed pairs with
its 95 % t-interval (``experiments.report.intervals``, undefined for one pair), std, min, max, and
one column per seed pair (``<split>_s<seed>``) with that pair's value.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from experiments.report.intervals import mean_interval
from experiments.report.table import Points, Row, TableError
from models.files import write_atomic
from models.network import StagedNetwork

MAX_IMAGES = 1000  # images compared per network pair (the first ones given)
BATCH_SIZE = 100  # images per forward pass of a stage
BLOCK_BYTES = 1 << 26  # float64 working block when centring and multiplying features (64 MiB)
FIELDS: tuple[str, ...] = ("n", "stage", "count", "mean", "ci_low", "ci_high", "std", "min", "max")
PANEL, CURVE = "cka", "CKA(A, B)"  # the panel's rows in summary.csv


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
        block = x[:, start:start + width].to(torch.float64)
        yield block - block.mean(0, keepdim=True)


def centred_gram(features: Any) -> Tensor:
    """The ``n x n`` float64 Gram matrix of the centred features (``H X Xᵀ H``), built block by block of features."""
    x = _matrix(features)
    gram = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64, device=x.device)
    for block in _centred_blocks(x):
        gram.addmm_(block, block.T)
    return gram


def linear_cka(x: Any, y: Any) -> float:
    """Linear CKA between two sets of features of the same ``n`` examples (Kornblith et al. 2019, eq. 5).

    ``‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F)`` with every example's features flattened and centred over the examples,
    computed in float64; in the ``n x n`` Gram form ``⟨K, L⟩ / (‖K‖ ‖L‖)`` (``K = X Xᵀ``, built block by block)
    when either side has more features than examples. 1 for ``y = s·x·Q + c`` (``Q`` orthogonal, ``s ≠ 0``);
    NaN where a side has no variance (every example alike), for which CKA is undefined.

    Args:
        x: Features ``(n, ...)`` (a tensor or anything ``torch.as_tensor`` takes).
        y: Features ``(n, ...)`` of the same examples, any number of them.

    Raises:
        ValueError: Different numbers of examples, or fewer than two.
    """
    x, y = _matrix(x), _matrix(y)
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"CKA compares features of the same examples: got {n} and {y.shape[0]} examples")
    if n < 2:
        raise ValueError(f"CKA needs at least two examples, got {n}")
    y = y.to(x.device)
    if max(x.shape[1], y.shape[1]) > n:
        k, l = centred_gram(x), centred_gram(y)
        cross, self_x, self_y = (k * l).sum(), (k * k).sum(), (l * l).sum()
    else:
        xc, yc = (m.to(torch.float64) - m.to(torch.float64).mean(0, keepdim=True) for m in (x, y))
        cross = (yc.T @ xc).square().sum()
        self_x, self_y = (xc.T @ xc).square().sum(), (yc.T @ yc).square().sum()
    denominator = math.sqrt(float(self_x)) * math.sqrt(float(self_y))
    return float(cross) / denominator if denominator > 0 else math.nan


# ----- two networks, stage by stage --------------------------------------------------------------------------
def transferable_stages(net: StagedNetwork) -> tuple[str, ...]:
    """The stages a transfer can copy: all but the head."""
    return tuple(net.layer_names[:-1])


def collect_images(images_or_loader: Tensor | Iterable[Any], max_images: int = MAX_IMAGES) -> Tensor:
    """The first ``max_images`` images of a tensor ``(N, C, H, W)`` or of a loader's batches (a batch is the images,
    or a tuple/list whose first item is), read no further than needed.

    Raises:
        ValueError: ``max_images`` < 2, or no images.
    """
    if max_images < 2:
        raise ValueError(f"max_images must be at least 2 (CKA compares examples), got {max_images}")
    if isinstance(images_or_loader, Tensor):
        return images_or_loader[:max_images]
    batches, count = [], 0
    for batch in images_or_loader:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        batches.append(images[:max_images - count])
        count += len(batches[-1])
        if count >= max_images:
            break
    if not batches:
        raise ValueError("no images to compare the networks on (an empty loader)")
    return torch.cat(batches)


def stage_features(net: StagedNetwork, images: Tensor, batch_size: int = BATCH_SIZE) -> Iterator[tuple[str, Tensor]]:
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
                    part = net.forward_layers(x[start:start + batch_size].to(device), index, index)
                if out is None:
                    out = part.new_empty((len(x), *part.shape[1:]))
                out[start:start + len(part)] = part
            x = out
            yield name, x
    finally:
        net.train(was_training)


def stage_cka(net_a: StagedNetwork, net_b: StagedNetwork, images_or_loader: Tensor | Iterable[Any],
              max_images: int = MAX_IMAGES, *, images_b: Tensor | Iterable[Any] | None = None,
              batch_size: int = BATCH_SIZE) -> dict[str, float]:
    """Linear CKA between ``net_a`` and ``net_b`` at each transferable stage (all but the head), on the same images.

    Both networks run stage by stage (eval mode, no gradients) over at most ``max_images`` images (the first
    ones of ``images_or_loader``, default 1000): memory is bounded by the images and about four stage outputs
    (two per network, see :func:`stage_features`) of ``max_images`` images each, plus two ``max_images²``
    float64 Gram matrices where a stage has more features than images.

    Args:
        net_a, net_b: Networks with the same stages (e.g. base A and base B).
        images_or_loader: Images ``(N, C, H, W)`` or a loader of batches (images, or ``(images, labels)``).
        max_images: How many images to compare on.
        images_b: The same images as ``net_b`` takes them where its preprocessing differs from ``net_a``'s
            (e.g. another mean image subtracted), in the same order; None: ``net_b`` takes ``images_or_loader``.
        batch_size: Images per forward pass.

    Returns:
        Stage name -> CKA, in stage order.

    Raises:
        ValueError: Networks with different stages, inputs of different shapes, or images the networks do not take.
    """
    if tuple(net_a.layer_names) != tuple(net_b.layer_names):
        raise ValueError(f"the networks have different stages: {net_a.layer_names} and {net_b.layer_names}")
    inputs_a = collect_images(images_or_loader, max_images)
    inputs_b = inputs_a if images_b is None else collect_images(images_b, max_images)
    if inputs_a.shape != inputs_b.shape:
        raise ValueError(f"images_b must be the same images as images_or_loader: shapes {tuple(inputs_a.shape)} and "
                         f"{tuple(inputs_b.shape)}")
    modes = [(net, net.training) for net in (net_a, net_b)]
    features_a = stage_features(net_a, inputs_a, batch_size)
    features_b = stage_features(net_b, inputs_b, batch_size)
    del inputs_a, inputs_b  # held by the generators until their first stage only
    try:
        return {name: linear_cka(x, y) for (name, x), (_, y) in zip(features_a, features_b)}
    finally:  # both generators done, then each network in its mode (net_a may be net_b)
        features_a.close()
        features_b.close()
        for net, mode in modes:
            net.train(mode)


# ----- the table ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairCKA:
    """One pair of networks' CKA at each stage.

    Args:
        label: The pair's column in the table, e.g. ``random0_s0`` (split and seed of the two bases).
        values: Stage name -> CKA, in stage order (stage n is the n-th).
    """

    label: str
    values: Mapping[str, float]


def _round(number: float | None) -> float | None:
    return None if number is None or math.isnan(number) else round(number, 6)


def cka_rows(pairs: Sequence[PairCKA]) -> list[Row]:
    """The table's rows: one per stage with n, name, count, mean, 95 % t-interval, std, min, max and each pair's value.

    NaN values (undefined CKA) are left out of the statistics. The interval is over seed pairs, undefined
    (None) for one pair.

    Raises:
        ValueError: No pairs, pairs over different stages, or two pairs with one label.
    """
    if not pairs:
        raise ValueError("a CKA table needs at least one pair of networks")
    stages = list(pairs[0].values)
    labels = [pair.label for pair in pairs]
    if len(set(labels)) != len(labels) or set(labels) & set(FIELDS):
        raise ValueError(f"pair labels must be unique and not a column name: {labels}")
    for pair in pairs:
        if list(pair.values) != stages:
            raise ValueError(f"pair {pair.label} has stages {list(pair.values)}, {pairs[0].label} has {stages}")
    rows = []
    for n, stage in enumerate(stages, start=1):
        values = [pair.values[stage] for pair in pairs]
        defined = [value for value in values if not math.isnan(value)]
        row: Row = {"n": n, "stage": stage, "count": len(defined)}
        if defined:
            interval = mean_interval(defined)
            row |= {"mean": _round(interval.estimate), "ci_low": _round(interval.low),
                    "ci_high": _round(interval.high), "std": _round(interval.std),
                    "min": _round(min(defined)), "max": _round(max(defined))}
        row["values"] = {pair.label: _round(pair.values[stage]) for pair in pairs}
        rows.append(row)
    return rows


def write_cka_table(path: Path, pairs: Sequence[PairCKA]) -> list[Row]:
    """Write :func:`cka_rows` as CSV (``FIELDS``, then one column per pair; undefined values empty), atomically;
    return the rows."""
    rows = cka_rows(pairs)
    labels = [pair.label for pair in pairs]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*FIELDS, *labels], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        flat = {key: row.get(key) for key in FIELDS} | dict(row["values"])
        writer.writerow({key: "" if value is None else value for key, value in flat.items()})
    write_atomic(path, buffer.getvalue())
    return rows


def read_cka_table(path: Path) -> list[Row]:
    """Read a table :func:`write_cka_table` wrote: rows with ``FIELDS`` (typed, None where empty) and ``values``.

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
    if header[:len(FIELDS)] != list(FIELDS) or len(header) == len(FIELDS):
        raise TableError(f"CKA table {path} is corrupt: its header is {header}, expected {list(FIELDS)} and one "
                         f"column per seed pair. {fix}")
    labels = header[len(FIELDS):]
    rows = []
    for number, line in enumerate(lines, start=2):
        try:
            if None in line or any(value is None for value in line.values()):
                raise ValueError("a row of the wrong length")

            def number_or_none(text: str, kind: type = float) -> Any:
                return None if text == "" else kind(text)

            row: Row = {"n": int(line["n"]), "stage": line["stage"], "count": int(line["count"])}
            row |= {key: number_or_none(line[key]) for key in FIELDS[3:]}
            row["values"] = {label: number_or_none(line[label]) for label in labels}
        except (ValueError, TypeError) as err:
            raise TableError(f"CKA table {path} is corrupt at line {number} ({err}). {fix}") from err
        rows.append(row)
    return rows


def cka_points(table: Sequence[Row]) -> Points:
    """The panel's points: layer n -> every seed pair's CKA at that stage (undefined ones left out)."""
    return {row["n"]: [value for value in row["values"].values() if value is not None and not math.isnan(value)]
            for row in table}


def summary_rows(table: Sequence[Row]) -> list[Row]:
    """The table as rows of the report's ``summary.csv`` (panel ``cka``, curve ``CKA(A, B)``, n = the stage)."""
    return [{"panel": PANEL, "curve": CURVE, "n": row["n"], "count": row["count"],
             **{key: row[key] for key in ("mean", "ci_low", "ci_high", "std", "min", "max")}} for row in table]


def describe(table: Sequence[Row]) -> str:
    """One line of the per-stage means, e.g. ``CKA(A, B) by layer (2 seed pairs): conv1 0.98, conv2 0.91, ...``."""
    pairs = max((len(row["values"]) for row in table), default=0)
    values = ", ".join(f"{row['stage']} {row['mean']:.3f}" if row["mean"] is not None else f"{row['stage']} -"
                       for row in table)
    return f"{CURVE} by layer ({pairs} seed pair{'s' if pairs != 1 else ''}): {values}"
