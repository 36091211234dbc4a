"""A torchvision-format weights file as a transfer base (``models.pretrained``): its tensors mapped to the stages,
copied bit for bit (batch-norm statistics included) by TransferCallback, a fused group and the CLI, the head left
new, a renamed or reshaped tensor refused by name, and the file's sha256 in the record and the logged config."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
import yaml
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor
from torchvision.models.vision_transformer import VisionTransformer

from callbacks.lineage import WandbLineage
from callbacks.transfer import TransferCallback
from datamodules.demo_folder import write_demo_folder
from experiments import cli, entry
from experiments.errors import InputFileError, SettingError
from models import BackboneClassifier
from models.backbones import ResNetStages, ViTStages
from models.base_file import load_base
from models.fused import FusedCell, FusedTransfer
from models.pretrained import is_torchvision_state, staged_state_dict, torchvision_names
from models.transfer import transfer, transferable_stages
from tests.helpers import REPO
from tests.helpers.run_dirs import run_dir
from tests.helpers.tiny_data import TinyData

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE: dict[str, Any] = dict(num_classes=4, in_channels=3, input_size=32)
RESNET: dict[str, Any] = dict(
    backbone="resnet18", backbone_options={"stem": "imagenet", "granularity": "stage"}, lr=0.05
)
# The project's small ViT with the settings of torchvision's VisionTransformer below.
VIT_OPTIONS: dict[str, Any] = dict(patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)
VIT: dict[str, Any] = dict(backbone="vit", backbone_options=VIT_OPTIONS)
TRAINER: dict[str, Any] = dict(
    accelerator="cpu",
    devices=1,
    max_steps=3,
    val_check_interval=3,
    enable_progress_bar=False,
    enable_model_summary=False,
    num_sanity_val_steps=0,
    enable_checkpointing=False,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def random_resnet18_state() -> dict[str, Tensor]:
    """torchvision's ResNet-18 (random init) with batch-norm statistics of its own: random, and counted."""
    generator = torch.Generator().manual_seed(7)
    state = torchvision.models.resnet18(weights=None).state_dict()
    for key, value in state.items():
        if key.endswith("running_mean"):
            state[key] = torch.randn(value.shape, generator=generator)
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=generator) + 0.5
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1234)
        elif key.endswith(".bias") and key.split(".")[-2].startswith("bn"):
            state[key] = torch.randn(value.shape, generator=generator)  # torchvision's zeros would hide a miss
    return state


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A torchvision ResNet-18 and a small torchvision ViT, each saved as its ``state_dict()``."""
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(3)
    vit = VisionTransformer(image_size=32, **VIT_OPTIONS).state_dict()
    vit["encoder.ln.weight"] = torch.full_like(vit["encoder.ln.weight"], 2.0)  # not the fresh LayerNorm's ones
    paths = {"resnet": root / "resnet18.pth", "vit": root / "vit.pth"}
    torch.save(random_resnet18_state(), paths["resnet"])
    torch.save(vit, paths["vit"])
    return paths


def network(kind: str, **changes: Any) -> BackboneClassifier:
    settings = RESNET if kind == "resnet" else VIT
    return BackboneClassifier(**{**settings, **SHAPE, **changes})


def file_tensors(path: Path, net: torch.nn.Module) -> dict[str, Tensor]:
    """The file's tensors under the staged names (spelled out by ``torchvision_names``, checked below)."""
    state = torch.load(path, weights_only=True)
    return {staged: state[name] for name, staged in torchvision_names(net).items()}


@pytest.mark.parametrize(
    ("arch", "options", "first", "last"),
    [
        (
            "resnet18",
            {"granularity": "block"},
            ("conv1.weight", "stem.conv1.weight"),
            ("layer4.1.bn2.running_var", "layer4_1.bn2.running_var"),
        ),
        (
            "resnet18",
            {"granularity": "stage"},
            ("bn1.num_batches_tracked", "stem.bn1.num_batches_tracked"),
            ("layer4.1.conv2.weight", "layer4.1.conv2.weight"),
        ),
        (
            "resnet50",
            {"granularity": "block"},
            ("layer1.0.downsample.1.running_mean", "layer1_0.downsample.1.running_mean"),
            ("layer4.2.conv3.weight", "layer4_2.conv3.weight"),
        ),
        (
            "vit_b_16",
            {},
            ("conv_proj.weight", "embed.conv_proj.weight"),
            ("encoder.layers.encoder_layer_11.mlp.3.bias", "block12.mlp.3.bias"),
        ),
    ],
)
def test_every_stage_tensor_of_the_shipped_backbones_is_mapped(
    arch: str, options: dict[str, Any], first: tuple[str, str], last: tuple[str, str]
) -> None:
    """torchvision's whole state dict maps onto the staged network's stages 1..n, buffers included, head dropped."""
    with torch.device("meta"):  # names and shapes only
        state = getattr(torchvision.models, arch)(weights=None).state_dict()
        net = ViTStages(arch, input_size=224) if arch.startswith("vit") else ResNetStages(arch, **options)
    staged = staged_state_dict(state, net)
    trunk = {key for key in net.state_dict() if key.split(".")[0] != "head"}
    assert set(staged) == trunk and all(staged[key] is state[name] for name, key in (first, last))
    assert is_torchvision_state(state, net) and not is_torchvision_state(net.state_dict(), net)
    dropped = set(state) - set(torchvision_names(net))
    assert dropped and all(name.startswith(("fc.", "heads.", "encoder.ln.")) for name in dropped)


