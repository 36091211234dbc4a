"""TransferCallback: copy and freeze (or fine-tune) layers 1..n, under resume, DDP, compile and the real CLI."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks.transfer import TransferCallback
from models.base_file import load_base
from models.caffenet import STAGE_NAMES
from models.caffenet_classifier import CaffeNetClassifier
from tests.helpers.ranks import run_two_ranks
from tests.helpers.run_dirs import run_dir
from tests.helpers.tiny_data import TINY_MODEL, TinyData, tiny_model_args

# He init: with Caffe's fillers on unit-scale random images the lower layers' gradients are ~1e-10,
# too small to change a bias of 1 in float32 within a few steps, so "every layer trained" would fail.
TINY = TINY_MODEL
TINY_ARGS = tiny_model_args()


def make_model(seed: int = 1, **overrides: Any) -> CaffeNetClassifier:
    seed_everything(seed, verbose=False)
    return CaffeNetClassifier(**{**TINY, **overrides})


def make_trainer(root: Path, callbacks: list[Callback], max_steps: int = 4, **overrides: Any) -> Trainer:
    settings = dict(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=root,
    )
    return Trainer(**{**settings, **overrides}, callbacks=callbacks)


def layer_tensors(net: torch.nn.Module, layer: str) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in net.state_dict().items() if key.split(".")[0] == layer}


def snapshot(net: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    return {layer: layer_tensors(net, layer) for layer in STAGE_NAMES}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def all_changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(not torch.equal(a[key], b[key]) for key in a)


def base_layer(base: dict[str, torch.Tensor], layer: str) -> dict[str, torch.Tensor]:
    return {key: value for key, value in base.items() if key.split(".")[0] == layer}


def fit_base(root: Path, **model_overrides: Any) -> Path:
    """Train a tiny base network for a few steps and save its Lightning checkpoint."""
    model = make_model(seed=0, **model_overrides)
    trainer = make_trainer(root, [], max_steps=4)
    trainer.fit(model, datamodule=TinyData())
    path = root / "base.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def base_weights(base_ckpt: Path) -> dict[str, torch.Tensor]:
    return load_base(str(base_ckpt))[0]


class RecordTrainMode(Callback):
    """Records whether every submodule of the network is in training mode during training steps."""

    def __init__(self) -> None:
        self.all_training: list[bool] = []

    def on_train_batch_start(self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.all_training.append(all(module.training for module in pl_module.net.modules()))


# --- construction -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [-1, 2.0, True])
def test_n_not_a_depth(n: Any) -> None:
    """n must be a non-negative integer, checked at construction."""
    with pytest.raises(ValueError, match=r"transfer n must be an integer >= 0"):
        TransferCallback(n=n)


def test_n_beyond_the_network() -> None:
    """An n beyond the network's stages is refused at setup, before training, listing the valid stages."""
    callback = TransferCallback(n=8)
    with pytest.raises(ValueError, match=r"transfer n must be an integer in 0\.\.7 \(1 = conv1, .*fc8 is always new"):
        callback.setup(Trainer(), CaffeNetClassifier(**TINY_MODEL), "fit")


def test_unknown_mode() -> None:
    """Only 'frozen' and 'finetune' exist."""
    with pytest.raises(ValueError, match="transfer mode must be one of 'frozen', 'finetune', got 'partial'"):
        TransferCallback(n=3, mode="partial")  # type: ignore[arg-type]


def test_finetune_needs_base() -> None:
    """Fine-tuning from nothing is an error, not a silent plain run."""
    with pytest.raises(ValueError, match="mode 'finetune' needs a base checkpoint"):
        TransferCallback(n=3, mode="finetune")


def test_missing_base_file(tmp_path: Path) -> None:
    """A base path that does not exist, or a folder, fails at construction."""
    with pytest.raises(FileNotFoundError, match="does not exist or is not a file"):
        TransferCallback(str(tmp_path / "nope.ckpt"), n=3)
    with pytest.raises(FileNotFoundError, match="does not exist or is not a file"):
        TransferCallback(str(tmp_path), n=3)


