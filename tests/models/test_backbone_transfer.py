"""Transfer on torchvision backbones: frozen stages and their batch norms, recipes, fused groups, DDP, compile, CLI."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks.transfer import TransferCallback
from models import BackboneClassifier
from models.base_file import load_base
from models.fused import FusedCell, FusedTransfer
from models.loading import load_classifier, load_network
from models.recipes import recipe
from tests.helpers import REPO
from tests.helpers.fake_data import needs_debian_fashion_mnist
from tests.helpers.fits import FASHION, assert_same_fit, run_subprocess
from tests.helpers.run_dirs import run_dir
from tests.helpers.tiny_data import TinyData

SHAPE: dict[str, Any] = dict(num_classes=4, in_channels=1, input_size=8)
# Tiny versions of the backbones on 1x8x8 images: ResNet-18 by torchvision layers, a two-block ViT.
RESNET: dict[str, Any] = dict(backbone="resnet18", backbone_options={"stem": "small", "granularity": "stage"}, lr=0.05)
VIT: dict[str, Any] = dict(
    backbone="vit", backbone_options=dict(patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32)
)
TRAINER: dict[str, Any] = dict(
    accelerator="cpu",
    devices=1,
    max_steps=4,
    val_check_interval=2,
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    num_sanity_val_steps=0,
)


def data() -> TinyData:
    return TinyData(num_samples=32, batch_size=8, image_size=8, shuffle=True)


def stage_state(net: torch.nn.Module, stages: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Every tensor (parameters and buffers) of ``stages``."""
    return {key: value.detach().clone() for key, value in net.state_dict().items() if key.split(".")[0] in stages}


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A ResNet and a ViT base, each trained a few steps (so its batch-norm statistics are its own)."""
    root = tmp_path_factory.mktemp("bases")
    paths = {}
    for name, network in (("resnet", RESNET), ("vit", VIT)):
        seed_everything(0, verbose=False)
        trainer = Trainer(**{**TRAINER, "max_steps": 3, "enable_checkpointing": False}, default_root_dir=root)
        trainer.fit(BackboneClassifier(**network, **SHAPE), datamodule=data())
        paths[name] = root / f"{name}.ckpt"
        trainer.save_checkpoint(paths[name])
    return paths


def fit_transfer(
    root: Path, base: Path, network: dict[str, Any], n: int, frozen_norm: str = "eval", **model: Any
) -> BackboneClassifier:
    seed_everything(1, verbose=False)
    module = BackboneClassifier(**network, **SHAPE, **model)
    trainer = Trainer(
        **TRAINER,
        default_root_dir=root,
        enable_checkpointing=False,
        callbacks=[TransferCallback(str(base), n=n, frozen_norm=frozen_norm)],
    )
    trainer.fit(module, datamodule=data())
    return module


@pytest.mark.parametrize("network", ["resnet", "vit"])
def test_frozen_stages_stay_the_base_bit_for_bit(tmp_path: Path, bases: dict[str, Path], network: str) -> None:
    """Stages 1..n (parameters and batch-norm statistics) equal the base after a fit with validations; the rest
    train."""
    settings = RESNET if network == "resnet" else VIT
    module = fit_transfer(tmp_path, bases[network], settings, n=2)
    names = module.net.stage_names
    base, _ = load_base(str(bases[network]))
    frozen = stage_state(module.net, names[:2])
    assert frozen and all(torch.equal(value, base[key]) for key, value in frozen.items())
    trained = stage_state(module.net, names[2:3])
    assert any(not torch.equal(value, base[key]) for key, value in trained.items() if value.is_floating_point())
    assert not any(p.requires_grad for name in names[:2] for p in getattr(module.net, name).parameters())


def test_frozen_batch_norms_keep_the_base_statistics(tmp_path: Path, bases: dict[str, Path]) -> None:
    """frozen_norm=eval: the frozen stages' batch norms stay in eval mode through train() calls."""
    module = fit_transfer(tmp_path, bases["resnet"], RESNET, n=2)
    module.train()
    norms = [
        m
        for name in ("stem", "layer1")
        for m in getattr(module.net, name).modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ]
    assert norms and not any(m.training for m in norms)
    assert all(m.training for m in module.net.layer2.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert module.transfer_record.frozen_norm == "eval"


def test_frozen_norm_train_lets_statistics_follow_the_target(tmp_path: Path, bases: dict[str, Path]) -> None:
    """frozen_norm=train: the frozen stages' norm parameters stay the base's, their running statistics move."""
    module = fit_transfer(tmp_path, bases["resnet"], RESNET, n=2, frozen_norm="train")
    base, _ = load_base(str(bases["resnet"]))
    state = module.net.state_dict()
    assert torch.equal(state["stem.bn1.weight"], base["stem.bn1.weight"])
    assert not torch.equal(state["stem.bn1.running_mean"], base["stem.bn1.running_mean"])
    assert int(state["stem.bn1.num_batches_tracked"]) == int(base["stem.bn1.num_batches_tracked"]) + 4


def test_bad_frozen_norm_is_refused() -> None:
    with pytest.raises(ValueError, match="transfer frozen_norm must be one of 'eval', 'train'"):
        TransferCallback(n=1, frozen_norm="fixed")  # type: ignore[arg-type]


def test_n_beyond_the_backbone_lists_its_stages(tmp_path: Path, bases: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"transfer n must be an integer in 0\.\.5 \(1 = stem, 2 = layer1"):
        fit_transfer(tmp_path, bases["resnet"], RESNET, n=6)


# --- recipes ------------------------------------------------------------------------------------


def test_sgd_recipe_decays_only_weight_matrices_of_trainable_stages(tmp_path: Path, bases: dict[str, Path]) -> None:
    """No decay on norms and biases; frozen parameters never reach the optimizer; the groups' rates."""
    module = fit_transfer(tmp_path, bases["resnet"], RESNET, n=2)
    groups = {group["name"]: group for group in module.parameter_groups()}
    trainable = {id(p) for p in module.net.parameters() if p.requires_grad}
    in_groups = [id(p) for group in groups.values() for p in group["params"]]
    assert sorted(in_groups) == sorted(trainable) and len(set(in_groups)) == len(in_groups)
    assert all(p.ndim > 1 for p in groups["decay"]["params"]) and groups["decay"]["weight_decay"] == 5e-4
    assert all(p.ndim == 1 for p in groups["no_decay"]["params"]) and groups["no_decay"]["weight_decay"] == 0.0
    assert groups["decay"]["lr"] == 0.05 and groups["decay"]["momentum"] == 0.9


def test_adamw_recipe_spares_tokens_norms_and_biases() -> None:
    module = BackboneClassifier(**VIT, **SHAPE)
    groups = {group["name"]: group for group in module.parameter_groups()}
    names = {id(p): name for name, p in module.net.named_parameters()}
    spared = {names[id(p)] for p in groups["no_decay"]["params"]}
    assert {"embed.class_token", "embed.pos_embedding", "head.ln.weight", "head.ln.bias"} <= spared
    assert all(names[id(p)].endswith("weight") for p in groups["decay"]["params"])
    optimizer = module.recipe.make_optimizer(module.parameter_groups())
    assert isinstance(optimizer, torch.optim.AdamW) and groups["decay"]["weight_decay"] == 0.05


def test_warmup_then_cosine() -> None:
    schedule = recipe("sgd", warmup_steps=4)
    factors = [schedule.lr_factor(step, total_steps=14) for step in range(15)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4] == pytest.approx(1.0) and factors[9] == pytest.approx(0.5) and factors[14] == pytest.approx(0.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[4:]))
    with pytest.raises(ValueError, match="needs the fit's length"):
        schedule.lr_factor(5, None)
    with pytest.raises(ValueError, match="model recipe 'lamb' is not one of caffe, sgd, adamw"):
        recipe("lamb")


