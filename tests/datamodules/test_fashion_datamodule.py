"""FashionMNISTHalf on the real Fashion-MNIST files (Debian's dataset-fashion-mnist)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

from datamodules import FashionMNISTHalf
from datamodules.fashion_mnist import DEBIAN_DIR, load_fashion_mnist
from tests.helpers.fake_data import needs_debian_fashion_mnist

pytestmark = [needs_debian_fashion_mnist, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def raw() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The official train and test sets, uint8 images and labels."""
    return load_fashion_mnist(None)


def test_reads_the_debian_files(raw: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``root=None`` reads Debian's IDX files: 60,000 + 10,000 28x28 images, 10 balanced classes."""
    for subset, n in (("train", 60_000), ("test", 10_000)):
        images, labels = raw[subset]
        assert images.shape == (n, 1, 28, 28) and images.dtype == torch.uint8
        assert torch.bincount(labels).tolist() == [n // 10] * 10


@pytest.mark.parametrize(
    ("split", "half", "classes"),
    [
        ("random0", "A", (0, 1, 3, 7, 8)),
        ("dissimilar", "clothing", (0, 1, 2, 3, 4, 6)),
        ("dissimilar", "footwear_bags", (5, 7, 8, 9)),
        ("whole", "all", tuple(range(10))),
    ],
)
def test_halves_hold_their_classes_relabelled(
    raw: dict[str, tuple[torch.Tensor, torch.Tensor]], split: str, half: str, classes: tuple[int, ...]
) -> None:
    """Train is the official train set and val the official test set restricted to the half, every image
    once, label k for the k-th smallest original class."""
    dm = FashionMNISTHalf(split=split, half=half)
    assert dm.num_classes == len(classes) and (dm.in_channels, dm.input_size) == (1, 28)
    dm.setup("fit")
    for dataset, (images, labels), per_class in ((dm.train_set, raw["train"], 6000), (dm.val_set, raw["test"], 1000)):
        assert len(dataset) == per_class * len(classes)
        keep = torch.isin(labels, torch.tensor(classes))
        assert torch.equal(torch.tensor(classes)[dataset.labels], labels[keep])
        assert torch.equal(dataset.images, images[keep])


def test_batches_are_pixels_minus_the_training_mean(raw: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Val batches are 0-255 pixels minus the per-pixel mean of the half's training images."""
    dm = FashionMNISTHalf(split="random1", half="B", batch_size=100)
    dm.setup("fit")
    train_images = raw["train"][0][torch.isin(raw["train"][1], torch.tensor(dm.classes))]
    mean = train_images.double().mean(0).float()
    torch.testing.assert_close(dm.val_set.mean, mean)
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (100, 1, 28, 28) and images.dtype == torch.float32 and labels.dtype == torch.int64
    torch.testing.assert_close(images, dm.val_set.images[:100].float() - mean)
    scaled = FashionMNISTHalf(split="random1", half="B", batch_size=100, pixel_scale=1 / 128)
    scaled.setup("fit")
    torch.testing.assert_close(next(iter(scaled.val_dataloader()))[0], images / 128)


def test_three_channels_repeat_the_grey_one() -> None:
    """``channels=3`` (for a network that reads RGB, such as a torchvision ImageNet base): every channel is the grey
    batch, mean and scale included; other counts are refused by name."""
    grey = FashionMNISTHalf(split="whole", half="all", batch_size=50, pixel_scale=1 / 58)
    rgb = FashionMNISTHalf(split="whole", half="all", batch_size=50, pixel_scale=1 / 58, channels=3)
    grey.setup("fit")
    rgb.setup("fit")
    assert (grey.in_channels, rgb.in_channels) == (1, 3)
    images, labels = next(iter(rgb.val_dataloader()))
    expected, expected_labels = next(iter(grey.val_dataloader()))
    assert images.shape == (50, 3, 28, 28) and torch.equal(labels, expected_labels)
    assert all(torch.equal(images[:, c], expected[:, 0]) for c in range(3))
    with pytest.raises(ValueError, match="data channels must be 1 .* or 3 .*got 2"):
        FashionMNISTHalf(channels=2)


def test_training_images_are_mirrored_at_random() -> None:
    """Each training image comes back as is or mirrored (after the mean subtraction), both about half the time."""
    dm = FashionMNISTHalf(split="dissimilar", half="footwear_bags")
    dm.setup("fit")
    torch.manual_seed(0)
    indices = list(range(2000))
    images, _ = dm.train_set.__getitems__(indices)
    centred = dm.train_set.images[indices].float() - dm.train_set.mean
    plain = (images == centred).flatten(1).all(1)
    mirrored = (images == centred.flip(-1)).flatten(1).all(1)
    assert bool((plain | mirrored).all())
    assert 800 < int((mirrored & ~plain).sum()) < 1200


def test_mean_half_and_images_per_class(raw: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Reduced data keeps the first N training images of each class; ``mean_half`` takes the other half's mean."""
    dm = FashionMNISTHalf(split="random2", half="A", images_per_class=10, mean_half="B")
    base = FashionMNISTHalf(split="random2", half="B", images_per_class=10)
    dm.setup("fit")
    base.setup("fit")
    assert len(dm.train_set) == 50 and torch.bincount(dm.train_set.labels).tolist() == [10] * 5
    images, labels = raw["train"]
    first = torch.cat([torch.nonzero(labels == c).flatten()[:10] for c in dm.classes]).sort().values
    assert torch.equal(dm.train_set.images, images[first])
    torch.testing.assert_close(dm.train_set.mean, base.train_set.mean, atol=0, rtol=0)
    assert len(dm.val_set) == 5000


def test_root_may_be_any_folder_of_idx_files(tmp_path: Path) -> None:
    """A folder holding the four IDX files flat is read directly."""
    for path in Path(DEBIAN_DIR).glob("*.gz"):
        (tmp_path / path.name).symlink_to(path)
    dm = FashionMNISTHalf(root=str(tmp_path), split="whole", half="all")
    dm.setup("fit")
    assert len(dm.train_set) == 60_000 and len(dm.val_set) == 10_000


def test_global_batch_must_divide() -> None:
    """The global batch is divided by the world size, with an error when it does not divide."""
    dm = FashionMNISTHalf(batch_size=250)
    dm.trainer = type("FakeTrainer", (), {"world_size": 5, "global_rank": 0})()
    dm.setup("fit")
    assert dm.train_dataloader().batch_size == 50
    dm.trainer.world_size = 3
    with pytest.raises(ValueError, match="250 does not divide across 3 processes"):
        dm.setup("fit")


class CountingValidator(LightningModule):
    """Counts the validation images and sums their labels on each rank; logs the totals over ranks.

    Plain ints, not torchmetrics states: ``ddp_spawn`` would put tensors made in ``__init__`` in memory
    shared by all ranks.
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.count = self.label_sum = 0

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        _, labels = batch
        self.count += len(labels)
        self.label_sum += int(labels.sum())

    def on_validation_epoch_end(self) -> None:
        count, label_sum = self.all_gather(torch.tensor([self.count, self.label_sum])).reshape(-1, 2).sum(0)
        self.log_dict({"count": count.float(), "label_sum": label_sum.float()})


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_ddp_validation_counts_every_image_exactly_once() -> None:
    """Under real DDP on 3 CPU processes (5000 images: a padding sampler would add one), validation sees
    each image exactly once."""
    dm = FashionMNISTHalf(split="random0", half="A", batch_size=150)
    trainer = Trainer(
        accelerator="cpu",
        devices=3,
        strategy="ddp_spawn",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    (metrics,) = trainer.validate(CountingValidator(), datamodule=dm)
    assert metrics["count"] == 5000
    assert metrics["label_sum"] == 1000 * sum(range(5))
