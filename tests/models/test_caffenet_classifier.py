"""CaffeNetClassifier: Caffe's parameter groups, the step schedule, the paper's metric, bad settings."""

from pathlib import Path

import pytest
import torch

from models.caffenet_classifier import CaffeNetClassifier
from models.schedule import caffe_step_factor

TINY = dict(
    num_classes=4,
    num_outputs=10,
    in_channels=1,
    input_size=28,
    widths=(8, 8, 8, 8, 8, 16, 16),
    conv1_kernel=5,
    conv1_stride=1,
)


def test_parameter_groups_follow_caffe_multipliers():
    """Weights: lr and decay 5e-4; biases: 2x lr and no decay; named groups."""
    module = CaffeNetClassifier(**TINY)
    optimizer = module.configure_optimizers()["optimizer"]
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"weights", "biases"}
    assert groups["weights"]["lr"] == pytest.approx(0.01) and groups["weights"]["weight_decay"] == 5e-4
    assert groups["biases"]["lr"] == pytest.approx(0.02) and groups["biases"]["weight_decay"] == 0.0
    assert optimizer.defaults["momentum"] == 0.9
    assert len(groups["weights"]["params"]) == len(groups["biases"]["params"]) == 8


def test_frozen_parameters_are_not_in_the_optimizer():
    """A parameter that does not require grad never reaches the optimizer."""
    module = CaffeNetClassifier(**TINY)
    for layer in (module.net.conv1, module.net.conv2):
        layer.requires_grad_(False)
    optimizer = module.configure_optimizers()["optimizer"]
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    frozen = {id(p) for p in module.net.conv1.parameters()} | {id(p) for p in module.net.conv2.parameters()}
    assert not in_optimizer & frozen
    assert len(in_optimizer) == 12


def test_all_frozen_is_an_error():
    """Freezing everything leaves nothing to train: a clear error, not a silent no-op."""
    module = CaffeNetClassifier(**TINY)
    module.net.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        module.configure_optimizers()


def test_step_schedule_counts_iterations():
    """x0.1 every lr_step_iters iterations, as Caffe's step policy (0.01 -> 1e-6 over 450k)."""
    assert caffe_step_factor(99_999, 100_000, 0.1) == 1.0
    assert caffe_step_factor(100_000, 100_000, 0.1) == pytest.approx(0.1)
    assert caffe_step_factor(449_999, 100_000, 0.1) == pytest.approx(1e-4)
    module = CaffeNetClassifier(**TINY, lr_step_iters=3)
    config = module.configure_optimizers()
    scheduler = config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(7):
        lrs.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.01] * 3 + [0.001] * 3 + [0.0001])


def test_best_k_mean_is_the_papers_metric():
    """Mean of the k highest validation top-1 values, whatever their order."""
    module = CaffeNetClassifier(**TINY, best_k=3)
    module.val_top1_history = [0.1, 0.5, 0.3, 0.9, 0.2, 0.4]
    assert module.best_k_mean() == pytest.approx((0.9 + 0.5 + 0.4) / 3)
    module.val_top1_history = [0.2]
    assert module.best_k_mean() == pytest.approx(0.2)


def test_history_travels_in_checkpoints():
    """The validation history survives save/load, so the metric is right after a resume."""
    module = CaffeNetClassifier(**TINY)
    module.val_top1_history = [0.25, 0.5]
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    restored = CaffeNetClassifier(**TINY)
    restored.on_load_checkpoint(checkpoint)
    assert restored.val_top1_history == [0.25, 0.5]


