"""ImageFolderHalves on generated image folders: splits three ways, the hold-out, preprocessing, unreadable files,
and each error it gives before training (naming the file, class or setting)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch
from torchvision.io import encode_png

from datamodules import ImageFolderHalves, UnreadableImageWarning
from datamodules.demo_folder import DEMO_CLASSES, write_demo_folder
from datamodules.split_files import file_splits, read_split_file
from datamodules.splits import random_halves

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = sorted(DEMO_CLASSES)  # bus car cat dog horse owl ship truck


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo folder, 6 images per class (do not modify it: copy it)."""
    return write_demo_folder(tmp_path_factory.mktemp("demo"), images_per_class=6)


@pytest.fixture
def copy(demo: Path, tmp_path: Path) -> Path:
    """A copy of the demo folder to change."""
    return Path(shutil.copytree(demo, tmp_path / "images"))


def _module(root: Path, **kwargs) -> ImageFolderHalves:
    defaults = dict(batch_size=8, num_workers=0, preset="small", cache_dir=str(root.parent / f"cache_{root.name}"))
    return ImageFolderHalves(str(root), **{**defaults, **kwargs})


def test_three_kinds_of_split(demo: Path, tmp_path: Path) -> None:
    """A seeded random split, an explicit list (A alone or both halves) and a grouping that keeps super-classes
    whole (halves named after two super-classes; A/B by the seed's draw over more)."""
    files = {"listed": str(demo / "half_a.txt"), "superclass": str(demo / "superclasses.csv")}
    both = tmp_path / "both.yaml"
    both.write_text("near: [cat, dog, owl]\nfar: [bus, car, horse, ship, truck]\n")
    four = tmp_path / "four.yaml"  # class -> one of four super-classes
    four.write_text("".join(f"{c}: g{i // 2}\n" for i, c in enumerate(CLASSES)))
    splits = file_splits(CLASSES, {**files, "both": str(both), "four": str(four)})
    a, b = random_halves(8, 2)
    assert splits.classes("random2", "A") == a and splits.classes("random2", "B") == b
    names = lambda split, half: {CLASSES[i] for i in splits.classes(split, half)}  # noqa: E731
    assert names("listed", "A") == {"cat", "dog", "bus", "car"} and names("listed", "B") == {
        "horse",
        "owl",
        "ship",
        "truck",
    }
    assert splits.halves("superclass") == ("animal", "vehicle")
    assert names("superclass", "animal") == {"cat", "dog", "horse", "owl"}
    assert names("both", "near") == {"cat", "dog", "owl"}
    first, _ = random_halves(4, 0)
    assert names("four", "A") == {c for i, c in enumerate(CLASSES) if i // 2 in first}  # whole super-classes
    dm = _module(demo, split="superclass", half="vehicle", split_files=files)
    assert dm.num_classes == 4 and dm.class_names == ["bus", "car", "ship", "truck"]


def test_holdout_is_seeded_per_class_and_disjoint(demo: Path) -> None:
    """One folder: val_fraction of each class held out, the same images whichever half reads the class."""
    whole = _module(demo, split="whole", half="all", val_fraction=0.34)
    half = _module(demo, split="random0", half="A", val_fraction=0.34)
    for dm in (whole, half):
        dm.setup("fit")
    train, val = {p for p, _ in whole.train_set.samples}, {p for p, _ in whole.val_set.samples}
    assert not train & val and len(train | val) == 48 and len(val) == 16  # 2 of each class's 6
    assert {p for p, _ in half.val_set.samples} <= val
    other = _module(demo, split="whole", half="all", val_fraction=0.34, holdout_seed=1)
    other.setup("validate")
    assert {p for p, _ in other.val_set.samples} != val


def test_train_and_val_folders(tmp_path: Path) -> None:
    """root/train and root/val: no hold-out, each subset read from its own folder."""
    root = write_demo_folder(tmp_path / "tv", images_per_class=8, train_val=True)
    dm = _module(root, split="random1", half="B")
    dm.setup("fit")
    assert len(dm.train_set) == 4 * 8 and len(dm.val_set) == 4 * 2
    assert all("/val/" in path for path, _ in dm.val_set.samples)


def test_mixed_sizes_give_one_batch_shape_and_two_kinds_of_mean(demo: Path) -> None:
    """32x32 PNGs and 40x48 JPEGs warp to one size; the per-pixel mean is the paper's, the per-channel one is its
    average over pixels."""
    pixel, channel = _module(demo), _module(demo, mean="channel")
    for dm in (pixel, channel):
        dm.setup("fit")
    images, labels = next(iter(pixel.train_dataloader()))
    assert images.shape == (8, 3, 28, 28) and labels.dtype == torch.int64
    assert (pixel.in_channels, pixel.input_size) == (3, 28)
    mean = pixel.mean_image()
    assert mean.shape == (3, 32, 32) and mean.std((1, 2)).max() > 1  # stripes: the mean varies across pixels
    torch.testing.assert_close(channel.subtracted_mean(), mean.mean((1, 2), keepdim=True).expand(3, 32, 32))
    assert torch.equal(channel.collate_fn.mean, channel.subtracted_mean())
    large = _module(demo, preset="large")
    assert (large.image_size, large.input_size) == (256, 227)


def test_grey_images_and_channels_setting(copy: Path) -> None:
    """A grey folder trains on one channel; a folder of mixed channel counts is refused, naming a file of each
    count, until data.channels says how many to read."""
    grey = copy.parent / "grey"
    for name in CLASSES:
        (grey / name).mkdir(parents=True)
        for j in range(3):
            image = torch.full((1, 20, 20), 10 * j + CLASSES.index(name), dtype=torch.uint8)
            (grey / name / f"{j}.png").write_bytes(encode_png(image).numpy().tobytes())
    dm = _module(grey, split="whole", half="all")
    assert dm.in_channels == 1
    dm.setup("fit")
    assert next(iter(dm.val_dataloader()))[0].shape[1] == 1

    odd = copy / "cat" / "grey.png"
    odd.write_bytes((grey / "cat" / "0.png").read_bytes())
    with pytest.raises(
        ValueError,
        match=r"mixed channel counts \(1 channel\(s\): 1 file\(s\), e\.g\. .*grey\.png; "
        r"3 channel\(s\).*Set data\.init_args\.channels",
    ):
        _module(copy)
    dm = _module(copy, channels=3)
    dm.setup("validate")
    assert next(iter(dm.val_dataloader()))[0].shape[1] == 3


def test_unreadable_files_are_skipped_and_counted(copy: Path) -> None:
    """A corrupt file is left out of the batches with a warning naming it, and counted."""
    bad = copy / "cat" / "cat_999.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    dm = _module(copy, split="whole", half="all", batch_size=64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnreadableImageWarning)
        dm.setup("fit")
        seen = sum(len(labels) for _, labels in dm.train_dataloader()) + sum(
            len(labels) for _, labels in dm.val_dataloader()
        )
    assert seen == 48 and sum(dm.skipped_images.values()) == 1
    assert any(str(bad) in str(w.message) for w in caught if w.category is UnreadableImageWarning)


def test_empty_class_folder_is_named(copy: Path) -> None:
    """An empty class folder fails before training, naming the folder."""
    (copy / "zebra").mkdir()
    with pytest.raises(
        ValueError,
        match=r"class folder .*zebra holds no image file .*add images, or delete the "
        r"folder",
    ):
        _module(copy)


def test_class_in_split_file_missing_from_folder_is_named(copy: Path, tmp_path: Path) -> None:
    """A split file naming a class the folder lacks fails, naming the file and the class."""
    listed = tmp_path / "a.txt"
    listed.write_text("cat\ndog\nunicorn\n")
    with pytest.raises(
        ValueError,
        match=r"split file .*a\.txt names 1 class\(es\) that are not class folders of "
        r"the data: unicorn\. Fix the names",
    ):
        _module(copy, split="listed", split_files={"listed": str(listed)})
    shutil.rmtree(copy / "owl")
    with pytest.raises(ValueError, match=r"superclasses\.csv names 1 class\(es\) .*: owl"):
        _module(copy, split_files={"superclass": str(copy / "superclasses.csv")})


def test_half_with_fewer_than_two_classes_is_refused(copy: Path, tmp_path: Path) -> None:
    """A half of one class cannot train a classifier: refused for a file split and for a random split of 3."""
    listed = tmp_path / "a.txt"
    listed.write_text("cat\n")
    with pytest.raises(
        ValueError,
        match=r"half 'A' of split 'one' has 1 class\(es\) \(cat\): a half needs at least 2"
        r".*move classes into it in .*a\.txt",
    ):
        _module(copy, split="one", half="B", split_files={"one": str(listed)})
    for name in CLASSES[3:]:
        shutil.rmtree(copy / name)
    with pytest.raises(ValueError, match=r"half 'A' of split 'random0' has 1 class.*random split needs 4 or more"):
        _module(copy)


def test_val_classes_differing_from_train_are_named(tmp_path: Path) -> None:
    """train/ and val/ must hold the same class folders: the differences are listed."""
    root = write_demo_folder(tmp_path / "tv", images_per_class=4, train_val=True)
    shutil.move(root / "val" / "owl", root / "val" / "owls")
    with pytest.raises(
        ValueError,
        match=r"classes of .*val differ from those of .*train: only in train: \['owl'\]; "
        r"only in val: \['owls'\]\. Give both the same class folders",
    ):
        _module(root)


def test_changed_split_file_is_refused(copy: Path) -> None:
    """A run that recorded its split file's sha256 refuses the file once it changed, naming it."""
    files = {"superclass": str(copy / "superclasses.csv")}
    dm = _module(copy, split="superclass", half="animal", split_files=files)
    recorded = dm.resolved()["split_checksums"]
    _module(copy, split="superclass", half="animal", split_files=files, split_checksums=recorded)
    groups = copy / "superclasses.csv"
    groups.write_text(groups.read_text().replace("owl,animal", "owl,vehicle"))
    with pytest.raises(
        ValueError,
        match=r"split file .*superclasses\.csv \(split 'superclass'\) changed since its "
        r"networks were trained.*Restore the file",
    ):
        _module(copy, split="superclass", half="animal", split_files=files, split_checksums=recorded)


def test_split_file_errors_say_what_to_do(tmp_path: Path) -> None:
    """Classes in two halves or in none, a missing super-class, an unknown format: each named."""
    cases = {
        "two.yaml": ("A: [cat, dog]\nB: [dog, bus]\n", r"puts class 'dog' in both halves A and B"),
        "none.yaml": ("A: [cat, dog]\nB: [bus]\n", r"leaves 5 class\(es\) in neither half"),
        "groups.csv": ("cat,animal\ndog,animal\n", r"gives no super-class to 6 class\(es\)"),
        "split.xlsx": ("", r"unknown format '\.xlsx'"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=message):
            read_split_file(tmp_path / name, CLASSES)
    with pytest.raises(ValueError, match=r"'random5' cannot name a file's split"):
        file_splits(CLASSES, {"random5": str(tmp_path / "two.yaml")})
