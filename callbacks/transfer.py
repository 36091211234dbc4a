"""``TransferCallback``: the transfer step (``models.transfer``) applied to a LightningModule's network in ``setup``.

Everything happens in ``setup``: before ``configure_optimizers`` (so frozen parameters never reach
the optimizer) and before the DDP wrap (so DDP needs no ``find_unused_parameters``). On resume
Lightning restores ``ckpt_path`` after ``setup``, so the trained weights replace the base copy.
"""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from typing_extensions import override

from experiments.errors import InputFileError, SettingError
from experiments.runs import versioned_hint
from models import transfer as core
from models.base_file import check_sha256, load_base
from models.transfer import FrozenNorm, TransferMode, TransferRecord


class TransferCallback(Callback):
    """Initialise stages 1..n of ``pl_module.net`` from a base checkpoint and freeze them or not.

    Args:
        base_checkpoint: A Lightning checkpoint or a plain state dict of a trained network, a torchvision-format
            weights file of the backbone (``torch.save(torchvision.models.resnet18(weights=...).state_dict(), path)``,
            ``models.pretrained``), or ``None`` (no copy: plain training with ``n=0``, random frozen features with
            ``n > 0``).
        n: How many stages to transfer, counted from the input: for CaffeNet the paper's index (1..5 are
            conv1..conv5, 6 and 7 are fc6 and fc7; fc8 is always new), for other backbones their stages
            (``models.backbones``). 0 transfers nothing. Checked against the network's stages at setup.
        mode: ``frozen`` (AnB, BnB: stages 1..n do not train) or ``finetune`` (AnB+, BnB+: every
            stage trains).
        frozen_norm: What the batch norms of frozen stages do: ``eval`` (keep the base's running
            statistics: held in eval mode) or ``train`` (normalise with the target's batch statistics,
            which their running statistics follow; their parameters stay frozen).
        base_sha256: The sha256 the base file must have (a study records its weights file's), or None: any file.
            A file that changed since is refused before anything starts.

    Raises:
        SettingError: if ``n``, ``mode`` or ``frozen_norm`` is invalid, or ``finetune`` has no base checkpoint.
        InputFileError: if ``base_checkpoint`` is not an existing file.
    """

    def __init__(
        self,
        base_checkpoint: str | None = None,
        n: int = 0,
        mode: TransferMode = "frozen",
        frozen_norm: FrozenNorm = "eval",
        base_sha256: str | None = None,
    ) -> None:
        super().__init__()
        try:
            core.check_count(n, "transfer n")
            core.check_mode(mode)
            core.check_frozen_norm(frozen_norm)
            core.check_base(
                mode,
                base_checkpoint is not None,
                "a base checkpoint to start from: set "
                "transfer.base_checkpoint, or use mode 'frozen' (with no base and n > 0 that freezes "
                "random features)",
            )
        except ValueError as err:
            raise SettingError(str(err)) from err
        if base_checkpoint is not None and not os.path.isfile(base_checkpoint):
            raise InputFileError(
                f"transfer base_checkpoint {base_checkpoint!r} does not exist or is not a file (looked for in "
                f"{os.path.abspath(os.path.dirname(base_checkpoint) or '.')}): give the last.ckpt of a finished "
                f"base fit{versioned_hint(base_checkpoint)}"
            )
        self.base_checkpoint = None if base_checkpoint is None else str(base_checkpoint)
        self.n = n
        self.mode = mode
        self.frozen_norm = frozen_norm
        self.base_sha256 = base_sha256
        self.record = TransferRecord(self.base_checkpoint, None, n, mode, frozen_norm=frozen_norm)
        self._stage: str | None = None
        self._base: tuple[dict[str, Tensor], str] | None = None  # read by `check`, used once by `setup`

    @property
    def provenance(self) -> dict[str, Any]:
        """The transfer record as plain values (what the checkpoint and the loggers carry)."""
        return self.record.as_dict()

    def check(self, pl_module: LightningModule) -> None:
        """Check n against the module's network and the base's stages against it, before anything starts.

        A dry run of the copy (on the meta device: nothing is copied); the base it read is kept for ``setup``.
        A module that builds its network later (no ``net`` yet) is checked at ``setup``.

        Raises:
            SettingError: n beyond the network's stages, or a base that lacks or mis-shapes a stage to copy
                (a base of another architecture or other settings), or a file that is not a readable checkpoint.
        """
        if getattr(pl_module, "net", None) is None or (self.n == 0 and self.base_checkpoint is None):
            return
        net = self.network(pl_module)
        names = core.stage_names_of(net)
        try:
            core.check_depth(self.n, names, "--transfer.n")
        except ValueError as err:
            raise SettingError(f"{err} for {type(net).__name__}") from err
        if not self.n or self.base_checkpoint is None:
            return
        try:
            self._base = self._read_base()
            core.copy_stages(
                self._base[0],
                net,
                core.transferable_stages(names)[: self.n],
                f"transfer base_checkpoint {self.base_checkpoint!r}",
                dry_run=True,
            )
        except ValueError as err:
            self._base = None
            raise SettingError(
                f"--transfer.base_checkpoint {self.base_checkpoint!r} cannot give stages 1..{self.n} to this "
                f"{type(net).__name__} ({err}); give a base trained with the same model class and settings"
            ) from err

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._stage = stage
        if stage != "fit" or (self.n == 0 and self.base_checkpoint is None):  # evaluation, or nothing to transfer
            return
        net = self.network(pl_module)
        base, sha256 = None, None
        if self.n and self.base_checkpoint is not None:
            base, sha256 = self._base or self._read_base()
            self._base = None
        elif self.base_checkpoint is not None:
            rank_zero_warn(f"transfer n=0 copies no stage: base_checkpoint {self.base_checkpoint!r} is not read")
        self.record = core.transfer(net, self.n, self.mode, base, self.base_checkpoint, sha256, self.frozen_norm)
        # The network's provenance, saved with its checkpoints (torch types a module's unknown attributes as
        # Tensor | Module).
        pl_module.transfer_record = self.record  # type: ignore[assignment]
        stages = ", ".join(core.transferable_stages(core.stage_names_of(net))[: self.n])
        if self.record.copied:
            rank_zero_info(f"TransferCallback: copied {stages} from {self.base_checkpoint}")
        elif self.n:
            rank_zero_info(f"TransferCallback: {stages} stay frozen at their random initialisation")

    def _read_base(self) -> tuple[dict[str, Tensor], str]:
        """The base's tensors and sha256 (``models.base_file.load_base``), checked against ``base_sha256``.

        Raises:
            InputFileError: the file's sha256 is not ``base_sha256``.
        """
        tensors, sha256 = load_base(str(self.base_checkpoint))
        try:
            check_sha256(str(self.base_checkpoint), sha256, self.base_sha256, "transfer.base_sha256")
        except ValueError as err:
            raise InputFileError(str(err)) from err
        return tensors, sha256

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Here, after any resume, the provenance is the one the run started with.
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_hyperparams({"transfer": self.provenance})

    @override
    def state_dict(self) -> dict[str, Any]:
        return self.provenance

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self._stage == "fit":
            self._check_resume(state_dict)
        self.record = TransferRecord.from_dict(state_dict)

    def _check_resume(self, saved: dict[str, Any]) -> None:
        """A resumed fit must freeze the stages the checkpoint was trained with."""
        saved_settings = (saved.get("n"), saved.get("mode"), saved.get("frozen_norm", "eval"))
        if saved_settings != (self.n, self.mode, self.frozen_norm):
            raise ValueError(
                f"the checkpoint being resumed was trained with transfer n={saved.get('n')} "
                f"mode={saved.get('mode')!r}, "
                f"but this run has n={self.n} mode={self.mode!r} (frozen_norm {saved_settings[2]!r} then, "
                f"{self.frozen_norm!r} now): resume with the transfer settings it was started with"
            )
        if saved.get("sha256") != self.record.sha256:
            rank_zero_warn(
                f"transfer base_checkpoint {self.base_checkpoint!r} differs from the base this run started "
                f"from ({saved.get('base_checkpoint')!r}, sha256 {saved.get('sha256')}); training continues "
                "from the checkpoint's weights and keeps the original provenance"
            )

    @staticmethod
    def network(pl_module: LightningModule) -> nn.Module:
        """The module's network, ``pl_module.net`` (inside a ``torch.compile`` wrapper if there is one).

        Raises:
            TypeError: if the module has no network with named stages.
        """
        net = getattr(pl_module, "net", None)
        net = getattr(net, "_orig_mod", net)  # torch.compile(net) wraps it; the stages are inside
        if not isinstance(net, nn.Module):
            raise TypeError(
                f"TransferCallback needs a LightningModule with its network in `self.net`; "
                f"{type(pl_module).__name__} has none"
            )
        core.stage_names_of(net)
        return net