# --- fused groups -------------------------------------------------------------------------------


@pytest.mark.parametrize("network", ["resnet", "vit"])
def test_fused_backbone_cell_matches_the_cell_trained_alone(
    tmp_path: Path, bases: dict[str, Path], network: str
) -> None:
    """A fused group of backbone cells (shared frozen stages, batch norms in eval) equals each cell trained alone."""
    settings = RESNET if network == "resnet" else VIT
    cells = [FusedCell(n, str(tmp_path / f"n{n}"), seed=5) for n in (1, 3)]
    seed_everything(2, workers=True, verbose=False)
    group = FusedTransfer(
        str(bases[network]), cells, **SHAPE, network=settings, network_class="models.BackboneClassifier"
    )
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "group", save_last=True, save_top_k=0)
    Trainer(**TRAINER, default_root_dir=tmp_path / "group", callbacks=[checkpoints]).fit(group, datamodule=data())
    for cell in cells:
        seed_everything(2, workers=True, verbose=False)
        alone = BackboneClassifier(**settings, **SHAPE, init_seed=5, dropout_seed=5)
        Trainer(
            **TRAINER,
            default_root_dir=tmp_path / f"alone{cell.n}",
            enable_checkpointing=False,
            callbacks=[TransferCallback(str(bases[network]), n=cell.n)],
        ).fit(alone, datamodule=data())
        fused = torch.load(Path(cell.root) / "checkpoints" / "last.ckpt", weights_only=True)
        for key, value in alone.state_dict().items():
            torch.testing.assert_close(
                fused["state_dict"][key], value, rtol=0, atol=0, msg=lambda m, key=key, n=cell.n: f"n={n} {key}: {m}"
            )
        assert fused["val_top1_history"] == pytest.approx(alone.val_top1_history)
        assert isinstance(load_network(Path(cell.root) / "checkpoints" / "last.ckpt"), type(alone.net))