@pytest.mark.parametrize("kind", ["resnet", "vit"])
def test_transfer_at_every_n_copies_stages_1_to_n_bit_for_bit(files: dict[str, Path], kind: str) -> None:
    """Stages 1..n equal the file's tensors (batch-norm statistics too); the other stages and the head stay new."""
    base, digest = load_base(str(files[kind]))
    net = network(kind).net
    for n in range(1, len(transferable_stages(net.stage_names)) + 1):
        fresh = network(kind, init_seed=n).net
        before = {key: value.clone() for key, value in fresh.state_dict().items()}
        record = transfer(fresh, n, "finetune", base, str(files[kind]), digest)
        expected = file_tensors(files[kind], fresh)
        copied = set(fresh.stage_names[:n])
        assert record.sha256 == sha256(files[kind]) and set(record.copied) == {
            key for key in expected if key.split(".")[0] in copied
        }
        for key, value in fresh.state_dict().items():
            if key.split(".")[0] in copied:
                assert torch.equal(value, expected[key]), f"n={n} {key}"
            else:  # the rest and the head (a ViT's final LayerNorm included) keep the new network's draw
                assert torch.equal(value, before[key]), f"n={n} {key}"


@pytest.mark.parametrize("kind", ["resnet", "vit"])
def test_frozen_stages_stay_the_files_through_training(files: dict[str, Path], kind: str, tmp_path: Path) -> None:
    """A frozen transfer at n=2 trained 3 steps: stages 1..2 are still the file's tensors (running statistics too),
    the next stage trained, the head is new; the file's sha256 is in the record, the lineage and the logged config."""
    seed_everything(0, verbose=False)
    module = network(kind)
    callback = TransferCallback(str(files[kind]), n=2)
    logger = CSVLogger(tmp_path, name="logs")
    trainer = Trainer(**TRAINER, default_root_dir=tmp_path, logger=logger, callbacks=[callback])
    callback.check(module)  # the CLI's pre-flight check: a dry run
    trainer.fit(module, datamodule=TinyData(num_samples=24, batch_size=8, image_size=32, channels=3, shuffle=True))
    expected = file_tensors(files[kind], module.net)
    state = module.net.state_dict()
    frozen = [key for key in state if key.split(".")[0] in module.net.stage_names[:2]]
    assert frozen and all(torch.equal(state[key], expected[key]) for key in frozen)
    assert not any(
        p.requires_grad for name in module.net.stage_names[:2] for p in getattr(module.net, name).parameters()
    )
    third = module.net.stage_names[2]
    assert any(not torch.equal(state[key], expected[key]) for key in state if key.startswith(f"{third}."))
    classifier = [m for m in module.net.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert classifier.out_features == 4  # the target's head, not the file's 1000-way one
    assert not any(key.startswith("head.") for key in callback.record.copied)
    digest = sha256(files[kind])
    assert callback.record.sha256 == digest == module.transfer_record.sha256
    assert WandbLineage.transfer_provenance(trainer, module)[0]["sha256"] == digest  # the input artifact's checksum
    logged = yaml.safe_load((Path(logger.log_dir) / "hparams.yaml").read_text())
    assert logged["transfer"]["sha256"] == digest and logged["transfer"]["base_checkpoint"] == str(files[kind])


def test_fused_group_copies_the_file_into_each_cell(files: dict[str, Path], tmp_path: Path) -> None:
    """FusedTransfer reads a torchvision file as TransferCallback does; a changed file (base_sha256) is refused."""
    cells = [FusedCell(n, str(tmp_path / f"n{n}"), seed=n) for n in (1, 3)]
    group = FusedTransfer(
        str(files["resnet"]),
        cells,
        **SHAPE,
        network=RESNET,
        network_class="models.BackboneClassifier",
        base_sha256=sha256(files["resnet"]),
    )
    for spec, cell in zip(cells, group.cells):
        expected = file_tensors(files["resnet"], cell.net)
        state = cell.net.state_dict()
        copied = [key for key in state if key.split(".")[0] in cell.net.stage_names[: spec.n]]
        assert copied and all(torch.equal(state[key], expected[key]) for key in copied)
        assert cell.transfer_record.sha256 == sha256(files["resnet"])
    with pytest.raises(ValueError, match=r"resnet18\.pth' has sha256 .*model\.init_args\.base_sha256.*changed"):
        FusedTransfer(
            str(files["resnet"]),
            cells,
            **SHAPE,
            network=RESNET,
            network_class="models.BackboneClassifier",
            base_sha256="0" * 64,
        )


def altered(files: dict[str, Path], tmp_path: Path, change: str) -> Path:
    """The ResNet file with one tensor renamed or reshaped."""
    state = torch.load(files["resnet"], weights_only=True)
    if change == "renamed":
        state["layer2.0.conv1.kernel"] = state.pop("layer2.0.conv1.weight")
    else:
        state["layer3.1.bn1.running_mean"] = torch.zeros(255)
    path = tmp_path / f"{change}.pth"
    torch.save(state, path)
    return path


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            "renamed",
            (
                r"lacks 1 tensor.*'layer2\.0\.conv1\.weight'.*1 tensor\(s\) it does not know"
                r".*'layer2\.0\.conv1\.kernel'"
            ),
        ),
        ("reshaped", r"'layer3\.1\.bn1\.running_mean': \(255,\) in the file, \(256,\) in this network"),
    ],
)
def test_a_renamed_or_reshaped_tensor_is_refused_by_name(
    files: dict[str, Path], tmp_path: Path, change: str, named: str
) -> None:
    """The pre-flight check names the file, the tensor and what is wrong with it, before anything trains."""
    path = altered(files, tmp_path, change)
    with pytest.raises(SettingError, match=rf"{change}\.pth.*{named}"):
        TransferCallback(str(path), n=1).check(network("resnet"))


