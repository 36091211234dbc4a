"""Copy the first ``n`` layers of a base network into a new one, then lock them (AnB, BnB) or not (AnB+, BnB+).

The paper's transfer step (Yosinski et al. 2014, section 2): layers 1..n come from a trained base
network, layers n+1..8 keep the new network's fresh initialisation. ``frozen`` sets
``requires_grad=False`` on layers 1..n (Caffe's learning rate 0; dropout after them stays active, so
no ``.eval()``); ``finetune`` trains everything at the full schedule. With ``n > 0``, ``frozen`` and
no base checkpoint, layers 1..n stay frozen at their random initialisation (the paper's random
features).

Everything happens in ``setup``: before ``configure_optimizers`` (so frozen parameters never reach
the optimizer) and before the DDP wrap (so DDP needs no ``find_unused_parameters``). On resume
Lightning restores ``ckpt_path`` after ``setup``, so the trained weights replace the base copy.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BaseFinetuning
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from typing_extensions import override

from models.caffenet import LAYER_NAMES

TransferMode = Literal["frozen", "finetune"]
MODES: tuple[str, ...] = ("frozen", "finetune")
MAX_N = len(LAYER_NAMES) - 1  # fc8 is always new
# Added in front of parameter names by the LightningModule (``net.``), DDP (``module.``),
# torch.compile (``_orig_mod.``) and common wrappers (``model.``).
PREFIXES: tuple[str, ...] = ("net.", "model.", "module.", "_orig_mod.")


class TransferCallback(Callback):
    """Initialise layers 1..n of ``pl_module.net`` from a base checkpoint and freeze them or not.

    Args:
        base_checkpoint: A Lightning checkpoint or a plain state dict of a trained CaffeNet, or
            ``None`` (no copy: plain training with ``n=0``, random frozen features with ``n > 0``).
        n: How many layers to transfer, the paper's index: 1..5 are conv1..conv5, 6 and 7 are fc6
            and fc7; fc8 is always new. 0 transfers nothing.
        mode: ``frozen`` (AnB, BnB: layers 1..n do not train) or ``finetune`` (AnB+, BnB+: every
            layer trains).

    Raises:
        ValueError: if ``n`` or ``mode`` is out of range, or ``finetune`` has no base checkpoint.
        FileNotFoundError: if ``base_checkpoint`` is not an existing file.
    """

    def __init__(self, base_checkpoint: str | None = None, n: int = 0, mode: TransferMode = "frozen") -> None:
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_N:
            raise ValueError(
                f"transfer n must be an integer in 0..{MAX_N} (1..5 = conv1..conv5, 6 = fc6, 7 = fc7; "
                f"fc8 is always new), got {n!r}"
            )
        if mode not in MODES:
            raise ValueError(f"transfer mode must be 'frozen' or 'finetune', got {mode!r}")
        if mode == "finetune" and base_checkpoint is None:
            raise ValueError(
                "transfer mode 'finetune' needs a base checkpoint to start from: set transfer.base_checkpoint, "
                "or use mode 'frozen' (with no base and n > 0 that freezes random features)"
            )
        if base_checkpoint is not None and not os.path.isfile(base_checkpoint):
            raise FileNotFoundError(
                f"transfer base_checkpoint {base_checkpoint!r} does not exist or is not a file"
            )
        self.base_checkpoint = None if base_checkpoint is None else str(base_checkpoint)
        self.n = n
        self.mode = mode
        self.provenance: dict[str, Any] = self._record(None, [])
        self._stage: str | None = None

    @property
    def layers(self) -> tuple[str, ...]:
        """Names of the transferred layers, ``conv1`` .. layer ``n``."""
        return LAYER_NAMES[: self.n]

    def _record(self, sha256: str | None, copied: list[str]) -> dict[str, Any]:
        return {"base_checkpoint": self.base_checkpoint, "sha256": sha256, "n": self.n, "mode": self.mode,
                "copied": copied}

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._stage = stage
        if stage != "fit":  # evaluation takes every weight from ckpt_path
            return
        net = self.network(pl_module)
        copied: list[str] = []
        sha256 = None
        if self.n and self.base_checkpoint is not None:
            base, sha256 = self.load_base(self.base_checkpoint)
            copied = self.copy_layers(base, net, self.layers)
            rank_zero_info(f"TransferCallback: copied {', '.join(self.layers)} from {self.base_checkpoint}")
        elif self.base_checkpoint is not None:
            rank_zero_warn(f"transfer n=0 copies no layer: base_checkpoint {self.base_checkpoint!r} is not read")
        elif self.n:
            rank_zero_info(f"TransferCallback: {', '.join(self.layers)} stay frozen at their random initialisation")
        if self.mode == "frozen" and self.n:
            BaseFinetuning.freeze([getattr(net, name) for name in self.layers], train_bn=True)
        self.provenance = self._record(sha256, copied)

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Here, after any resume, the provenance is the one the run started with.
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_hyperparams({"transfer": self.provenance})

    @override
    def state_dict(self) -> dict[str, Any]:
        return dict(self.provenance)

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self._stage == "fit":
            self._check_resume(state_dict)
        self.provenance = dict(state_dict)

    def _check_resume(self, saved: dict[str, Any]) -> None:
        """A resumed fit must freeze the layers the checkpoint was trained with."""
        if (saved.get("n"), saved.get("mode")) != (self.n, self.mode):
            raise ValueError(
                f"the checkpoint being resumed was trained with transfer n={saved.get('n')} "
                f"mode={saved.get('mode')!r}, but this run has n={self.n} mode={self.mode!r}: resume with "
                "the transfer settings it was started with"
            )
        if saved.get("sha256") != self.provenance["sha256"]:
            rank_zero_warn(
                f"transfer base_checkpoint {self.base_checkpoint!r} differs from the base this run started "
                f"from ({saved.get('base_checkpoint')!r}, sha256 {saved.get('sha256')}); training continues "
                "from the checkpoint's weights and keeps the original provenance"
            )

    @staticmethod
    def network(pl_module: LightningModule) -> nn.Module:
        """The module's eight-layer network, ``pl_module.net``."""
        net = getattr(pl_module, "net", None)
        net = getattr(net, "_orig_mod", net)  # torch.compile(net) wraps it; the layers are inside
        if not isinstance(net, nn.Module) or not all(isinstance(getattr(net, name, None), nn.Module)
                                                     for name in LAYER_NAMES):
            raise TypeError(
                f"TransferCallback needs a LightningModule whose network `self.net` has the layers "
                f"{', '.join(LAYER_NAMES)}; {type(pl_module).__name__}.net does not"
            )
        return net

    @staticmethod
    def load_base(path: str) -> tuple[dict[str, torch.Tensor], str]:
        """Read a base checkpoint safely: its tensors, keyed without wrapper prefixes, and the file's sha256.

        Raises:
            FileNotFoundError: if ``path`` is not a file.
            ValueError: if the file is not a PyTorch checkpoint of tensors, or would need arbitrary
                code to unpickle (refused by ``weights_only=True``, never retried unsafely).
        """
        if not os.path.isfile(path):
            raise FileNotFoundError(f"transfer base_checkpoint {path!r} does not exist or is not a file")
        try:
            sha256 = sha256_of(path)
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            unsafe = re.search(r"GLOBAL ([\w.]+)", str(err))  # weights_only met a class or function
            if unsafe:
                raise ValueError(
                    f"transfer base_checkpoint {path!r} was refused: unpickling it would run arbitrary code "
                    f"(it refers to {unsafe.group(1)}, which weights_only=True does not allow). Save the base's "
                    "state_dict, or a Lightning checkpoint whose hyperparameters are plain values"
                ) from err
            raise ValueError(f"transfer base_checkpoint {path!r} is not a readable PyTorch checkpoint") from err
        except Exception as err:  # corrupt, truncated, unreadable or not a torch.save file at all
            raise ValueError(
                f"transfer base_checkpoint {path!r} is not a readable PyTorch checkpoint "
                f"({type(err).__name__}: {err})"
            ) from err
        state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
        tensors = {} if not isinstance(state, dict) else {
            key: value for key, value in state.items() if isinstance(key, str) and isinstance(value, torch.Tensor)
        }
        if not tensors:
            raise ValueError(
                f"transfer base_checkpoint {path!r} holds no weights: expected a Lightning checkpoint (a dict "
                f"with 'state_dict') or a state dict of tensors, got {type(checkpoint).__name__}"
            )
        return strip_prefixes(tensors), sha256

    @staticmethod
    def copy_layers(base: dict[str, torch.Tensor], net: nn.Module, layers: tuple[str, ...]) -> list[str]:
        """Copy every tensor of ``layers`` from ``base`` into ``net`` by name; return the copied names.

        Raises:
            ValueError: if the base lacks a tensor of one of the layers, or a tensor's shape differs
                between the base and the network.
        """
        target = net.state_dict()
        wanted = [key for key in target if key.split(".", 1)[0] in layers]
        for key in wanted:
            if key not in base:
                raise ValueError(
                    f"transfer base checkpoint lacks {key!r}, needed to copy layers {', '.join(layers)}; "
                    f"it has layers {sorted({k.split('.', 1)[0] for k in base})}"
                )
            if base[key].shape != target[key].shape:
                raise ValueError(
                    f"transfer shape mismatch for {key!r}: {tuple(base[key].shape)} in the base checkpoint, "
                    f"{tuple(target[key].shape)} in this model; the model's settings (widths, kernels, "
                    "in_channels, input_size) must match the base's up to layer n"
                )
        result = net.load_state_dict({key: base[key] for key in wanted}, strict=False)
        expected_missing = set(target) - set(wanted)
        if result.unexpected_keys or set(result.missing_keys) != expected_missing:
            raise RuntimeError(
                f"transfer copied the wrong tensors: unexpected {result.unexpected_keys}, missing "
                f"{sorted(set(result.missing_keys) ^ expected_missing)} compared with layers {', '.join(layers)}"
            )
        return wanted


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the leading ``PREFIXES`` from every key (``net._orig_mod.conv1.weight`` -> ``conv1.weight``).

    Raises:
        ValueError: if two keys become the same name.
    """
    stripped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key
        while name.startswith(PREFIXES):
            name = name.split(".", 1)[1]
        if name in stripped:
            raise ValueError(f"transfer base checkpoint is ambiguous: several tensors are named {name!r}")
        stripped[name] = value
    return stripped


def sha256_of(path: str, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