def test_default_head_is_the_papers_1000_outputs():
    """fc8 has 1000 outputs by default (the paper), and num_outputs=None gives a K-way head."""
    assert CaffeNetClassifier(num_classes=500).net.fc8.out_features == 1000
    k_way = CaffeNetClassifier(**{**TINY, "num_outputs": None})
    assert k_way.net.fc8.out_features == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_outputs=3), "num_outputs=3 is narrower than the task's 4 classes"),
        (dict(num_classes=0), "num_classes must be positive"),
        (dict(lr=0.0), "lr must be positive"),
        (dict(widths=(8, 8, -1, 8, 8, 16, 16)), "conv3 width must be positive"),
        (dict(input_size=10), "input_size=10 is too small"),
    ],
)
def test_bad_settings_are_named(kwargs, match):
    """Each bad model setting is an error naming it, before training starts."""
    with pytest.raises(ValueError, match=match):
        CaffeNetClassifier(**{**TINY, **kwargs})


def test_forward_channels_last_matches():
    """channels_last gives the same logits as the default memory format."""
    torch.manual_seed(0)
    module = CaffeNetClassifier(**TINY).eval()
    x = torch.randn(2, 1, 28, 28)
    expected = module(x)
    module.hparams.channels_last = True
    module.configure_model()
    torch.testing.assert_close(module(x), expected, rtol=1e-4, atol=1e-5)


def test_train_accuracy_equals_torchmetrics():
    """The training step's one-topk accuracy equals torchmetrics' micro top-1 / top-5 accuracy, per batch and
    over the epoch (batches of unequal sizes); the epoch call starts a new count."""
    from lightning.pytorch.strategies import SingleDeviceStrategy
    from torchmetrics.classification import MulticlassAccuracy

    from models.step_metrics import TrainAccuracy

    generator = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(n, 10, generator=generator), torch.randint(0, 10, (n,), generator=generator)) for n in (64, 64, 7)
    ]
    accuracy, strategy = TrainAccuracy(top_k=5), SingleDeviceStrategy(torch.device("cpu"))
    reference = {
        "top1": MulticlassAccuracy(10, top_k=1, average="micro"),
        "top5": MulticlassAccuracy(10, top_k=5, average="micro"),
    }
    for logits, labels in batches:
        batch = accuracy.update(logits, labels)
        for name, metric in reference.items():
            torch.testing.assert_close(batch[name], metric(logits, labels))
    epoch = accuracy.epoch(strategy)
    for name, metric in reference.items():
        torch.testing.assert_close(epoch[name], metric.compute())
    assert 0 < epoch["top1"] < epoch["top5"] < 1
    assert accuracy.images == 0 and not accuracy.hits.any()
    assert not accuracy.state_dict()  # nothing new in checkpoints


def test_training_logs_step_and_epoch_accuracy(tmp_path):
    """A fit logs train/loss and train/top1_step on the steps the logger writes (log_every_n_steps) and
    train/top1_epoch, the accuracy over all the epoch's batches, at the end of each epoch."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    generator = torch.Generator().manual_seed(1)
    images, labels = torch.randn(20, 1, 28, 28, generator=generator), torch.randint(0, 4, (20,), generator=generator)
    # lr 1e-30 leaves every float32 weight as it is, and no dropout: the fit's logits are the module's now.
    module = CaffeNetClassifier(**TINY, lr=1e-30, dropout=0.0)
    with torch.no_grad():
        hits = module(images).topk(5, dim=1).indices == labels[:, None]
    trainer = Trainer(
        max_epochs=2,
        logger=CSVLogger(tmp_path),
        log_every_n_steps=2,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, DataLoader(TensorDataset(images, labels), batch_size=8))  # batches 8, 8, 4: 6 steps
    torch.testing.assert_close(trainer.callback_metrics["train/top1_epoch"], hits[:, 0].float().mean())
    torch.testing.assert_close(trainer.callback_metrics["train/top5_epoch"], hits.any(1).float().mean())
    lines = (Path(trainer.logger.log_dir) / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    assert [int(r["step"]) for r in rows if r["train/top1_step"]] == [1, 3, 5]  # every 2nd step
    assert [int(r["step"]) for r in rows if r["train/loss"]] == [1, 3, 5]
    assert len([r for r in rows if r["train/top1_epoch"]]) == 2
