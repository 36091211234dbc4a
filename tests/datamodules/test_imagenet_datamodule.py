"""ImageNetHalf on a generated ILSVRC2012 tree, the caffe preset, unreadable images, and the prepare command."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

import datamodules.folder
import datamodules.imagenet
from datamodules import ImageNetHalf, SkippedImagesLogger, UnreadableImageWarning
from datamodules.batches import CaffeCollate, JpegBatch, crop_windows
from datamodules.corrupt import SkipCounter, drop_unreadable
from datamodules.folder_dataset import HalfImageFolder
from datamodules.image_codecs import decode_ppm, decode_rgb, encode_ppm, read_rgb
from datamodules.imagenet_lists import imagenet_wnids
from datamodules.prepare import BAD_LIST, check_images, extract_train, main
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD, CaffeCrop, CaffeTransform, Warp
from tests.helpers import REPO
from tests.helpers.fake_data import fake_colour, make_fake_imagenet, make_ilsvrc_archives

pytestmark = pytest.mark.usefixtures("one_thread")

JPEG_TOLERANCE = 2.0  # a solid-colour JPEG decodes to within a level or two of its colour


def _module(root: Path, cache: Path, **kwargs) -> ImageNetHalf:
    defaults = dict(split="random0", half="A", batch_size=32, num_workers=0, cache_dir=str(cache))
    return ImageNetHalf(root=str(root), **{**defaults, **kwargs})


def _fake_trainer(world_size: int, rank: int = 0) -> SimpleNamespace:
    return SimpleNamespace(world_size=world_size, global_rank=rank, callbacks=[])


@pytest.mark.parametrize(
    ("split", "half", "num_classes"),
    [
        ("random0", "A", 500),
        ("random3", "B", 500),
        ("natman", "manmade", 551),
        ("natman", "natural", 449),
        ("whole", "all", 1000),
    ],
)
def test_num_classes_is_known_at_construction(split: str, half: str, num_classes: int) -> None:
    """``num_classes`` (linked to the model by the CLI), ``input_size`` and ``in_channels`` need no data."""
    dm = ImageNetHalf(root="/nonexistent", split=split, half=half)
    assert (dm.num_classes, dm.input_size, dm.in_channels) == (num_classes, 227, 3)
    assert ImageNetHalf(preprocess="torchvision").input_size == 224


def test_missing_root_shows_layout_and_prepare_command(tmp_path: Path) -> None:
    """A missing root fails with the expected layout and the command that makes it."""
    with pytest.raises(FileNotFoundError, match=r"(?s)train/n01440764/\*\.JPEG.*transferability-prepare-imagenet"):
        _module(tmp_path / "nowhere", tmp_path).setup("fit")


def test_missing_wnid_folder_is_named(tmp_path: Path) -> None:
    """A class folder missing from val fails naming the wnid."""
    for subset in ("train", "val"):
        for wnid in imagenet_wnids():
            (tmp_path / subset / wnid).mkdir(parents=True)
    (tmp_path / "val" / "n01443537").rmdir()
    with pytest.raises(FileNotFoundError, match=r"1 class folder\(s\) missing from .*val: n01443537\."):
        _module(tmp_path, tmp_path, split="whole", half="all").setup("fit")


def test_labels_are_reindexed_in_sorted_class_order(fake_imagenet: Path, tmp_path: Path) -> None:
    """Label k of a half is its k-th smallest original class index, for every image."""
    dm = _module(fake_imagenet, tmp_path, split="random1", half="B")
    dm.setup("fit")
    wnids = imagenet_wnids()
    for dataset, per_class in ((dm.train_set, 2), (dm.val_set, 1)):
        assert len(dataset) == 500 * per_class
        for path, label in dataset.samples:
            assert dm.classes[label] == wnids.index(Path(path).parent.name)


def test_caffe_batches_are_images_minus_the_mean(fake_imagenet: Path, tmp_path: Path) -> None:
    """Caffe preset: 227 crops on the 0-255 scale minus the training half's mean image; int64 labels."""
    dm = _module(fake_imagenet, tmp_path, split="random2", half="B")
    dm.setup("fit")
    colours = torch.tensor([fake_colour(c, j) for c in dm.classes for j in (0, 1)], dtype=torch.float32)
    mean = dm.mean_image()
    assert mean.shape == (3, 256, 256)
    torch.testing.assert_close(mean, colours.mean(0)[:, None, None].expand(3, 256, 256), atol=1.0, rtol=0)

    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (32, 3, 227, 227) and images.dtype == torch.float32 and labels.dtype == torch.int64
    for image, label in zip(images, labels):
        expected = torch.tensor(fake_colour(dm.classes[label], 0, "val"), dtype=torch.float32)[:, None, None]
        assert (image - (expected - mean[:, :227, :227])).abs().max() <= JPEG_TOLERANCE

    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (32, 3, 227, 227) and images.dtype == torch.float32
    for image, label in zip(images, labels):
        candidates = [torch.tensor(fake_colour(dm.classes[label], j)) - mean[:, 0, 0] for j in (0, 1)]
        assert min((image - c[:, None, None]).abs().max() for c in candidates) <= JPEG_TOLERANCE