@pytest.mark.parametrize(
    ("changes", "advice"),
    [
        (
            {"backbone_options": {"stem": "small", "granularity": "stage"}},
            r"3x3 conv1, the file's is 7x7: use model backbone_options\.stem imagenet",
        ),
        (
            {"in_channels": 1},
            r"The file's conv1 reads 3 input channel\(s\), the data has 1: .*data\.init_args\.channels 3",
        ),
    ],
)
def test_a_network_the_file_does_not_fit_is_told_what_to_change(
    files: dict[str, Path], changes: dict[str, Any], advice: str
) -> None:
    with pytest.raises(SettingError, match=rf"resnet18\.pth.*'conv1\.weight'.*{advice}"):
        TransferCallback(str(files["resnet"]), n=1).check(network("resnet", **changes))


def test_a_changed_file_is_refused_by_its_sha256(files: dict[str, Path]) -> None:
    with pytest.raises(InputFileError, match=r"resnet18\.pth' has sha256 .*transfer\.base_sha256.*changed"):
        TransferCallback(str(files["resnet"]), n=1, base_sha256="f" * 64).check(network("resnet"))


def test_cli_fit_from_a_weights_file(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`transferability fit --config experiments/configs/folder/resnet18.yaml --transfer.base_checkpoint
    resnet18.pth` on a generated image folder: stem and layer1 are the file's; a small stem is refused by name."""
    monkeypatch.setattr(sys, "argv", ["transferability"])
    images = write_demo_folder(tmp_path / "images", images_per_class=4)
    args = [
        "fit",
        "--config",
        str(REPO / "experiments/configs/folder/resnet18.yaml"),
        "--data.init_args.root",
        str(images),
        "--data.init_args.preset",
        "small",
        "--data.init_args.image_size",
        "null",
        "--data.init_args.crop_size",
        "null",
        "--data.init_args.num_workers",
        "0",
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.cache_dir",
        str(tmp_path / "cache"),
        "--trainer.max_steps",
        "2",
        "--trainer.val_check_interval",
        "2",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.num_sanity_val_steps",
        "0",
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path / "run"),
        "--transfer.base_checkpoint",
        str(files["resnet"]),
        "--transfer.n",
        "2",
    ]
    run = cli.run_cli(args)
    assert run.trainer.global_step == 2 and run.datamodule.in_channels == 3
    expected = file_tensors(files["resnet"], run.model.net)
    state = run.model.net.state_dict()
    frozen = [key for key in state if key.split(".")[0] in ("stem", "layer1")]
    assert frozen and all(torch.equal(state[key], expected[key]) for key in frozen)
    saved = torch.load(run_dir(tmp_path / "run") / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["callbacks"]["TransferCallback"]["sha256"] == sha256(files["resnet"])

    status = entry.console(
        "transferability",
        cli.main,
        [
            *args,
            "--trainer.default_root_dir",
            str(tmp_path / "small"),
            "--model.init_args.backbone_options",
            "{stem: small, granularity: stage}",
        ],
    )
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert "resnet18.pth" in err and "'conv1.weight'" in err and "backbone_options.stem imagenet" in err
