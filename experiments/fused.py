"""Fused transfer training: the frozen cells that share a base network and a target half, in one fit.

The frozen cells AnB (or BnB) for n = 1..7 differ only above their freeze point, and in the paper
every network on a half read the same once-shuffled database in the same order. So one process can
train them together on one data stream: the base's frozen layers run once per batch (no grad, the
*trunk*), and each cell runs only its own layers above it. Every cell keeps what a single run has:

- its own network, a :class:`~models.module.CaffeNetClassifier` initialised from its own seed, layers
  1..n copied from the base and frozen exactly as :class:`~callbacks.transfer.TransferCallback` does;
- its own dropout masks, drawn from generators seeded by the cell's seed (:class:`CellDropout`),
  active after a frozen fc6/fc7 as in the paper;
- its own parameter groups (Caffe's multipliers), momentum buffers and step schedule;
- its own metrics (``<cell>/val/top1`` ..., the paper's best-10 mean), and in its folder a normal
  ``checkpoints/last.ckpt`` (loadable by ``CaffeNetClassifier.load_from_checkpoint`` and usable as a
  TransferCallback base) and ``metrics.json``.

The trunk is the network of the deepest cell: its layers 1..min(n_max, 6) are the base's. Layer 7 is
not shared: fc7's input is fc6's output after the cell's own dropout mask, so a cell with n = 7 runs
its frozen fc7 itself (still without grad).

One optimizer holds every cell's parameter groups (named ``<cell>/weights``, ``<cell>/biases``), and
the loss is the sum of the cells' losses. The cells share no parameter, so each cell's gradients,
SGD update and schedule are those it would get alone, and Lightning's automatic optimization keeps
``global_step`` = batches (``max_steps``, ``val_check_interval`` and the step schedule read as for a
single cell). Two things act on all cells together and are refused: gradient clipping by norm and
fp16 loss scaling (``precision="16-mixed"``); bf16-mixed needs no scaler.

Against a single-cell CLI run of the same seed, a fused cell has the same initialisation and the
same kind of data stream, but not bit-identical random draws: the CLI run draws dropout from the
global generator, interleaved with the data loader's draws. With the same dropout generators and the
same data stream (``seed_dropout`` on the single run, and the stream seeded after the networks are
built, as ``fit_fused`` does) a fused cell reaches the same weights as the single run
(``tests/test_fused.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import BaseFinetuning, ModelCheckpoint
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from typing_extensions import override

from callbacks.transfer import MAX_N, TransferCallback
from experiments.atomic import write_atomic
from experiments.cli import LINKED_FROM_DATA
from models.caffenet import LAYER_NAMES, CaffeNet
from models.module import CaffeNetClassifier, logs_this_step
from models.schedule import caffe_step_factor

SHARED_DEPTH_LIMIT = 6  # fc7's input carries each cell's own fc6 dropout mask
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class FusedCell:
    """One frozen transfer cell of a fused group.

    Args:
        n: Layers copied from the base and frozen (1..7).
        root: The cell's folder; receives ``checkpoints/last.ckpt`` and ``metrics.json``.
        seed: Seed of the cell's fresh layers n+1..8 (as ``seed_everything`` before building the
            model in a single run) and of its dropout generators.
        name: Prefix of the cell's logged metrics and optimizer groups; None: the folder's name.
    """

    n: int
    root: str
    seed: int = 0
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or Path(self.root).name


# --- the network, layer by layer -----------------------------------------------------------------


def layer_forward(net: CaffeNet, index: int, x: Tensor) -> Tensor:
    """Layer ``index`` (1..8) of ``net`` with its ReLU, pool and norm: exactly ``CaffeNet.forward``'s ops.

    Dropout is not part of a layer here: ``run_layers`` applies ``drop6`` before fc7 and ``drop7`` before fc8.
    """
    if index in (1, 2):
        return net.norm(net.pool(net.relu(getattr(net, f"conv{index}")(x))))
    if index in (3, 4):
        return net.relu(getattr(net, f"conv{index}")(x))
    if index == 5:
        return torch.flatten(net.pool(net.relu(net.conv5(x))), 1)
    if index in (6, 7):
        return net.relu(getattr(net, f"fc{index}")(x))
    if index == 8:
        return net.fc8(x)
    raise ValueError(f"layer index must be in 1..8, got {index}")


def run_layers(net: CaffeNet, x: Tensor, first: int, last: int) -> Tensor:
    """Layers ``first``..``last`` of ``net`` on ``x`` (the output of layer ``first - 1``), dropout included."""
    for index in range(first, last + 1):
        if index == 7:
            x = net.drop6(x)
        elif index == 8:
            x = net.drop7(x)
        x = layer_forward(net, index, x)
    return x


class CellDropout(nn.Module):
    """Dropout that draws its masks from its own seeded generator, not the global one.

    The same computation as ``nn.Dropout`` (keep with probability 1 - p, scale by 1 / (1 - p)); the
    generator makes a cell's masks independent of the other cells and of the data loader's draws.

    Args:
        p: Probability of zeroing an element.
        seed: Seed of the generator (one generator per device, created on first use).
    """

    def __init__(self, p: float, seed: int) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = p
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        noise = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator(x.device))
        return x * noise.div_(1.0 - self.p)

    def get_state(self) -> dict[str, Tensor]:
        """The generators' states, by device."""
        return {device: generator.get_state() for device, generator in self._generators.items()}

    def set_state(self, state: Mapping[str, Tensor]) -> None:
        for device, value in state.items():
            self.generator(torch.device(device)).set_state(value)

    def extra_repr(self) -> str:
        return f"p={self.p}, seed={self.seed}"