def test_device_preprocess_matches_the_loader_path(fake_imagenet: Path, tmp_path: Path) -> None:
    """device_preprocess: uint8 256x256 batches leave the loader; the hook gives the caffe preset's batches."""
    loader = _module(fake_imagenet, tmp_path, split="random2", half="B", pixel_scale=0.5)
    device = _module(fake_imagenet, tmp_path, split="random2", half="B", pixel_scale=0.5, device_preprocess=True)
    for dm in (loader, device):
        dm.setup("fit")
    raw, labels = next(iter(device.val_dataloader()))
    assert raw.dtype == torch.uint8 and raw.shape == (32, 3, 256, 256)
    images, same_labels = device.on_after_batch_transfer((raw, labels), 0)  # no trainer: evaluation, centre crop
    expected, expected_labels = next(iter(loader.val_dataloader()))
    assert torch.equal(same_labels, expected_labels)
    torch.testing.assert_close(images, expected, rtol=0, atol=0)

    device.trainer = SimpleNamespace(training=True)  # training: random crops and mirrors of the same images
    raw, labels = next(iter(device.train_dataloader()))
    images, _ = device.on_after_batch_transfer((raw, labels), 0)
    assert images.shape == (32, 3, 227, 227) and images.dtype == torch.float32
    mean = device.mean_image()
    for image, label in zip(images, labels):
        candidates = [torch.tensor(fake_colour(device.classes[label], j)) - mean[:, 0, 0] for j in (0, 1)]
        assert min((image / 0.5 - c[:, None, None]).abs().max() for c in candidates) <= JPEG_TOLERANCE


def test_decode_on_device_matches_the_loader_path(fake_imagenet: Path, tmp_path: Path) -> None:
    """decode_on_device: the loader sends JPEG bytes (kept on the host), decoding and warping happen on the
    batch's device (here the CPU's decoder, nvJPEG on a GPU); the batches equal the loader path's."""
    loader = _module(fake_imagenet, tmp_path, split="random1", half="A")
    device = _module(fake_imagenet, tmp_path, split="random1", half="A", device_preprocess=True, decode_on_device=True)
    for dm in (loader, device):
        dm.setup("fit")
    batch = next(iter(device.val_dataloader()))
    assert isinstance(batch, JpegBatch) and batch.data[0].dtype == torch.uint8 and batch.data[0].dim() == 1
    moved = device.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    images, labels = device.on_after_batch_transfer(moved, 0)
    expected, expected_labels = next(iter(loader.val_dataloader()))
    assert torch.equal(labels, expected_labels)
    torch.testing.assert_close(images, expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="decode_on_device needs device_preprocess"):
        ImageNetHalf(decode_on_device=True)