# --- reading the base ---------------------------------------------------------------------------


def _mark_executed(path: str) -> None:
    Path(path).touch()


class Payload:
    """Unpickling this runs code (it creates a marker file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _mark_executed, (self.marker,)


def setup_with(path: Path, n: int = 3, **model_overrides: Any) -> CaffeNetClassifier:
    model = make_model(**model_overrides)
    TransferCallback(str(path), n=n).setup(None, model, "fit")  # type: ignore[arg-type]
    return model


def test_arbitrary_code_refused(tmp_path: Path) -> None:
    """A file that needs arbitrary code to unpickle is refused, and the code never runs."""
    marker = tmp_path / "executed"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"net.conv1.weight": torch.zeros(1)}, "payload": Payload(str(marker))}, path)
    with pytest.raises(ValueError, match="refused: unpickling it would run arbitrary code.*_mark_executed"):
        setup_with(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint", "truncated"])
def test_not_a_checkpoint(tmp_path: Path, content: bytes | str, base_ckpt: Path) -> None:
    """Empty, text and truncated files are not readable checkpoints."""
    path = tmp_path / "bad.ckpt"
    path.write_bytes(base_ckpt.read_bytes()[:300] if content == "truncated" else content)
    with pytest.raises(ValueError, match="is not a readable PyTorch checkpoint"):
        setup_with(path)


@pytest.mark.parametrize("obj", [[1, 2, 3], {"epoch": 3}, {"state_dict": {}}])
def test_no_weights(tmp_path: Path, obj: Any) -> None:
    """A torch file without tensors is not a base network."""
    path = tmp_path / "empty.ckpt"
    torch.save(obj, path)
    with pytest.raises(ValueError, match="holds no weights"):
        setup_with(path)


def test_unreadable_file(tmp_path: Path, base_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An OS error while reading is reported as an unreadable base (root ignores chmod, so it is simulated)."""

    def denied(path: str, *args: Any) -> str:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr("models.base_file.sha256_of", denied)
    with pytest.raises(ValueError, match="is not a readable PyTorch checkpoint.*Permission denied"):
        setup_with(base_ckpt)


def test_shape_mismatch(base_ckpt: Path) -> None:
    """A tensor of another shape is named, with both shapes."""
    with pytest.raises(
        ValueError,
        match=r"shape mismatch for 'conv1.weight': \(8, 1, 5, 5\) in the base "
        r"checkpoint, \(16, 1, 5, 5\) in this model",
    ):
        setup_with(base_ckpt, widths=(16, 8, 8, 8, 8, 16, 16))


def test_base_lacks_layer(tmp_path: Path, base_weights: dict[str, torch.Tensor]) -> None:
    """A base without a layer to copy names the missing tensor."""
    path = tmp_path / "partial.pt"
    torch.save({k: v for k, v in base_weights.items() if not k.startswith("conv3.")}, path)
    with pytest.raises(ValueError, match="lacks 'conv3.weight'"):
        setup_with(path, n=3)
    setup_with(path, n=2)  # layers below the gap still copy


def test_bad_base_fails_before_training(tmp_path: Path) -> None:
    """Through the Trainer, a bad base stops the fit before any step."""
    path = tmp_path / "bad.ckpt"
    path.write_text("not a checkpoint")
    trainer = make_trainer(tmp_path, [TransferCallback(str(path), n=2)])
    with pytest.raises(ValueError, match="is not a readable PyTorch checkpoint"):
        trainer.fit(make_model(), datamodule=TinyData())
    assert trainer.global_step == 0