def dropout_seed(seed: int, layer: str) -> int:
    """Seed of a cell's dropout after ``layer``, derived from the cell's seed (never equal to it)."""
    digest = hashlib.sha256(f"transferability/dropout/{layer}/{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def seed_dropout(net: CaffeNet, seed: int) -> None:
    """Replace ``net.drop6`` and ``net.drop7`` by :class:`CellDropout` seeded from ``seed``.

    Fused cells use it; apply it to a single run to give that run the same masks as a fused cell.
    """
    for layer, attribute in (("fc6", "drop6"), ("fc7", "drop7")):
        module = getattr(net, attribute)
        setattr(net, attribute, CellDropout(module.p, dropout_seed(seed, layer)))


def build_cell(spec: FusedCell, model: Mapping[str, Any], base: Mapping[str, Tensor],
               provenance: Mapping[str, Any]) -> CaffeNetClassifier:
    """A cell's network as a single run builds it: seeded init, base layers 1..n copied and frozen, seeded dropout.

    A function, not inline in ``FusedTransfer.__init__``: ``save_hyperparameters`` would otherwise
    collect the enclosing ``__init__``'s arguments into the cell's hyperparameters.
    """
    torch.manual_seed(spec.seed)  # as seed_everything(seed) before a single run builds its model
    cell = CaffeNetClassifier(**model)
    layers = LAYER_NAMES[: spec.n]
    copied = TransferCallback.copy_layers(dict(base), cell.net, layers)
    BaseFinetuning.freeze([getattr(cell.net, name) for name in layers], train_bn=True)
    seed_dropout(cell.net, spec.seed)
    cell.provenance = {**provenance, "n": spec.n, "copied": copied}
    return cell


# --- the fused LightningModule -------------------------------------------------------------------


class FusedTransfer(LightningModule):
    """Trains frozen transfer cells that share a base network and a data stream, in one process.

    Args:
        cells: The cells (distinct folders and names; n in 1..7).
        base_checkpoint: The base network every cell copies its layers 1..n from (a Lightning
            checkpoint or a state dict, read with ``weights_only=True``).
        model: ``CaffeNetClassifier`` arguments shared by every cell (the shape must match the base's).

    Raises:
        ValueError: no cells, an n out of 1..7, repeated folders or names, or ``compile=True``.
    """

    def __init__(self, cells: Sequence[FusedCell], base_checkpoint: str,
                 model: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        specs = [cell if isinstance(cell, FusedCell) else FusedCell(**cell) for cell in cells]
        model = dict(model or {})
        self._check(specs, model)
        self.specs = specs
        self.save_hyperparameters({"cells": [asdict(spec) for spec in specs], "base_checkpoint": str(base_checkpoint),
                                   "model": model})
        base, sha256 = TransferCallback.load_base(str(base_checkpoint))
        provenance = {"base_checkpoint": str(base_checkpoint), "sha256": sha256, "mode": "frozen"}
        self.cells = nn.ModuleList([build_cell(spec, model, base, provenance) for spec in specs])
        deepest = max(range(len(specs)), key=lambda i: specs[i].n)
        self.trunk_cell = deepest
        self.shared_depth = min(specs[deepest].n, SHARED_DEPTH_LIMIT)
        self.channels_last = bool(model.get("channels_last", False))
        self.last_val: list[dict[str, float]] = [{} for _ in specs]

    @staticmethod
    def _check(specs: list[FusedCell], model: dict[str, Any]) -> None:
        if not specs:
            raise ValueError("fused training needs at least one cell")
        for spec in specs:
            if isinstance(spec.n, bool) or not isinstance(spec.n, int) or not 1 <= spec.n <= MAX_N:
                raise ValueError(
                    f"fused cell {spec.label!r}: n must be an integer in 1..{MAX_N} (a frozen transfer cell); "
                    f"got {spec.n!r}. Train base networks (n=0) and fine-tuned cells with the single-cell fit"
                )
        for what, values in (("folder", [os.path.abspath(s.root) for s in specs]), ("name", [s.label for s in specs])):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"fused cells must have distinct {what}s; repeated: {', '.join(repeated)}")
        if model.get("compile"):
            raise ValueError(
                "model.compile is not supported by fused training (the cells run layer by layer): set "
                "model.compile false for the fused group, or train its cells one by one"
            )

    @property
    def trunk(self) -> CaffeNet:
        """The network whose frozen layers 1..``shared_depth`` run once per batch for every cell."""
        return self.cells[self.trunk_cell].net

    @override
    def configure_model(self) -> None:
        if self.channels_last:
            for cell in self.cells:
                cell.net.to(memory_format=torch.channels_last)

    def trunk_activations(self, images: Tensor) -> dict[int, Tensor]:
        """Outputs of the base's layers 1..``shared_depth`` (before dropout) that some cell starts from."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        wanted = {min(spec.n, self.shared_depth) for spec in self.specs}
        outputs: dict[int, Tensor] = {}
        x = images
        with torch.no_grad():
            for index in range(1, self.shared_depth + 1):
                x = layer_forward(self.trunk, index, x)
                if index in wanted:
                    outputs[index] = x
        return outputs

    def cell_logits(self, index: int, trunk: dict[int, Tensor]) -> Tensor:
        """Cell ``index``'s logits from the trunk's outputs: its own frozen rest (no grad), then its trained layers."""
        n = self.specs[index].n
        net = self.cells[index].net
        start = min(n, self.shared_depth)
        x = trunk[start]
        if n > start:  # layer 7: the frozen fc7 reads fc6's output through this cell's dropout
            with torch.no_grad():
                x = run_layers(net, x, start + 1, n)
        return run_layers(net, x, n + 1, len(LAYER_NAMES))

    @override
    def forward(self, images: Tensor) -> list[Tensor]:
        trunk = self.trunk_activations(images)
        return [self.cell_logits(i, trunk) for i in range(len(self.specs))]

    @override
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        total = torch.zeros((), device=labels.device)
        for spec, cell, logits in zip(self.specs, self.cells, self(images)):
            loss = F.cross_entropy(logits, labels)
            accuracy = cell.train_accuracy.update(logits, labels)
            if logs_this_step(self.trainer):
                values = {"loss": loss, **{f"{name}_step": value for name, value in accuracy.items()}}
                self.log_dict({f"{spec.label}/train/{key}": value for key, value in values.items()},
                              batch_size=len(labels))
            total = total + loss
        return total

    @override
    def on_train_epoch_end(self) -> None:
        for spec, cell in zip(self.specs, self.cells):
            epoch = cell.train_accuracy.epoch(self.trainer.strategy)
            self.log_dict({f"{spec.label}/train/{name}_epoch": value for name, value in epoch.items()})

    @override
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        for cell, logits in zip(self.cells, self(images)):
            cell.val_loss.update(F.cross_entropy(logits, labels, reduction="none"))
            cell.val_top1.update(logits, labels)
            cell.val_top5.update(logits, labels)

    @override
    def on_validation_epoch_end(self) -> None:
        for i, (spec, cell) in enumerate(zip(self.specs, self.cells)):
            values = {"val/top1": float(cell.val_top1.compute()), "val/top5": float(cell.val_top5.compute()),
                      "val/loss": float(cell.val_loss.compute())}
            for metric in (cell.val_top1, cell.val_top5, cell.val_loss):
                metric.reset()
            if not self.trainer.sanity_checking:
                cell.val_top1_history.append(values["val/top1"])
                self.last_val[i] = values
            if cell.val_top1_history:
                values[f"val/top1_best{cell.hparams.best_k}_mean"] = cell.best_k_mean()
            self.log_dict({f"{spec.label}/{key}": value for key, value in values.items()})

    @override
    def configure_optimizers(self) -> dict[str, Any]:
        groups: list[dict[str, Any]] = []
        factors = []
        for spec, cell in zip(self.specs, self.cells):
            hp = cell.hparams
            for group in cell.parameter_groups():
                groups.append({**group, "name": f"{spec.label}/{group['name']}", "momentum": hp.momentum})
                factors.append(partial(caffe_step_factor, step_iters=hp.lr_step_iters, gamma=hp.lr_gamma))
        optimizer = torch.optim.SGD(groups, lr=groups[0]["lr"])
        scheduler = LambdaLR(optimizer, factors)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # --- checkpoints: the group's (for resuming) and each cell's (the normal single-run format) ----

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["fused_cells"] = [
            {"name": spec.label, "n": spec.n, "seed": spec.seed, "val_top1_history": list(cell.val_top1_history),
             "last_val": dict(last),
             "dropout": {name: getattr(cell.net, name).get_state() for name in ("drop6", "drop7")}}
            for spec, cell, last in zip(self.specs, self.cells, self.last_val)
        ]
        if self.trainer.is_global_zero:
            self.export_cells()

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("fused_cells", [])
        if [(s["name"], s["n"]) for s in saved] != [(spec.label, spec.n) for spec in self.specs]:
            raise ValueError(
                f"the fused checkpoint holds cells {[(s['name'], s['n']) for s in saved]}, but this group has "
                f"{[(spec.label, spec.n) for spec in self.specs]}: resume a fused group with the cells it started with"
            )
        for i, (entry, cell) in enumerate(zip(saved, self.cells)):
            cell.val_top1_history = list(entry["val_top1_history"])
            self.last_val[i] = dict(entry.get("last_val", {}))
            for name, state in entry["dropout"].items():
                getattr(cell.net, name).set_state(state)

    @override
    def on_train_end(self) -> None:
        if self.trainer.is_global_zero:
            self.export_cells()

    def summaries(self) -> list[dict[str, Any]]:
        """One row per cell: what it is, its last validation numbers, the paper's metric, where its checkpoint is."""
        rows = []
        names = [spec.label for spec in self.specs]
        step = self.trainer.global_step if self._trainer is not None else 0
        for spec, cell, last in zip(self.specs, self.cells, self.last_val):
            best_k = cell.hparams.best_k
            rows.append({
                "name": spec.label, "n": spec.n, "mode": "frozen", "seed": spec.seed, "root": str(spec.root),
                "base_checkpoint": cell.provenance["base_checkpoint"], "global_step": step, **last,
                f"val/top1_best{best_k}_mean": cell.best_k_mean() if cell.val_top1_history else None,
                "val_top1_history": list(cell.val_top1_history),
                "checkpoint": str(Path(spec.root) / "checkpoints" / "last.ckpt"), "fused_with": names,
            })
        return rows

    def export_cells(self) -> None:
        """Write each cell's ``checkpoints/last.ckpt`` (single-run format) and ``metrics.json``."""
        trainer = self.trainer
        for spec, cell, row in zip(self.specs, self.cells, self.summaries()):
            folder = Path(spec.root)
            checkpoint = {
                "epoch": trainer.current_epoch,
                "global_step": trainer.global_step,
                "pytorch-lightning_version": lightning.__version__,
                "state_dict": {key: value.detach().cpu() for key, value in cell.state_dict().items()},
                "hyper_parameters": dict(cell.hparams),
                "val_top1_history": list(cell.val_top1_history),
                "callbacks": {"TransferCallback": dict(cell.provenance)},
                "fused": {"group": row["fused_with"], "seed": spec.seed},
            }
            _atomic_save(checkpoint, folder / "checkpoints" / "last.ckpt")
            write_atomic(folder / METRICS_FILE, json.dumps(row, indent=2))


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# --- the entry point for the study runner --------------------------------------------------------


def fit_fused(
    cells: Sequence[FusedCell],
    datamodule: LightningDataModule,
    base_checkpoint: str,
    model: Mapping[str, Any] | None = None,
    trainer_kwargs: Mapping[str, Any] | None = None,
    group_dir: str | None = None,
    seed: int | None = None,
    ckpt_path: str | None = None,
) -> list[dict[str, Any]]:
    """Train ``cells`` together on ``datamodule``; return one summary row per cell.

    Args:
        cells: Frozen transfer cells sharing ``base_checkpoint`` and the target half of ``datamodule``.
        datamodule: The target half (one data stream for all cells).
        base_checkpoint: The base network's checkpoint.
        model: ``CaffeNetClassifier`` arguments of every cell; ``num_classes``, ``in_channels`` and
            ``input_size`` come from the datamodule where it has them (as the CLI links them).
        trainer_kwargs: ``Trainer`` arguments (``max_steps``, ``val_check_interval``, ``precision``,
            ``logger``, ...). Unless ``enable_checkpointing`` is False, the group's resumable checkpoint
            goes to ``group_dir/checkpoints/last.ckpt``, and each cell's checkpoint is exported with it.
        group_dir: The group's folder (its Lightning root and resumable checkpoint); None: a
            ``fused-<names>`` folder beside the first cell's.
        seed: Seed of the data stream, set after the cells are built (None: the first cell's seed).
        ckpt_path: A group checkpoint to resume from (``group_dir/checkpoints/last.ckpt``).

    Raises:
        ValueError: see :class:`FusedTransfer`; also gradient clipping or fp16 loss scaling, which
            would couple the cells, or a model shape argument that contradicts the data's.
    """
    kwargs = dict(trainer_kwargs or {})
    if kwargs.get("gradient_clip_val"):
        raise ValueError("gradient clipping is not supported by fused training: it would clip all cells together")
    if str(kwargs.get("precision", "32")).startswith("16"):
        raise ValueError(
            "fp16 precision is not supported by fused training (one loss scaler for all cells): use bf16-mixed")
    specs = [cell if isinstance(cell, FusedCell) else FusedCell(**cell) for cell in cells]
    model = dict(model or {})
    for key in LINKED_FROM_DATA:  # as the CLI links them
        if hasattr(datamodule, key):
            value = getattr(datamodule, key)
            if model.get(key, value) != value:
                raise ValueError(f"model {key}={model[key]} differs from the data's {key}={value}: leave it out")
            model[key] = value
    module = FusedTransfer(specs, base_checkpoint, model)
    seed_everything(specs[0].seed if seed is None else seed, workers=True, verbose=False)
    if group_dir is None:
        group_dir = str(Path(specs[0].root).parent / ("fused-" + "-".join(spec.label for spec in specs)))
    kwargs.setdefault("default_root_dir", group_dir)
    callbacks = list(kwargs.pop("callbacks", None) or [])
    if kwargs.get("enable_checkpointing", True) and not any(isinstance(cb, ModelCheckpoint) for cb in callbacks):
        callbacks.append(ModelCheckpoint(dirpath=os.path.join(group_dir, "checkpoints"), save_last=True, save_top_k=0))
    trainer = Trainer(callbacks=callbacks, **kwargs)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return module.summaries()
