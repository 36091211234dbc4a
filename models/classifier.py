"""What every network of the study is trained as: ``TransferClassifier``, whatever its backbone and recipe.

A subclass builds the network (a ``models.network.StagedNetwork``) and names its optimizer recipe
(``models.recipes``); the rest is here, shared: the training loss and its cheap training accuracy, the
validation metrics and the paper's metric (mean of the ``best_k`` best validation top-1 values), the
speed switches (channels_last, compile), the checkpoint entries a network carries (validation history,
training accuracy totals, transfer provenance), and the hooks a fused group calls on each of its networks.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import lightning
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from models.network import StagedNetwork
from models.recipes import Recipe
from models.step_metrics import TrainAccuracy, log_reduced, log_training_step
from models.transfer import TransferRecord, stage_names_of

TRANSFER_KEY = "transfer"  # the checkpoint entry with the network's TransferRecord
DEFAULT_CLASSIFIER = "models.CaffeNetClassifier"  # the paper's network: a config's model without a class_path
# The arguments every classifier takes from its data module (the CLI links them; a fused group sets them per cell).
LINKED_FROM_DATA: tuple[str, ...] = ("num_classes", "in_channels", "input_size")
# What every TransferClassifier's constructor takes: the linked data settings, the seeds a study sets per cell,
# and the switches this class reads.
SUBCLASS_ARGUMENTS: tuple[str, ...] = (
    *LINKED_FROM_DATA,
    "init_seed",
    "dropout_seed",
    "best_k",
    "channels_last",
    "compile",
)


class TransferClassifier(LightningModule):
    """A staged network trained with an optimizer recipe; reports the paper's metric.

    The contract a subclass keeps, checked when the class is defined and when it is built:

    - its constructor takes ``SUBCLASS_ARGUMENTS`` (the CLI links the data's ``num_classes``, ``in_channels`` and
      ``input_size``; a study sets ``init_seed`` and ``dropout_seed``; the rest are the shared switches);
    - it builds its network, a ``models.network.StagedNetwork`` whose head is ``outputs`` wide, and names its recipe;
    - it calls ``super().__init__(net, recipe, outputs, locals(), best_k=..., channels_last=..., compile=...)``:
      every argument of its signature is saved as a hyperparameter, so a checkpoint builds it back.

    Args:
        net: The network (its head ``outputs`` wide).
        recipe: Its optimizer recipe.
        outputs: Width of the head.
        arguments: The subclass's own constructor arguments (its ``locals()``): those its signature names are saved.
        best_k: The paper's metric is the mean of the ``best_k`` best validation top-1 values.
        channels_last: Run the network in channels-last memory format.
        compile: Compile the network with ``torch.compile`` (after any transfer copy).

    Raises:
        TypeError: a broken contract (not a staged network or a recipe, arguments missing), naming what to change.
        ValueError: ``outputs`` or ``best_k`` below 1.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [name for name in SUBCLASS_ARGUMENTS if name not in inspect.signature(cls).parameters]
        if missing:
            raise TypeError(
                f"{cls.__name__} must take {', '.join(missing)} in its constructor: the CLI links num_classes, "
                "in_channels and input_size from the data, a study sets init_seed and dropout_seed per cell "
                "(models.classifier.SUBCLASS_ARGUMENTS)"
            )

    def __init__(
        self,
        net: StagedNetwork,
        recipe: Recipe,
        outputs: int,
        arguments: Mapping[str, Any],
        *,
        best_k: int,
        channels_last: bool,
        compile: bool,
    ) -> None:
        super().__init__()
        self._check_contract(net, recipe, outputs, best_k)
        self.net = net
        self.recipe = recipe
        self.best_k = best_k
        self.channels_last = channels_last
        self.compile_network = compile
        top5 = min(5, outputs)
        self.train_accuracy = TrainAccuracy(top5)
        self.val_top1 = MulticlassAccuracy(outputs, top_k=1, average="micro")
        self.val_top5 = MulticlassAccuracy(outputs, top_k=top5, average="micro")
        self.val_loss = MeanMetric()
        self.val_top1_history: list[float] = []
        self.transfer_record: TransferRecord | None = None  # set by whoever copies stages into the network
        self._save_arguments(arguments)

    def _check_contract(self, net: StagedNetwork, recipe: Recipe, outputs: int, best_k: int) -> None:
        name = type(self).__name__
        if not isinstance(net, StagedNetwork):
            raise TypeError(
                f"{name} built a {type(net).__name__}: a TransferClassifier's network must be a "
                "models.network.StagedNetwork (its stages named in stage_names, the head last)"
            )
        stage_names_of(net)  # each named stage is a submodule
        if not isinstance(recipe, Recipe):
            raise TypeError(f"{name} passed a {type(recipe).__name__} as its recipe: use models.recipes.recipe(...)")
        if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
            raise ValueError(f"{name}: the head's width (outputs) must be a positive integer, got {outputs!r}")
        if isinstance(best_k, bool) or not isinstance(best_k, int) or best_k < 1:
            raise ValueError(f"model best_k must be a positive integer (the best validations averaged), got {best_k!r}")

    def _save_arguments(self, arguments: Mapping[str, Any]) -> None:
        """Save the subclass's own arguments (those of ``arguments`` its signature names) as its hyperparameters,
        with its class path.

        Explicitly: under the CLI, a bare ``save_hyperparameters()`` would take the arguments the CLI gave the
        outermost module, which for a network inside a fused group are the group's. The class path
        (``_class_path``, as Lightning's CLI records it) lets ``fit --ckpt_path`` re-parse the checkpoint's
        hyperparameters as this class's, whatever the CLI's default model.
        """
        names = inspect.signature(type(self)).parameters
        missing = [key for key in names if key not in arguments]
        if missing:
            raise TypeError(
                f"{type(self).__name__} did not pass {', '.join(missing)} to TransferClassifier.__init__: pass its "
                "locals() as `arguments`, so that its checkpoints record every argument and build it back"
            )
        own = {name: value for name, value in arguments.items() if name in names}
        self.save_hyperparameters({"_class_path": f"{type(self).__module__}.{type(self).__qualname__}", **own})

    @staticmethod
    def check_task(num_classes: int, outputs: int) -> None:
        """Refuse a task the head cannot answer, naming the settings."""
        if num_classes < 1:
            raise ValueError(f"model num_classes must be positive, got {num_classes}")
        if outputs < num_classes:
            raise ValueError(
                f"model num_outputs={outputs} is narrower than the task's {num_classes} classes: the head needs at "
                "least one output per class. Set model.num_outputs >= data.num_classes, or null for a K-way head."
            )

    def configure_model(self) -> None:
        """Speed switches, applied after callbacks' ``setup`` (so after any transfer copy)."""
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.compile_network and not getattr(self, "_compiled", False):
            # nn.Module.compile keeps parameter names (no ``_orig_mod.`` prefix in checkpoints).
            self.net.compile()
            self._compiled = True

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss, accuracy = self.training_loss(self(images), labels)
        log_training_step(self, loss, accuracy, len(labels))
        return loss

    def training_loss(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The batch's loss and accuracies (``top1``, ``top5``), counted towards the epoch's training accuracy."""
        return F.cross_entropy(logits, labels), self.train_accuracy.update(logits, labels)

    def on_train_epoch_end(self) -> None:
        log_reduced(self, self.train_epoch_metrics(self.trainer.strategy))

    def train_epoch_metrics(self, strategy: Strategy, prefix: str = "") -> dict[str, Tensor]:
        """The epoch's training accuracy over every batch and rank (keys ``<prefix>train/..._epoch``); resets."""
        epoch = self.train_accuracy.epoch(strategy)
        return {f"{prefix}train/{name}_epoch": value for name, value in epoch.items()}

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        self.update_validation(self(images), labels)

    def update_validation(self, logits: Tensor, labels: Tensor) -> None:
        """Count one validation batch."""
        self.val_loss.update(F.cross_entropy(logits, labels, reduction="none"))
        self.val_top1.update(logits, labels)
        self.val_top5.update(logits, labels)

    def on_validation_epoch_end(self) -> None:
        log_reduced(self, self.end_validation(record=records_validation(self.trainer)), prog_bar=True)

    def end_validation(self, record: bool, prefix: str = "", name: str = "") -> dict[str, float]:
        """The validation's metrics (keys ``<prefix>val/...``, the paper's metric included); resets the counts.

        torchmetrics syncs across ranks inside ``compute()``, so every rank returns the same numbers.

        Args:
            record: Add top-1 to the history the paper's metric is taken from (:func:`records_validation`).
            prefix: Put in front of every key.
            name: The network, for the message of a divergence (default: its class).

        Raises:
            FloatingPointError: the validation loss is not finite: the network diverged (:meth:`check_finite`).
        """
        counted = self.val_loss.update_count > 0
        top1 = float(self.val_top1.compute())
        values = {
            "val/top1": top1,
            "val/top5": float(self.val_top5.compute()),
            "val/loss": float(self.val_loss.compute()),
        }
        for metric in (self.val_top1, self.val_top5, self.val_loss):
            metric.reset()
        if counted:
            self.check_finite(values["val/loss"], name)
        if record:
            self.val_top1_history.append(top1)
        if self.val_top1_history:
            values[f"val/top1_best{self.best_k}_mean"] = self.best_k_mean()
        return {prefix + key: value for key, value in values.items()}

    def check_finite(self, loss: float, name: str = "") -> None:
        """Stop a network that diverged, before its metric is recorded as a result (every rank sees the same loss).

        Raises:
            FloatingPointError: ``loss`` is NaN or infinite; the message names the first non-finite tensor and the
                learning rate to lower.
        """
        if math.isfinite(loss):
            return
        broken = next(
            (
                key
                for key, value in self.net.state_dict().items()
                if value.is_floating_point() and not value.isfinite().all()
            ),
            None,
        )
        trainer = attached_trainer(self)
        step = f" at step {trainer.global_step}" if trainer is not None else ""
        weights = f"its weights are no longer finite (first: {broken})" if broken else "its weights are still finite"
        raise FloatingPointError(
            f"{name or type(self).__name__} diverged: the validation loss is {loss}{step}, and {weights}. Lower the "
            f"learning rate (model.init_args.lr, now {self.recipe.lr:g}) or add warm-up steps, or check the base "
            "checkpoint and the data for non-finite values; resuming with the same settings diverges again"
        )

    def best_k_mean(self) -> float:
        """The paper's metric: mean of the ``best_k`` highest validation top-1 values so far."""
        best = sorted(self.val_top1_history)[-self.best_k :]
        return sum(best) / len(best)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        self.update_validation(self(images), labels)

    def on_test_epoch_end(self) -> None:
        """The validation metrics over every test image of every rank, as ``test/...`` (no history)."""
        values = {
            "test/top1": float(self.val_top1.compute()),
            "test/top5": float(self.val_top5.compute()),
            "test/loss": float(self.val_loss.compute()),
        }
        for metric in (self.val_top1, self.val_top5, self.val_loss):
            metric.reset()
        log_reduced(self, values)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The recipe's optimizer groups over the network's trainable parameters."""
        return self.recipe.parameter_groups(self.net.named_parameters())

    def lr_factor(self, total_steps: int | None) -> Callable[[int], float]:
        """The recipe's schedule for a fit of ``total_steps`` steps (None: unknown): the multiplier of every rate."""
        recipe = self.recipe
        return lambda step: recipe.lr_factor(step, total_steps)

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        groups = self.parameter_groups()
        if not groups:
            raise ValueError("every parameter of the network is frozen: nothing to train (check transfer.n)")
        optimizer = self.recipe.make_optimizer(groups)
        trainer = attached_trainer(self)
        total_steps = int(trainer.estimated_stepping_batches) if trainer is not None else None
        scheduler = LambdaLR(optimizer, self.lr_factor(total_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Sums the training accuracy over the ranks only when the trainer saves this module itself (the hook runs
        # on every rank then); a network saved alone (network_checkpoint, on rank 0) must not start a collective.
        trainer = attached_trainer(self)
        self.save_state(
            checkpoint, trainer.strategy if trainer is not None and trainer.lightning_module is self else None
        )

    def save_state(self, checkpoint: dict[str, Any], strategy: Strategy | None) -> None:
        """This network's own checkpoint entries: validation history, training accuracy totals, provenance.

        Args:
            checkpoint: Where the entries go.
            strategy: Sums the training accuracy totals over the ranks (a collective: every rank calls this);
                None: this rank's totals.
        """
        checkpoint["val_top1_history"] = list(self.val_top1_history)
        checkpoint["train_accuracy"] = self.train_accuracy.totals(strategy)
        if self.transfer_record is not None:
            checkpoint[TRANSFER_KEY] = self.transfer_record.as_dict()

    def network_checkpoint(self, global_step: int, epoch: int) -> dict[str, Any]:
        """This network alone as a Lightning checkpoint: ``load_from_checkpoint`` reads it, a transfer copies it.

        What a network trained inside another module (a fused group) is saved as, in the layout of the
        checkpoint a fit of this module alone writes (its weights, hyperparameters and own entries).
        """
        checkpoint: dict[str, Any] = {
            "epoch": epoch,
            "global_step": global_step,
            "pytorch-lightning_version": lightning.__version__,
            "state_dict": {
                key: value.detach().cpu() if isinstance(value, Tensor) else value
                for key, value in self.state_dict().items()
            },
            self.CHECKPOINT_HYPER_PARAMS_KEY: dict(self.hparams),
        }
        self.save_state(checkpoint, strategy=None)
        return checkpoint

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainer = attached_trainer(self)
        evaluate_weights_only(trainer, checkpoint)
        self.load_state(checkpoint, first_rank=trainer is None or trainer.global_rank == 0)

    def load_state(self, checkpoint: dict[str, Any], first_rank: bool) -> None:
        """Restore what :meth:`save_state` wrote; the summed training accuracy totals go to the first rank only."""
        self.val_top1_history = list(checkpoint.get("val_top1_history", []))
        if "train_accuracy" in checkpoint:
            self.train_accuracy.resume(checkpoint["train_accuracy"], first_rank)
        if TRANSFER_KEY in checkpoint:  # a resumed fit keeps the provenance it started with
            self.transfer_record = TransferRecord.from_dict(checkpoint[TRANSFER_KEY])


def attached_trainer(module: LightningModule) -> Trainer | None:
    """The trainer ``module`` is attached to, or None (a module built, saved or loaded outside a fit).

    Lightning's public ``LightningModule.trainer`` raises a ``RuntimeError`` when no trainer is attached: asking it
    is the public way to know (not its private ``_trainer``).
    """
    try:
        return module.trainer
    except RuntimeError:
        return None


def records_validation(trainer: Trainer) -> bool:
    """Whether this validation's top-1 joins the history the paper's metric is taken from: in a fit, after the
    sanity check. ``validate --ckpt_path`` reports on the fit's history and leaves it as it was."""
    return trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking


def evaluate_weights_only(trainer: Trainer | None, checkpoint: dict[str, Any]) -> None:
    """``validate`` and ``test`` restore the module only: drop the checkpoint's callback states.

    They belong to the fit (its checkpoint bookkeeping, random streams); restored into an evaluation they do
    nothing, and Lightning asks for every callback that saved one ("Please add the following callbacks") whenever
    the evaluation's checkpoint settings differ from the fit's.
    """
    if trainer is not None and trainer.state.fn != TrainerFn.FITTING:
        checkpoint.pop("callbacks", None)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())