def test_device_crop_equals_the_loader_crop() -> None:
    """The batched on-device crop, mirror and mean equal CaffeTransform + CaffeCollate at the same offsets."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8, generator=generator)
    mean = torch.rand(3, 16, 16, generator=generator) * 255
    top, left, mirror = torch.tensor([0, 2, 6]), torch.tensor([1, 0, 6]), torch.tensor([False, True, True])
    samples = []
    for i in range(3):
        pixels = images[i][:, top[i] : top[i] + 9, left[i] : left[i] + 9]
        samples.append(
            (CaffeCrop(pixels.flip(-1) if mirror[i] else pixels, int(top[i]), int(left[i]), bool(mirror[i])), i)
        )
    expected, _ = CaffeCollate(mean, 0.5)(samples)
    torch.testing.assert_close(crop_windows(images, mean, top, left, mirror, 9, 0.5), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="device_preprocess applies to preprocess 'caffe' only"):
        ImageNetHalf(preprocess="torchvision", device_preprocess=True)


def test_pixel_scale_multiplies_the_centred_pixels(fake_imagenet: Path, tmp_path: Path) -> None:
    """``pixel_scale`` is Caffe's ``transform_param.scale``: a factor after the mean subtraction."""
    batches = []
    for scale in (1.0, 0.25):
        dm = _module(fake_imagenet, tmp_path, pixel_scale=scale)
        dm.setup("validate")
        batches.append(next(iter(dm.val_dataloader()))[0])
    torch.testing.assert_close(batches[1], batches[0] * 0.25)
    with pytest.raises(ValueError, match="caffe preprocessing"):
        ImageNetHalf(preprocess="torchvision", pixel_scale=0.5)


def test_caffe_crop_offsets_and_mirror_follow_caffe() -> None:
    """Training crops start at 0..28 (Caffe's ``Rand() % 29``) and are mirrored half the time, with the mean
    window cut and mirrored with them; evaluation takes the unmirrored crop at offset 14."""
    torch.manual_seed(0)
    x = torch.arange(256)
    image = torch.stack([x.expand(256, 256), x[:, None].expand(256, 256), torch.zeros(256, 256, dtype=torch.int64)])
    image = image.to(torch.uint8)
    collate = CaffeCollate(image.float() / 2)  # a mean cut at the wrong place would not halve the crop
    seen = set()
    for train in [True] * 400 + [False]:
        out = collate([(CaffeTransform(256, 227, train=train)(image), 0)])[0][0]
        mirror = bool(out[0, 0, 1] < out[0, 0, 0])
        left, top = int(2 * out[0, 0, -1 if mirror else 0]), int(2 * out[1, 0, 0])
        window = image[:, top : top + 227, left : left + 227].float() / 2
        torch.testing.assert_close(out, window.flip(-1) if mirror else window, atol=0, rtol=0)
        seen.add((top, left, mirror, train))
    train_seen = [s for s in seen if s[3]]
    assert {s[0] for s in train_seen} == set(range(29)) == {s[1] for s in train_seen}
    assert {s[2] for s in train_seen} == {False, True}
    assert (14, 14, False, False) in seen


def test_mean_half_takes_the_other_halfs_mean(fake_imagenet: Path, tmp_path: Path) -> None:
    """A transfer run can subtract its base half's mean image, as the paper's did."""
    base = _module(fake_imagenet, tmp_path, half="B")
    transfer = _module(fake_imagenet, tmp_path, half="A", mean_half="B")
    own = _module(fake_imagenet, tmp_path, half="A")
    transfer.setup("fit")
    torch.testing.assert_close(transfer.collate_fn.mean, base.mean_image(), atol=0, rtol=0)
    assert (own.mean_image() - base.mean_image()).abs().max() > 1