@pytest.mark.parametrize("wrap", ["plain", "compiled", "ddp", "lightning-compiled"])
def test_prefixes_stripped(tmp_path: Path, wrap: str) -> None:
    """State dicts saved from torch.compile, DDP or a LightningModule around a compiled net all load by name."""
    source = make_model(seed=5).net
    if wrap == "plain":
        state: Any = source.state_dict()
    elif wrap == "compiled":
        state = torch.compile(source).state_dict()
        assert next(iter(state)).startswith("_orig_mod.")
    elif wrap == "ddp":
        state = {f"module.{key}": value for key, value in source.state_dict().items()}
    else:
        state = {"state_dict": {f"net._orig_mod.{k}": v for k, v in source.state_dict().items()}, "epoch": 1}
    path = tmp_path / "base.pt"
    torch.save(state, path)
    model = setup_with(path, n=7)
    for layer in STAGE_NAMES[:7]:
        assert same(layer_tensors(model.net, layer), layer_tensors(source, layer)), layer
    assert not torch.equal(model.net.fc8.weight, source.fc8.weight)


# --- training -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 7])
def test_frozen_fit(tmp_path: Path, base_ckpt: Path, base_weights: dict[str, torch.Tensor], n: int) -> None:
    """After a frozen fit layers 1..n equal the base bit for bit, every layer above n has trained,
    no frozen parameter is in the optimizer, weight decay does not move them, dropout stays on."""
    model = make_model(weight_decay=0.5)  # a huge decay would visibly shrink any frozen weight it reached
    assert all_changed(layer_tensors(model.net, "conv1"), base_layer(base_weights, "conv1"))
    mode = RecordTrainMode()
    trainer = make_trainer(tmp_path, [TransferCallback(str(base_ckpt), n=n), mode])
    trainer.fit(model, datamodule=TinyData())
    before = snapshot(make_model().net)  # the same seed gives the fresh initialisation back

    after = snapshot(model.net)
    for layer in STAGE_NAMES[:n]:
        assert same(after[layer], base_layer(base_weights, layer)), layer
        assert not any(p.requires_grad for p in getattr(model.net, layer).parameters()), layer
    for layer in STAGE_NAMES[n:]:
        assert all_changed(after[layer], before[layer]), layer
        assert all(p.requires_grad for p in getattr(model.net, layer).parameters()), layer
    in_optimizer = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.net.parameters() if p.requires_grad}
    assert mode.all_training and all(mode.all_training)


def test_random_frozen_features(tmp_path: Path) -> None:
    """With no base, frozen layers 1..n keep their random initialisation."""
    model = make_model()
    before = snapshot(model.net)
    make_trainer(tmp_path, [TransferCallback(None, n=5)]).fit(model, datamodule=TinyData())
    after = snapshot(model.net)
    assert all(same(after[layer], before[layer]) for layer in STAGE_NAMES[:5])
    assert all(all_changed(after[layer], before[layer]) for layer in STAGE_NAMES[5:])


def test_finetune_fit(tmp_path: Path, base_ckpt: Path, base_weights: dict[str, torch.Tensor]) -> None:
    """After a finetune fit every layer has trained, the copied ones starting from the base."""
    model = make_model()
    callback = TransferCallback(str(base_ckpt), n=5, mode="finetune")
    callback.setup(None, model, "fit")  # type: ignore[arg-type]
    start = snapshot(model.net)
    assert all(same(start[layer], base_layer(base_weights, layer)) for layer in STAGE_NAMES[:5])
    model = make_model()
    trainer = make_trainer(tmp_path, [TransferCallback(str(base_ckpt), n=5, mode="finetune")])
    trainer.fit(model, datamodule=TinyData())
    after = snapshot(model.net)
    assert all(all_changed(after[layer], start[layer]) for layer in STAGE_NAMES)
    assert all(p.requires_grad for p in model.net.parameters())
    assert sum(len(g["params"]) for g in trainer.optimizers[0].param_groups) == len(list(model.net.parameters()))


