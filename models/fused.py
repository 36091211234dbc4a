"""A fused group: the frozen transfer networks that share a base and a target half, trained in one fit.

The frozen networks AnB (or BnB) for n = 1..7 differ only above their freeze point, and in the paper
every network on a half read the same once-shuffled database in the same order. So one fit can train
them together on one data stream: the base's frozen layers run once per batch (no grad, the
*trunk*), and each network runs only its own layers above it. Each network (a *cell*) is a
:class:`~models.classifier.TransferClassifier` (``network_class``: CaffeNet's by default, or a
``models.BackboneClassifier``) and keeps what a fit of it alone has:

- its initialisation, drawn from its own seed; layers 1..n copied from the base and frozen by the
  transfer core (:func:`models.transfer.transfer`), as ``TransferCallback`` does for one network;
- its own dropout masks (``dropout_seed`` = the cell's seed: ``models.dropout.SeededDropout``),
  active after a frozen fc6/fc7 as in the paper;
- its own parameter groups, momentum buffers, step schedule and gradient clipping;
- its own metrics (``<cell>/val/top1`` ..., the paper's metric), and in its folder a
  ``checkpoints/last.ckpt`` (:meth:`TransferClassifier.network_checkpoint`: loadable by
  ``load_from_checkpoint`` and usable as a transfer base) and ``metrics.json``.

The trunk is the network of the deepest cell: its stages 1..``shareable_depth(n_max)`` are the base's
and run once. A stage that starts with randomness of the network's own is not shared (CaffeNet's fc7:
its input is fc6's output through the cell's own dropout mask), so a cell with n = 7 runs its frozen
fc7 itself (still without grad). A frozen stage's batch norms are held in eval mode (the base's
statistics, the same for every cell); ``frozen_norm="train"`` would let only the trunk's statistics
follow the data, and is refused.

One optimizer holds every cell's parameter groups (``<cell>/weights``, ``<cell>/biases``); the loss
is the sum of the cells' losses. The cells share no parameter, so each cell's gradients, update and
schedule are those it would get alone, and ``global_step`` counts batches (``max_steps``,
``val_check_interval`` and the schedule read as for one network). fp16 loss scaling would scale all
cells together and is refused (:meth:`FusedTransfer.check_trainer_settings`); bf16 needs no scaler.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR
from typing_extensions import override

from models import transfer as core
from models.base_file import check_sha256, load_base
from models.classifier import (
    DEFAULT_CLASSIFIER,
    LINKED_FROM_DATA,
    TransferClassifier,
    attached_trainer,
    evaluate_weights_only,
    records_validation,
)
from models.files import save_atomic, write_atomic
from models.loading import classifier_class
from models.network import StagedNetwork
from models.step_metrics import log_reduced, log_training_step

METRICS_FILE = "metrics.json"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
PER_CELL = frozenset({*LINKED_FROM_DATA, "init_seed", "dropout_seed"})  # not in ``network``


def unfusable_setting(precision: Any = None, compile: Any = False, frozen_norm: Any = "eval") -> str | None:
    """The one rule for the settings a fused group cannot train with: why it cannot (None: it can).

    ``FusedTransfer`` refuses such a setting (at construction and setup), the CLI before anything is built
    (``experiments.cli.check_fused_config``), and a study does not fuse such cells (``experiments.study.groups``).

    Args:
        precision: ``trainer.precision``: fp16 loss scaling would scale every cell together (bf16 has no scaler).
        compile: The networks' ``compile``: a group runs layer ranges, not ``forward``.
        frozen_norm: Only ``eval`` fuses: with ``train`` only the trunk's batch statistics would follow the data.
    """
    if frozen_norm != "eval":
        return f"frozen_norm {frozen_norm!r} (only the trunk's batch statistics would follow the data)"
    if compile:
        return "compile (a group runs layer ranges, not forward)"
    if str(precision or "32").startswith("16"):
        return f"trainer.precision {precision!r} (fp16 loss scaling would couple the cells)"
    return None


@dataclass(frozen=True)
class FusedCell:
    """One frozen transfer network of a fused group.

    Args:
        n: Layers copied from the base and frozen (1..7).
        root: The cell's folder; receives ``checkpoints/last.ckpt`` and ``metrics.json``.
        seed: The cell's network seed: its ``init_seed`` and ``dropout_seed`` (see ``CaffeNet``).
        name: Prefix of the cell's logged metrics and optimizer groups; None: the folder's name.
    """

    n: int
    root: str
    seed: int = 0
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or Path(self.root).name


class FusedTransfer(LightningModule):
    """Trains frozen transfer networks that share a base network and a data stream, in one fit.

    Args:
        base_checkpoint: The base network every cell copies its layers 1..n from (a Lightning
            checkpoint, a state dict, or a torchvision-format weights file of the backbone; read with
            ``weights_only=True``).
        cells: The cells (distinct folders and names; n in 1..the network's last transferable stage).
        num_classes, in_channels, input_size: The task and input (linked from the data by the CLI).
        network: Every other argument of ``network_class``, shared by the cells (the shape must
            match the base's up to stage n).
        network_class: The cells' LightningModule, a ``TransferClassifier`` subclass by import path.
        frozen_norm: What the frozen stages' batch norms do; only ``eval`` fuses (see the module's notes).
        base_sha256: The sha256 the base file must have (a study's weights file), or None: any file.

    Raises:
        ValueError: no cells, an n beyond the network's stages, repeated folders or names, an unknown or
            unsupported network argument (``compile``, per-cell settings), ``frozen_norm="train"``, a base file
            whose sha256 is not ``base_sha256``.
    """

    def __init__(
        self,
        base_checkpoint: str,
        cells: Sequence[FusedCell],
        num_classes: int = 500,
        in_channels: int = 3,
        input_size: int = 227,
        network: dict[str, Any] | None = None,
        network_class: str = DEFAULT_CLASSIFIER,
        frozen_norm: core.FrozenNorm = "eval",
        base_sha256: str | None = None,
    ) -> None:
        super().__init__()
        specs = [cell if isinstance(cell, FusedCell) else FusedCell(**cell) for cell in cells]
        network = dict(network or {})
        classifier = classifier_class(network_class, "fused group network_class")
        self._check(specs, network, classifier, frozen_norm)
        self.save_hyperparameters(
            {
                "base_checkpoint": str(base_checkpoint),
                "cells": [asdict(s) for s in specs],
                "num_classes": num_classes,
                "in_channels": in_channels,
                "input_size": input_size,
                "network": network,
                "network_class": network_class,
                "frozen_norm": frozen_norm,
                "base_sha256": base_sha256,
            }
        )
        self.specs = specs
        base, sha256 = load_base(str(base_checkpoint))
        check_sha256(str(base_checkpoint), sha256, base_sha256, "model.init_args.base_sha256")
        shape: dict[str, Any] = {"num_classes": num_classes, "in_channels": in_channels, "input_size": input_size}
        # A subclass's constructor: its own keyword arguments (the shape and the seeds among them), not the base's.
        make: Callable[..., TransferClassifier] = classifier
        # Each cell draws its initialisation and dropout from its own seed, and the global generator is left
        # as it was: the data stream after this constructor is the one a fit of one network would read.
        # A ModuleList (it registers the cells' parameters), typed as the classifiers it holds.
        self.cells = cast(
            Sequence[TransferClassifier],
            nn.ModuleList([make(**network, **shape, init_seed=spec.seed, dropout_seed=spec.seed) for spec in specs]),
        )
        for spec, cell in zip(specs, self.cells):
            core.check_depth(spec.n, cell.net.stage_names, f"fused cell {spec.label!r}: n", allow_zero=False)
            cell.transfer_record = core.transfer(
                cell.net, spec.n, "frozen", base, str(base_checkpoint), sha256, frozen_norm
            )
        deepest = max(range(len(specs)), key=lambda i: specs[i].n)
        self.trunk_cell = deepest
        self.shared_depth = self.trunk.shareable_depth(specs[deepest].n)
        self.last_val: list[dict[str, float]] = [{} for _ in specs]

    @classmethod
    def from_network_arguments(
        cls,
        base_checkpoint: str,
        cells: Sequence[FusedCell],
        arguments: Mapping[str, Any],
        network_class: str = DEFAULT_CLASSIFIER,
    ) -> FusedTransfer:
        """The group of ``cells`` whose networks are ``network_class(**arguments)`` (shape included)."""
        shape = {key: arguments[key] for key in ("num_classes", "in_channels", "input_size") if key in arguments}
        return cls(
            base_checkpoint,
            cells,
            **shape,
            network_class=network_class,
            network={key: value for key, value in arguments.items() if key not in PER_CELL},
        )

    @staticmethod
    def _check(
        specs: list[FusedCell], network: dict[str, Any], classifier: type[TransferClassifier], frozen_norm: str
    ) -> None:
        if not specs:
            raise ValueError("a fused group needs at least one cell (model.init_args.cells)")
        for spec in specs:
            core.check_count(spec.n, f"fused cell {spec.label!r}: n", minimum=1)
        if unfusable_setting(frozen_norm=core.check_frozen_norm(frozen_norm, "fused group frozen_norm")):
            raise ValueError(
                "a fused group needs frozen_norm 'eval': with 'train' the shared frozen stages' batch statistics "
                "would follow the data in the trunk network only. Train such cells one by one"
            )
        for what, values in (
            ("folder", [str(Path(s.root).resolve()) for s in specs]),
            ("name", [s.label for s in specs]),
        ):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"fused cells must have distinct {what}s; repeated: {', '.join(repeated)}")
        shared = set(inspect.signature(classifier).parameters) - PER_CELL
        wrong = sorted(set(network) - shared)
        if wrong:
            raise ValueError(
                f"model.init_args.network cannot set {', '.join(wrong)}: num_classes, in_channels and input_size "
                "come from the data, init_seed and dropout_seed from each cell's seed, and the rest must be "
                f"{classifier.__name__} arguments ({', '.join(sorted(shared))})"
            )
        if unfusable_setting(compile=network.get("compile")):
            raise ValueError(
                "model.init_args.network.compile is not supported by a fused group (its networks run layer "
                "ranges, not forward): set it false, or train the cells one by one"
            )

    @staticmethod
    def check_trainer_settings(settings: Mapping[str, Any]) -> None:
        """Refuse trainer settings that would couple the cells (checked when the config is parsed and at setup).

        Raises:
            ValueError: fp16 precision (one loss scaler for all cells).
        """
        if unfusable_setting(precision=settings.get("precision")):
            raise ValueError(
                f"trainer.precision={settings.get('precision')!r} is not supported by a fused group: fp16 loss "
                "scaling would scale all its networks together. Use bf16-mixed (no scaler) or 32-true"
            )

    @property
    def trunk(self) -> StagedNetwork:
        """The network whose frozen layers 1..``shared_depth`` run once per batch for every cell."""
        return self.cells[self.trunk_cell].net

    @override
    def setup(self, stage: str) -> None:
        self.check_trainer_settings({"precision": self.trainer.precision})

    @override
    def configure_model(self) -> None:
        for cell in self.cells:
            cell.configure_model()

    def trunk_activations(self, images: Tensor) -> dict[int, Tensor]:
        """Outputs of the base's layers 1..``shared_depth`` (before dropout) that some cell starts from."""
        self.trunk.check_input(images)
        if self.cells[self.trunk_cell].channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        wanted = {min(spec.n, self.shared_depth) for spec in self.specs}
        outputs: dict[int, Tensor] = {}
        x = images
        with torch.no_grad():
            for depth in range(1, self.shared_depth + 1):
                x = self.trunk.forward_stages(x, depth, depth)
                if depth in wanted:
                    outputs[depth] = x
        return outputs

    def cell_logits(self, index: int, trunk: dict[int, Tensor]) -> Tensor:
        """Cell ``index``'s logits from the trunk's outputs: its own frozen rest (no grad), then its trained layers."""
        n = self.specs[index].n
        net = self.cells[index].net
        start = min(n, self.shared_depth)
        x = trunk[start]
        if n > start:  # e.g. CaffeNet's frozen fc7, which reads fc6's output through this cell's dropout
            with torch.no_grad():
                x = net.forward_stages(x, start + 1, n)
        return net.forward_stages(x, n + 1, len(net.stage_names))

    @override
    def forward(self, images: Tensor) -> list[Tensor]:
        trunk = self.trunk_activations(images)
        return [self.cell_logits(i, trunk) for i in range(len(self.specs))]

    @override
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        total = torch.zeros((), device=labels.device)
        for spec, cell, logits in zip(self.specs, self.cells, self(images)):
            loss, accuracy = cell.training_loss(logits, labels)
            log_training_step(self, loss, accuracy, len(labels), prefix=f"{spec.label}/")
            total = total + loss
        return total

    @override
    def on_train_epoch_end(self) -> None:
        for spec, cell in zip(self.specs, self.cells):
            log_reduced(self, cell.train_epoch_metrics(self.trainer.strategy, prefix=f"{spec.label}/"))

    @override
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        for cell, logits in zip(self.cells, self(images)):
            cell.update_validation(logits, labels)

    @override
    def on_validation_epoch_end(self) -> None:
        record = records_validation(self.trainer)
        for i, (spec, cell) in enumerate(zip(self.specs, self.cells)):
            values = cell.end_validation(record, name=f"fused cell {spec.label!r}")
            if record:
                self.last_val[i] = values
            log_reduced(self, {f"{spec.label}/{key}": value for key, value in values.items()})

    @override
    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        groups: list[dict[str, Any]] = []
        factors = []
        total_steps = int(self.trainer.estimated_stepping_batches)
        for spec, cell in zip(self.specs, self.cells):
            for group in cell.parameter_groups():
                groups.append({**group, "name": f"{spec.label}/{group['name']}"})
                factors.append(cell.lr_factor(total_steps))
        # The cells share one recipe (their arguments are the group's ``network``): its optimizer holds every
        # cell's groups, each with its own rate, decay and momentum.
        optimizer = self.cells[0].recipe.make_optimizer(groups)
        scheduler = LambdaLR(optimizer, factors)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    @override
    def configure_gradient_clipping(
        self, optimizer: Optimizer, gradient_clip_val: float | None = None, gradient_clip_algorithm: str | None = None
    ) -> None:
        """Clip each cell's gradients on their own, as a fit of that cell alone would."""
        if not gradient_clip_val:
            return
        for cell in self.cells:  # in the optimizer's order, so the norm sums as for the cell alone
            parameters = [p for group in cell.parameter_groups() for p in group["params"]]
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(parameters, gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(parameters, gradient_clip_val)

    # --- checkpoints: the group's (for resuming) and each cell's (the checkpoint of one network) ----

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The group's checkpoint resumes the group from its config.yaml; its hyperparameters stay out of it, so
        # `fit --ckpt_path` does not re-apply them over that config (the CLI cannot re-parse the nested
        # ``network`` mapping). Each cell's own checkpoint carries its hyperparameters.
        checkpoint.pop(self.CHECKPOINT_HYPER_PARAMS_KEY, None)
        entries = []
        for spec, cell, last in zip(self.specs, self.cells, self.last_val):
            entry: dict[str, Any] = {"name": spec.label, "n": spec.n, "last_val": dict(last)}
            cell.save_state(entry, self.trainer.strategy)  # as a fit of the cell alone saves it
            entries.append(entry)
        checkpoint["fused_cells"] = entries
        if self.trainer.is_global_zero:
            self.export_cells()

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        evaluate_weights_only(attached_trainer(self), checkpoint)
        saved = checkpoint.get("fused_cells", [])
        if [(s["name"], s["n"]) for s in saved] != [(spec.label, spec.n) for spec in self.specs]:
            raise ValueError(
                f"the fused checkpoint holds cells {[(s['name'], s['n']) for s in saved]}, but this group has "
                f"{[(spec.label, spec.n) for spec in self.specs]}: resume a fused group with the cells it started with"
            )
        for i, (entry, cell) in enumerate(zip(saved, self.cells)):
            cell.load_state(entry, first_rank=self.trainer.global_rank == 0)
            self.last_val[i] = dict(entry.get("last_val", {}))

    @override
    def on_train_end(self) -> None:
        if self.trainer.is_global_zero:
            self.export_cells()

    def summaries(self) -> list[dict[str, Any]]:
        """One row per cell: what it is, its last validation numbers, the paper's metric, where its checkpoint is."""
        rows = []
        names = [spec.label for spec in self.specs]
        trainer = attached_trainer(self)
        step = trainer.global_step if trainer is not None else 0
        for spec, cell, last in zip(self.specs, self.cells, self.last_val):
            rows.append(
                {
                    "name": spec.label,
                    "n": spec.n,
                    "mode": "frozen",
                    "seed": spec.seed,
                    "root": str(spec.root),
                    "base_checkpoint": self.hparams["base_checkpoint"],
                    "global_step": step,
                    **last,
                    "val_top1_history": list(cell.val_top1_history),
                    "checkpoint": str(Path(spec.root) / LAST_CHECKPOINT),
                    "fused_with": names,
                }
            )
        return rows

    def export_cells(self) -> None:
        """Write each cell's ``checkpoints/last.ckpt`` (the checkpoint of one network) and ``metrics.json``."""
        names = [spec.label for spec in self.specs]
        for spec, cell, row in zip(self.specs, self.cells, self.summaries()):
            checkpoint = cell.network_checkpoint(self.trainer.global_step, self.trainer.current_epoch)
            checkpoint["fused"] = {"group": names, "seed": spec.seed}
            save_atomic(checkpoint, Path(spec.root) / LAST_CHECKPOINT)
            write_atomic(Path(spec.root) / METRICS_FILE, json.dumps(row, indent=2) + "\n")