def test_mean_image_is_cached_once(fake_imagenet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``prepare_data`` computes the mean into the cache; later modules only read it."""
    _module(fake_imagenet, tmp_path, split="random3").prepare_data()
    assert len(list(tmp_path.glob("mean_random3_A_256px_*.pt"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached mean")

    monkeypatch.setattr(datamodules.folder, "compute_mean_image", fail)
    _module(fake_imagenet, tmp_path, split="random3").setup("fit")


def test_images_per_class_keeps_the_first_images(fake_imagenet: Path, tmp_path: Path) -> None:
    """Reduced data: the first N training images (sorted names) of each class; val untouched."""
    dm = _module(fake_imagenet, tmp_path, images_per_class=1)
    dm.setup("fit")
    assert len(dm.train_set) == 500 and len(dm.val_set) == 500
    assert all(path.endswith("_0.JPEG") for path, _ in dm.train_set.samples)
    assert sorted(dm.train_set.targets) == list(range(500))


def test_torchvision_preset(fake_imagenet: Path, tmp_path: Path) -> None:
    """The torchvision preset: 224 crops normalised with the ImageNet mean and std; no mean image."""
    dm = _module(fake_imagenet, tmp_path, preprocess="torchvision", split="natman", half="natural")
    dm.setup("fit")
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (32, 3, 224, 224) and labels.dtype == torch.int64
    for image, label in zip(images, labels):
        colour = torch.tensor(fake_colour(dm.classes[label], 0, "val")) / 255
        expected = (colour - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
        assert (image - expected[:, None, None]).abs().max() < 0.05
    assert next(iter(dm.train_dataloader()))[0].shape == (32, 3, 224, 224)
    assert not list(tmp_path.glob("mean_*"))


def test_global_batch_is_divided_across_processes(fake_imagenet: Path, tmp_path: Path) -> None:
    """The global batch size is split over the world size; a remainder is an error."""
    dm = _module(fake_imagenet, tmp_path, batch_size=256)
    dm.trainer = _fake_trainer(world_size=4)
    dm.setup("fit")
    assert dm.per_device_batch_size == 64 and dm.train_dataloader().batch_size == 64
    dm.trainer = _fake_trainer(world_size=3)
    with pytest.raises(ValueError, match="256 does not divide across 3 processes"):
        dm.setup("fit")


@pytest.mark.slow
def test_validation_counts_every_image_once_under_ddp(fake_imagenet: Path, tmp_path: Path) -> None:
    """Each val image goes to exactly one rank (no padding), through a sampler Lightning keeps."""
    dm = _module(fake_imagenet, tmp_path, batch_size=30)
    seen: list[int] = []
    for rank in range(3):
        dm.trainer = _fake_trainer(world_size=3, rank=rank)
        dm.setup("validate")
        loader = dm.val_dataloader()
        assert isinstance(loader.sampler, DistributedSampler)  # Lightning only injects its own otherwise
        seen += list(loader.sampler)
        assert sum(len(labels) for _, labels in loader) == len(list(loader.sampler))
    assert sorted(seen) == list(range(len(dm.val_set))) == list(range(500))


def test_skipped_images_logger_is_added_once(fake_imagenet: Path, tmp_path: Path) -> None:
    """``setup`` adds one logger of skipped images to the trainer's callbacks, not one per call."""
    dm = _module(fake_imagenet, tmp_path)
    dm.trainer = _fake_trainer(world_size=1)
    dm.setup("fit")
    dm.setup("validate")
    assert sum(isinstance(cb, SkippedImagesLogger) for cb in dm.trainer.callbacks) == 1


def _corrupt(root: Path, wnids: list[str]) -> list[Path]:
    """Truncate the train image of the first wnid and replace the second's with text."""
    truncated, garbage = (next((root / "train" / w).iterdir()) for w in wnids)
    truncated.write_bytes(truncated.read_bytes()[:300])
    garbage.write_text("not an image")
    return [truncated, garbage]


class CountingModel(LightningModule):
    """A linear probe on the mean colour that counts the training images it sees."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(3, num_classes)
        self.seen = 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        self.seen += len(labels)
        return F.cross_entropy(self.head(images.mean((2, 3))), labels)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        pass

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.parametrize("on_device", [False, True], ids=["loader", "decode_on_device"])
def test_unreadable_images_are_skipped_warned_and_logged_per_epoch(tmp_path: Path, on_device: bool) -> None:
    """A truncated and a non-image file are skipped mid-epoch with warnings naming them, and the epoch
    logs ``data/skipped_train`` = 2; training goes on with the other images (decoded by the loader, or
    on the device)."""
    root = make_fake_imagenet(tmp_path / "imagenet", train_per_class=1, val_per_class=1)
    dm = _module(root, tmp_path, batch_size=64, device_preprocess=on_device, decode_on_device=on_device)
    bad = _corrupt(root, dm.wnids[3:5])
    model = CountingModel(dm.num_classes)
    trainer = Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnreadableImageWarning)
        trainer.fit(model, datamodule=dm)
    messages = "\n".join(str(w.message) for w in caught if w.category is UnreadableImageWarning)
    assert all(str(path) in messages for path in bad)
    assert model.seen == 500 - 2
    assert trainer.callback_metrics["data/skipped_train"].item() == 2
    assert trainer.callback_metrics["data/skipped_val"].item() == 0


def test_skipped_images_are_counted_across_worker_processes(tmp_path: Path) -> None:
    """The skip count adds up over DataLoader workers; the collate drops the unreadable samples."""
    root = make_fake_imagenet(tmp_path, train_per_class=1, val_per_class=0)
    wnids = list(imagenet_wnids()[:40])
    _corrupt(root, wnids[:2])
    dataset = HalfImageFolder(root / "train", wnids, Warp(8), skipped=SkipCounter())
    loader = DataLoader(dataset, batch_size=8, num_workers=2, collate_fn=lambda s: drop_unreadable(s))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableImageWarning)
        kept = sum(len(batch) for batch in loader)
    assert (kept, dataset.skipped.total) == (38, 2)


def test_a_batch_of_only_unreadable_images_is_an_error() -> None:
    """A batch in which nothing decodes points at the data: it fails loudly."""
    with pytest.raises(RuntimeError, match="all 3 images of a batch failed to decode"):
        drop_unreadable([None, None, None])


def test_prepare_command_on_tiny_archives(tmp_path: Path) -> None:
    """The prepare command unpacks the train tar of class tars and the flat val tar into the layout,
    labels val by the shipped list, writes the 256x256 copy, and lists the image that does not decode."""
    train_tar, val_tar = make_ilsvrc_archives(tmp_path / "archives")
    root, resized = tmp_path / "imagenet", tmp_path / "imagenet_256"
    (root / "val" / imagenet_wnids()[7]).mkdir(parents=True)
    broken = root / "val" / imagenet_wnids()[7] / "ILSVRC2012_val_99999999.JPEG"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")

    status = main(
        [str(root), "--train", str(train_tar), "--val", str(val_tar), "--resized", str(resized), "--workers", "2"]
    )

    assert status == 1  # because of the broken image
    assert (root / BAD_LIST).read_text().startswith(f"{broken.relative_to(root)}\t")
    for subset in ("train", "val"):
        assert sorted(p.name for p in (root / subset).iterdir()) == list(imagenet_wnids())
    assert (root / "train" / "n01440764" / "n01440764_1.JPEG").is_file()
    assert (root / "val" / "n01440764" / "ILSVRC2012_val_00000293.JPEG").is_file()  # class 0 in the shipped list
    copies = sorted(resized.glob("*/*/*.JPEG"))
    assert len(copies) == 2000 and not (resized / broken.relative_to(root)).exists()
    assert read_rgb(str(copies[0])).shape == (3, 256, 256)
    assert _module(resized, tmp_path).check_layout() is None
    assert extract_train(train_tar, root / "train") == 0  # a rerun skips the classes already there


def test_ppm_round_trip_and_bad_ppm_files() -> None:
    """A binary PPM decodes to exactly the pixels written (header comments allowed); bad ones raise
    RuntimeError, which the data module counts as an unreadable image."""
    image = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    data = encode_ppm(image)
    assert data.startswith(b"P6\n7 5\n255\n") and len(data) == 11 + 3 * 5 * 7
    assert torch.equal(decode_rgb(torch.frombuffer(bytearray(data), dtype=torch.uint8)), image)
    commented = b"P6 # made by hand\n7\n# height next\n5 255\n" + data[11:]
    assert torch.equal(decode_ppm(torch.frombuffer(bytearray(commented), dtype=torch.uint8)), image)
    for bad, message in (
        (data[:-1], "truncated PPM"),
        (b"P6\n7 5\n65535\n" + data[11:], "maxval 65535"),
        (b"P6\nseven 5\n255\n", "unreadable header"),
    ):
        with pytest.raises(RuntimeError, match=message):
            decode_rgb(torch.frombuffer(bytearray(bad), dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"uint8 \[3, H, W\]"):
        encode_ppm(image.float())


def test_ppm_copy_gives_the_same_batches_as_the_jpegs(fake_imagenet: Path, tmp_path: Path) -> None:
    """The raw PPM copy holds the warped pixels exactly: its caffe batches (mean image, centre crops, seeded
    random crops) equal those of the original JPEG tree bit for bit. A rerun writes only the missing copies;
    decode_on_device refuses a PPM tree."""
    copy = tmp_path / "ppm"
    assert check_images(fake_imagenet, copy, size=32, workers=2, fmt="ppm") == []
    assert len(list(copy.glob("val/*/*.ppm"))) == 1000 and not list(copy.glob("*/*/*.JPEG"))
    written = {path: path.stat().st_mtime_ns for path in copy.glob("*/*/*.ppm")}
    (copy / "val" / imagenet_wnids()[5] / f"{imagenet_wnids()[5]}_0.ppm").unlink()  # as if killed before it
    assert check_images(fake_imagenet, copy, size=32, workers=2, fmt="ppm") == []  # the rerun resumes
    rewritten = {path: path.stat().st_mtime_ns for path in copy.glob("*/*/*.ppm")}
    assert rewritten.keys() == written.keys()
    assert [path.parent.name for path in written if written[path] != rewritten[path]] == [imagenet_wnids()[5]]
    sized = dict(split="random3", half="A", image_size=32, crop_size=27)
    jpegs, ppms = _module(fake_imagenet, tmp_path / "a", **sized), _module(copy, tmp_path / "b", **sized)
    for dm in (jpegs, ppms):
        dm.setup("fit")
    assert torch.equal(jpegs.mean_image(), ppms.mean_image())
    batches = []
    for dm in (jpegs, ppms):
        torch.manual_seed(3)
        batches.append((next(iter(dm.val_dataloader())), next(iter(dm.train_dataloader()))))
    for expected, got in zip(*batches):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="raw PPM images .* set data.decode_on_device false"):
        _module(copy, tmp_path / "b", **sized, device_preprocess=True, decode_on_device=True).setup("fit")
    with pytest.raises(SystemExit):
        main([str(fake_imagenet), "--resized-format", "ppm"])  # the format of a copy that is not asked for


@pytest.mark.parametrize("device_preprocess", [False, True])
def test_cli_fit_swaps_in_imagenet(
    fake_imagenet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device_preprocess: bool
) -> None:
    """The real CLI fits on an ImageNet half by swapping the data class of the Fashion-MNIST config (plus the
    conv1 kernel for 227 pixels); ``num_classes``, ``in_channels`` and ``input_size`` follow the data."""
    from experiments.cli import run_cli as cli_main

    monkeypatch.chdir(tmp_path)
    config = REPO / "experiments" / "configs" / "fmnist" / "base.yaml"
    cli = cli_main(
        [
            "fit",
            "--config",
            str(config),
            "--data",
            "datamodules.ImageNetHalf",
            "--data.init_args.root",
            str(fake_imagenet),
            "--data.init_args.split",
            "natman",
            "--data.init_args.half",
            "natural",
            "--data.init_args.batch_size",
            "4",
            "--data.init_args.num_workers",
            "0",
            "--data.init_args.cache_dir",
            str(tmp_path / "cache"),
            "--model.num_outputs",
            "1000",
            "--data.init_args.device_preprocess",
            str(device_preprocess).lower(),
            "--model.conv1_kernel",
            "11",
            "--model.conv1_stride",
            "4",
            "--trainer.max_steps",
            "2",
            "--trainer.val_check_interval",
            "2",
            "--trainer.limit_val_batches",
            "2",
            "--trainer.logger",
            "false",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.default_root_dir",
            str(tmp_path / "run"),
        ]
    )
    assert cli.trainer.global_step == 2
    assert cli.model.hparams.num_classes == 449 == cli.datamodule.num_classes
    assert (cli.model.hparams.in_channels, cli.model.hparams.input_size) == (3, 227)
    metrics = cli.trainer.callback_metrics
    assert metrics["data/skipped_train"].item() == metrics["data/skipped_val"].item() == 0