def test_n0_is_plain_training(tmp_path: Path, base_ckpt: Path) -> None:
    """n=0 copies and freezes nothing; a base given anyway is not read, with a warning."""
    model = make_model()
    before = snapshot(model.net)
    with pytest.warns(UserWarning, match="n=0 copies no stage"):
        make_trainer(tmp_path, [TransferCallback(str(base_ckpt), n=0)]).fit(model, datamodule=TinyData())
    after = snapshot(model.net)
    assert all(all_changed(after[layer], before[layer]) for layer in STAGE_NAMES)


def test_provenance(tmp_path: Path, base_ckpt: Path) -> None:
    """The base's path and sha256, n, mode and copied tensors travel in every checkpoint."""
    trainer = make_trainer(tmp_path, [TransferCallback(str(base_ckpt), n=2)])
    trainer.fit(make_model(), datamodule=TinyData())
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    state = torch.load(tmp_path / "run.ckpt", weights_only=True)["callbacks"]["TransferCallback"]
    assert state == {
        "base_checkpoint": str(base_ckpt),
        "sha256": hashlib.sha256(base_ckpt.read_bytes()).hexdigest(),
        "n": 2,
        "mode": "frozen",
        "copied": ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"],
        "frozen_norm": "eval",
    }


# --- resume -------------------------------------------------------------------------------------


class SeedEachStep(Callback):
    """Seeds the global RNG from the step number before every training step.

    Dropout draws its masks from the global torch RNG, and Lightning checkpoints do not hold that RNG's
    state: a resumed process starts from ``seed_everything``'s state, not from where the interrupted one
    was after its steps, so its dropout masks would differ from the uninterrupted run's. Seeding per step
    makes the masks a function of the step alone, so both runs see the same ones (dropout stays on).
    """

    def on_train_batch_start(self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        torch.manual_seed(10_000 + trainer.global_step)


def fit_to(
    root: Path, base: Path, mode: str, max_steps: int, ckpt_path: str | None = None, n: int = 3
) -> tuple[CaffeNetClassifier, Trainer]:
    model = make_model()
    # As the CLI does: keep the best val/top1 and the last, saved after each validation. (Without
    # validation ModelCheckpoint saves in on_train_epoch_end, and Lightning 2.6 resuming from such a
    # checkpoint replays one extra batch, so the runs would differ for reasons unrelated to transfer.)
    checkpoints = ModelCheckpoint(dirpath=root / "checkpoints", monitor="val/top1", mode="max", save_last=True)
    trainer = make_trainer(
        root,
        [TransferCallback(str(base), n=n, mode=mode), checkpoints, SeedEachStep()],
        max_steps=max_steps,
        enable_checkpointing=True,
        limit_val_batches=1,
    )
    # The loader is not shuffled and the interruption falls on an epoch boundary (4 batches an epoch):
    # a plain DataLoader cannot resume mid-epoch, and its shuffle order is drawn from the global RNG.
    trainer.fit(model, datamodule=TinyData(num_samples=32, batch_size=8), ckpt_path=ckpt_path)
    return model, trainer


@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_resume_matches_uninterrupted(
    tmp_path: Path, base_ckpt: Path, base_weights: dict[str, torch.Tensor], mode: str
) -> None:
    """Interrupted at step 4 and resumed to 8 ends bit-identical to 8 uninterrupted steps; the base is
    never copied over the trained weights, and the same layers stay frozen."""
    whole, _ = fit_to(tmp_path / "whole", base_ckpt, mode, max_steps=8)
    first, _ = fit_to(tmp_path / "split", base_ckpt, mode, max_steps=4)
    resumed, trainer = fit_to(tmp_path / "split", base_ckpt, mode, max_steps=8, ckpt_path="last")
    assert trainer.global_step == 8
    assert same(resumed.net.state_dict(), whole.net.state_dict())
    assert not same(resumed.net.state_dict(), first.net.state_dict())
    frozen = mode == "frozen"
    for layer in STAGE_NAMES[:3]:
        assert same(layer_tensors(resumed.net, layer), base_layer(base_weights, layer)) == frozen, layer
        assert all(p.requires_grad != frozen for p in getattr(resumed.net, layer).parameters())
    in_optimizer = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in resumed.net.parameters() if p.requires_grad}