class ResearcherClassifier(BackboneClassifier):
    """A researcher's own classifier: ``load_classifier`` must give back this class, not its parent."""


def test_load_classifier_gives_back_the_recorded_class(tmp_path: Path) -> None:
    trainer = Trainer(**{**TRAINER, "max_steps": 1}, default_root_dir=tmp_path, enable_checkpointing=False)
    trainer.fit(ResearcherClassifier(**VIT, **SHAPE), datamodule=data())
    trainer.save_checkpoint(tmp_path / "own.ckpt")
    loaded = load_classifier(tmp_path / "own.ckpt")
    assert type(loaded) is ResearcherClassifier and not loaded.training
    checkpoint = torch.load(tmp_path / "own.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["_class_path"] = "collections.OrderedDict"
    torch.save(checkpoint, tmp_path / "forged.ckpt")
    with pytest.raises(ValueError, match="forged.ckpt.*collections.OrderedDict.*not a models.classifier"):
        load_classifier(tmp_path / "forged.ckpt")


def test_fused_group_refuses_frozen_norm_train(bases: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a fused group needs frozen_norm 'eval'"):
        FusedTransfer(
            str(bases["resnet"]),
            [FusedCell(1, str(tmp_path / "a"))],
            **SHAPE,
            network=RESNET,
            network_class="models.BackboneClassifier",
            frozen_norm="train",
        )


# --- compile, DDP, the CLI ----------------------------------------------------------------------


@pytest.mark.slow
def test_compiled_backbone_keeps_its_frozen_stages(tmp_path: Path, bases: dict[str, Path]) -> None:
    module = fit_transfer(tmp_path, bases["vit"], VIT, n=2, compile=True)
    base, _ = load_base(str(bases["vit"]))
    frozen = stage_state(module.net, module.net.stage_names[:2])
    assert module._compiled and all(torch.equal(value, base[key]) for key, value in frozen.items())


class RecordFrozen(Callback):
    """After training, writes whether this rank's frozen stages (with their norm statistics) equal the base."""

    def __init__(self, out_dir: str, base: str, n: int) -> None:
        self.out_dir, self.base, self.n = out_dir, base, n

    def on_train_end(self, trainer: Trainer, pl_module: Any) -> None:
        base, _ = load_base(self.base)
        frozen = stage_state(pl_module.net, pl_module.net.stage_names[: self.n])
        record = {
            "world_size": trainer.world_size,
            "steps": trainer.global_step,
            "frozen": len(frozen),
            "frozen_equal_base": all(torch.equal(value, base[key]) for key, value in frozen.items()),
            "find_unused_parameters": trainer.strategy.model.find_unused_parameters,
        }
        Path(self.out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def ddp_main(out_dir: str, base: str) -> None:
    """Entry point of the DDP test's subprocess: ``python -m tests.models.test_backbone_transfer ddp OUT BASE``."""
    seed_everything(1, verbose=False)
    module = BackboneClassifier(**RESNET, **SHAPE)
    trainer = Trainer(
        **{**TRAINER, "devices": 2, "strategy": "ddp", "max_steps": 3},
        default_root_dir=out_dir,
        enable_checkpointing=False,
        callbacks=[TransferCallback(base, n=2), RecordFrozen(out_dir, base, 2)],
    )
    trainer.fit(module, datamodule=data())


@pytest.mark.slow
def test_ddp_two_processes_keep_frozen_stages_and_norms(tmp_path: Path, bases: dict[str, Path]) -> None:
    """ResNet on 2 CPU processes: frozen stages and their batch-norm statistics equal the base on every rank."""

    returncode, output = run_subprocess(
        "tests.models.test_backbone_transfer", ["ddp", str(tmp_path), str(bases["resnet"])], timeout=300
    )
    assert returncode == 0, output[-3000:]
    for rank in (0, 1):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert record["world_size"] == 2 and record["steps"] == 3 and record["frozen"] > 0
        assert record["frozen_equal_base"] and record["find_unused_parameters"] is False


def test_shipped_vit_config_fits_and_transfers_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`transferability fit --config experiments/configs/fmnist/vit.yaml`, then a frozen transfer with --transfer.n."""
    from experiments.cli import run_cli

    monkeypatch.setattr(sys, "argv", ["transferability"])
    common = [
        "--config",
        str(REPO / "experiments/configs/fmnist/vit.yaml"),
        "--trainer.max_steps",
        "2",
        "--trainer.val_check_interval",
        "2",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.num_sanity_val_steps",
        "0",
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir",
        str(tmp_path),
    ]
    base = run_cli(["fit", *common, "--trainer.default_root_dir", str(tmp_path / "base")])
    assert base.model.net.stage_names[1] == "block1" and base.trainer.global_step == 2
    checkpoint = run_dir(tmp_path / "base") / "checkpoints" / "last.ckpt"
    transfer = run_cli(
        [
            "fit",
            *common,
            "--trainer.default_root_dir",
            str(tmp_path / "AnB3"),
            "--data.half",
            "B",
            "--transfer.base_checkpoint",
            str(checkpoint),
            "--transfer.n",
            "3",
        ]
    )
    weights, _ = load_base(str(checkpoint))
    frozen = stage_state(transfer.model.net, ("embed", "block1", "block2"))
    assert frozen and all(torch.equal(value, weights[key]) for key, value in frozen.items())


def test_resnet_transfer_resumes_exactly(tmp_path: Path, bases: dict[str, Path]) -> None:
    """A frozen ResNet transfer (batch-norm statistics, SGD momentum, cosine schedule) resumed from its epoch-end
    checkpoint ends bit-identical to the uninterrupted fit."""

    def fit(root: Path, ckpt_path: str | None = None) -> tuple[BackboneClassifier, Trainer]:
        seed_everything(1, verbose=False)
        module = BackboneClassifier(**RESNET, **SHAPE, warmup_steps=2)
        checkpoints = ModelCheckpoint(dirpath=root, every_n_train_steps=4, save_top_k=-1, filename="{step}")
        # validation at steps 3 and 7, so the step-4 checkpoint is not a validation step (Lightning resumes a
        # checkpoint written at one without that validation: README, exact resume)
        trainer = Trainer(
            **{**TRAINER, "max_steps": 8, "val_check_interval": 3},
            default_root_dir=root,
            callbacks=[TransferCallback(str(bases["resnet"]), n=2), checkpoints],
        )
        trainer.fit(
            module,
            datamodule=TinyData(num_samples=32, batch_size=8, image_size=8),
            ckpt_path=ckpt_path,
            weights_only=True,
        )
        return module, trainer

    whole, whole_trainer = fit(tmp_path / "whole")
    resumed, resumed_trainer = fit(tmp_path / "resumed", str(tmp_path / "whole" / "step=4.ckpt"))
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(
            resumed.state_dict()[key], value, rtol=0, atol=0, msg=lambda m, key=key: f"{key}: {m}"
        )
    for a, b in zip(whole_trainer.optimizers[0].state.values(), resumed_trainer.optimizers[0].state.values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert (
        whole_trainer.lr_scheduler_configs[0].scheduler.get_last_lr()
        == resumed_trainer.lr_scheduler_configs[0].scheduler.get_last_lr()
    )
    assert resumed.val_top1_history == whole.val_top1_history and len(whole.val_top1_history) == 2


def vit_fit_args(root: Path, max_steps: int, *extra: str) -> list[str]:
    """A fit of the shipped ViT on 100 Fashion-MNIST images, checkpointing every 3 steps (``step=N.ckpt``)."""

    return [
        "fit",
        "--config",
        str(REPO / "experiments/configs/fmnist/vit.yaml"),
        "--seed_everything",
        "0",
        *FASHION,
        "--model.init_args.warmup_steps",
        "4",
        "--trainer.max_steps",
        str(max_steps),
        "--trainer.val_check_interval",
        "5",
        "--trainer.limit_val_batches",
        "2",
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--checkpoint.monitor",
        "null",
        "--checkpoint.save_top_k",
        "-1",
        "--checkpoint.every_n_train_steps",
        "3",
        "--checkpoint.filename",
        "{step}",
        "--trainer.default_root_dir",
        str(root),
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir",
        str(root),
        *extra,
    ]


@needs_debian_fashion_mnist
@pytest.mark.slow
def test_vit_transfer_resumes_exactly_mid_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frozen ViT transfer (AdamW, warm-up and cosine) resumed from its step-9 checkpoint (mid-epoch) ends as
    the uninterrupted fit: weights, optimizer, schedule, loops, RNG and loader states, metrics."""
    from experiments.cli import main

    monkeypatch.setattr(sys, "argv", ["transferability"])
    main(vit_fit_args(tmp_path / "base", 3))
    transfer = (
        "--data.init_args.half",
        "B",
        "--transfer.base_checkpoint",
        str(run_dir(tmp_path / "base") / "checkpoints" / "last.ckpt"),
        "--transfer.n",
        "2",
    )
    main(vit_fit_args(tmp_path / "whole", 12, *transfer))
    main(
        vit_fit_args(
            tmp_path / "resumed",
            12,
            *transfer,
            "--ckpt_path",
            str(run_dir(tmp_path / "whole") / "checkpoints" / "step=9.ckpt"),
        )
    )
    assert_same_fit(tmp_path / "whole", tmp_path / "resumed", 9, 12)


if __name__ == "__main__" and sys.argv[1:2] == ["ddp"]:
    ddp_main(*sys.argv[2:4])