def test_resume_with_other_settings_fails(tmp_path: Path, base_ckpt: Path) -> None:
    """Resuming with another n (another frozen set) is refused before training."""
    fit_to(tmp_path, base_ckpt, "frozen", max_steps=4)
    with pytest.raises(ValueError, match="trained with transfer n=3 mode='frozen', but this run has n=5"):
        fit_to(tmp_path, base_ckpt, "frozen", max_steps=8, ckpt_path="last", n=5)


def test_resume_with_changed_base_keeps_trained_weights(
    tmp_path: Path, base_ckpt: Path, base_weights: dict[str, torch.Tensor]
) -> None:
    """If the base file changed since the run started, resume warns and the checkpoint's weights still win."""
    fit_to(tmp_path, base_ckpt, "frozen", max_steps=4)
    other = tmp_path / "other_base.pt"
    torch.save({key: value * 2 for key, value in base_weights.items()}, other)
    with pytest.warns(UserWarning, match="differs from the base this run started from"):
        resumed, trainer = fit_to(tmp_path, other, "frozen", max_steps=8, ckpt_path="last")
    for layer in STAGE_NAMES[:3]:
        assert same(layer_tensors(resumed.net, layer), base_layer(base_weights, layer)), layer
    original = hashlib.sha256(base_ckpt.read_bytes()).hexdigest()
    assert trainer.checkpoint_callback is not None
    assert (
        torch.load(trainer.checkpoint_callback.last_model_path, weights_only=True)["callbacks"]["TransferCallback"][
            "sha256"
        ]
        == original
    )


# --- torch.compile ------------------------------------------------------------------------------


def test_compiled_run_and_compiled_base(tmp_path: Path, base_ckpt: Path, base_weights: dict[str, torch.Tensor]) -> None:
    """A compiled transfer run keeps its frozen layers, and its checkpoint serves as a base."""
    model = make_model(compile=True)
    trainer = make_trainer(tmp_path, [TransferCallback(str(base_ckpt), n=3)], max_steps=2)
    trainer.fit(model, datamodule=TinyData())
    assert model._compiled
    assert all(same(layer_tensors(model.net, layer), base_layer(base_weights, layer)) for layer in STAGE_NAMES[:3])
    trainer.save_checkpoint(tmp_path / "compiled.ckpt")

    second = setup_with(tmp_path / "compiled.ckpt", n=5)
    for layer in STAGE_NAMES[:5]:
        assert same(layer_tensors(second.net, layer), layer_tensors(model.net, layer)), layer


# --- DDP ----------------------------------------------------------------------------------------


class RecordRank(Callback):
    """After training, writes what this rank sees: frozen layers against the base, DDP's settings, and the
    training accuracy counted on this rank (read before the module's epoch end sums it over the ranks)."""

    def __init__(self, out_dir: str, base: str, n: int) -> None:
        self.out_dir, self.base, self.n = out_dir, base, n
        self.local_hits: list[float] = []
        self.local_images = 0

    def on_train_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:  # runs before the module's hook
        self.local_hits = pl_module.train_accuracy.hits.tolist()
        self.local_images = pl_module.train_accuracy.images

    def on_train_end(self, trainer: Trainer, pl_module: Any) -> None:
        base, _ = load_base(self.base)
        state = pl_module.net.state_dict()
        frozen = [key for key in state if key.split(".")[0] in STAGE_NAMES[: self.n]]
        trainable = b"".join(state[key].numpy().tobytes() for key in state if key not in frozen)
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "steps": trainer.global_step,
            "frozen_equal_base": all(torch.equal(state[key], base[key]) for key in frozen),
            "frozen_requires_grad": any(
                p.requires_grad for key, p in pl_module.net.named_parameters() if key in frozen
            ),
            "find_unused_parameters": trainer.strategy.model.find_unused_parameters,
            "trainable_sha": hashlib.sha256(trainable).hexdigest(),
            "local_hits": self.local_hits,
            "local_images": self.local_images,
            "top1_epoch": float(trainer.callback_metrics["train/top1_epoch"]),
            "top5_epoch": float(trainer.callback_metrics["train/top5_epoch"]),
        }
        Path(self.out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def ddp_main(out_dir: str, base: str) -> None:
    """Entry point of the DDP test's subprocess: ``python -m tests.callbacks.test_transfer ddp OUT BASE``."""
    model = make_model()
    trainer = make_trainer(
        Path(out_dir),
        [TransferCallback(base, n=5), RecordRank(out_dir, base, 5)],
        max_steps=3,
        devices=2,
        strategy="ddp",
    )
    trainer.fit(model, datamodule=TinyData())


@pytest.mark.slow
def test_ddp_two_processes(tmp_path: Path, base_ckpt: Path) -> None:
    """DDP with 2 CPU processes (gloo): frozen layers equal the base on every rank, no
    find_unused_parameters, the trained layers agree across ranks, the epoch's training accuracy is that of
    both ranks' batches, and nothing hangs."""
    records = run_two_ranks("tests.callbacks.test_transfer", "ddp", tmp_path, base_ckpt, "DDP")
    for record in records:
        assert record["world_size"] == 2 and record["steps"] == 3
        assert record["frozen_equal_base"] and not record["frozen_requires_grad"]
        assert record["find_unused_parameters"] is False
    assert records[0]["trainable_sha"] == records[1]["trainable_sha"]
    assert records[0]["local_images"] == records[1]["local_images"] > 0  # each rank its own shard
    images = records[0]["local_images"] + records[1]["local_images"]
    for index, name in enumerate(("top1_epoch", "top5_epoch")):
        expected = sum(record["local_hits"][index] for record in records) / images
        assert all(record[name] == pytest.approx(expected) for record in records), (name, records)


# --- the real CLI -------------------------------------------------------------------------------


def test_cli_freezes_and_resumes(
    tmp_path: Path, base_ckpt: Path, base_weights: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fit --transfer.base_checkpoint B --transfer.n 3` freezes conv1..conv3 at the base's weights, logs the
    provenance, and `fit --ckpt_path last` continues with the same layers frozen."""
    from experiments.cli import run_cli

    monkeypatch.setattr(sys, "argv", ["transferability"])  # pytest's own arguments are not the CLI's

    args = [
        "fit",
        *TINY_ARGS,
        "--data",
        "tests.helpers.tiny_data.TinyData",
        "--data.num_samples",
        "16",
        "--transfer.base_checkpoint",
        str(base_ckpt),
        "--transfer.n",
        "3",
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "1",
        "--trainer.max_epochs",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.num_sanity_val_steps",
        "0",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir",
        str(tmp_path),
    ]
    cli = run_cli(args)
    net = cli.model.net
    for layer in STAGE_NAMES[:3]:
        assert same(layer_tensors(net, layer), base_layer(base_weights, layer)), layer
        assert not any(p.requires_grad for p in getattr(net, layer).parameters())
    assert all(p.requires_grad for layer in STAGE_NAMES[3:] for p in getattr(net, layer).parameters())
    hparams = next(tmp_path.glob("**/hparams.yaml")).read_text()
    assert "sha256: " + hashlib.sha256(base_ckpt.read_bytes()).hexdigest() in hparams
    assert (run_dir(tmp_path) / "checkpoints" / "last.ckpt").is_file()

    resumed = run_cli([*args, "--trainer.max_epochs", "2", "--ckpt_path", "last"])
    assert resumed.trainer.global_step == 4
    for layer in STAGE_NAMES[:3]:
        assert same(layer_tensors(resumed.model.net, layer), base_layer(base_weights, layer)), layer
        assert not any(p.requires_grad for p in getattr(resumed.model.net, layer).parameters())


if __name__ == "__main__" and sys.argv[1:2] == ["ddp"]:
    ddp_main(*sys.argv[2:4])
