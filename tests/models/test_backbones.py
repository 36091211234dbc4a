"""The torchvision backbones as staged networks (models.backbones): stages, equality with torchvision, seeds, errors."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from models.backbones import ResNetStages, ViTStages, build_backbone
from models.dropout import SeededDropout
from models.network import StagedNetwork, seeded

SEED = 7
SMALL_VIT = {"patch_size": 4, "num_layers": 6, "num_heads": 4, "hidden_dim": 96, "mlp_dim": 384}

# (name, in_channels, input_size, options): small networks covering every backbone and granularity.
CASES = [
    ("resnet18", 3, 16, {"stem": "small"}),
    ("resnet18", 3, 16, {"stem": "small", "granularity": "stage"}),
    ("resnet18", 1, 28, {"stem": "imagenet"}),
    ("resnet50", 3, 32, {}),
    ("resnet50", 3, 32, {"granularity": "stage"}),
    ("vit", 1, 28, {}),
    ("vit_b_16", 3, 32, {}),
]
CASE_IDS = [
    f"{name}-{c}ch-{size}px-{'-'.join(map(str, options.values())) or 'default'}" for name, c, size, options in CASES
]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine, two threads spinning on each other are many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=CASES, ids=CASE_IDS)
def built(request: pytest.FixtureRequest) -> tuple[StagedNetwork, torch.Tensor]:
    name, channels, size, options = request.param
    net = build_backbone(name, 10, channels, size, init_seed=SEED, **options).eval()
    x = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0))
    return net, x


def randomise_head(*heads: nn.Linear) -> None:
    """The same random weights in each linear head (torchvision's ViT head starts at zero: outputs all 0)."""
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(heads[0].weight.shape, generator=generator)
    with torch.no_grad():
        for head in heads:
            head.weight.copy_(weight)
            head.bias.fill_(0.1)


def test_stages_cover_every_parameter_and_buffer(built: tuple[StagedNetwork, torch.Tensor]) -> None:
    net, _ = built
    assert isinstance(net.stage_names, tuple) and net.stage_names[-1] == "head"
    assert len(set(net.stage_names)) == len(net.stage_names)
    assert {key.split(".")[0] for key in net.state_dict()} <= set(net.stage_names)
    for name in net.stage_names:
        assert isinstance(getattr(net, name), nn.Module)
        assert any(True for _ in getattr(net, name).parameters()), f"stage {name} owns no parameters"


def test_stage_names() -> None:
    r18 = build_backbone("resnet18", 10, 3, 32, stem="small")
    assert r18.stage_names == (
        "stem",
        "layer1_0",
        "layer1_1",
        "layer2_0",
        "layer2_1",
        "layer3_0",
        "layer3_1",
        "layer4_0",
        "layer4_1",
        "head",
    )
    assert build_backbone("resnet18", 10, 3, 32, granularity="stage").stage_names == (
        "stem",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "head",
    )
    r50 = build_backbone("resnet50", 10, 3, 32)
    assert len(r50.stage_names) == 1 + 3 + 4 + 6 + 3 + 1 and r50.stage_names[-2] == "layer4_2"
    vit = build_backbone("vit", 10, 3, 28, num_layers=3)
    assert vit.stage_names == ("embed", "block1", "block2", "block3", "head")


def test_forward_stages_split_equals_forward(built: tuple[StagedNetwork, torch.Tensor]) -> None:
    net, x = built
    with torch.no_grad():
        full = net(x)
        torch.testing.assert_close(net.forward_stages(x, 1), full, rtol=0, atol=0)
        middle = x
        for k in range(1, len(net.stage_names)):
            middle = net.forward_stages(middle, k, k)  # = forward_stages(x, 1, k), one stage further each time
            torch.testing.assert_close(net.forward_stages(middle, k + 1), full, rtol=0, atol=0)


def test_stage_outputs_are_maps_and_tokens() -> None:
    r18 = build_backbone("resnet18", 10, 3, 32, stem="small").eval()
    vit = build_backbone("vit", 10, 3, 28).eval()
    with torch.no_grad():
        assert r18.forward_stages(torch.zeros(1, 3, 32, 32), 1, 1).shape == (1, 64, 32, 32)
        assert r18.forward_stages(torch.zeros(1, 3, 32, 32), 1, 9).shape == (1, 512, 4, 4)
        assert vit.forward_stages(torch.zeros(2, 3, 28, 28), 1, 3).shape == (2, 50, 96)


@pytest.mark.parametrize("arch,size", [("resnet18", 32), ("resnet50", 64)])
def test_resnet_imagenet_stem_equals_torchvision(arch: str, size: int) -> None:
    with seeded(SEED):
        reference = getattr(torchvision.models, arch)(weights=None, num_classes=10).eval()
    net = build_backbone(arch, 10, 3, size, init_seed=SEED).eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference(x), rtol=0, atol=0)
    assert sorted(float(t.double().sum()) for t in net.state_dict().values()) == sorted(
        float(t.double().sum()) for t in reference.state_dict().values()
    )


def test_resnet_small_stem_equals_torchvision_with_that_stem() -> None:
    net = build_backbone("resnet18", 10, 3, 32, init_seed=SEED, stem="small").eval()
    with seeded(SEED):  # the rest of the weights: the builder's draws from the same seed
        reference = torchvision.models.resnet18(weights=None, num_classes=10)
    assert net.stem.conv1.kernel_size == (3, 3) and net.stem.conv1.stride == (1, 1)
    assert isinstance(net.stem.maxpool, nn.Identity)
    reference.conv1, reference.maxpool = copy.deepcopy(net.stem.conv1), nn.Identity()
    reference.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference(x), rtol=0, atol=0)


def test_vit_equals_torchvision() -> None:
    with seeded(SEED):
        reference = VisionTransformer(image_size=28, num_classes=10, **SMALL_VIT).eval()
    net = build_backbone("vit", 10, 3, 28, init_seed=SEED).eval()
    randomise_head(net.head.fc.head, reference.heads.head)
    x = torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(x)
        torch.testing.assert_close(out, reference(x), rtol=0, atol=0)
    assert out.abs().sum() > 0


def test_vit_b_16_equals_torchvision() -> None:
    with seeded(SEED):
        reference = torchvision.models.vit_b_16(weights=None, image_size=32, num_classes=10).eval()
    net = build_backbone("vit_b_16", 10, 3, 32, init_seed=SEED).eval()
    assert len(net.stage_names) == 14
    randomise_head(net.head.fc.head, reference.heads.head)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "name,size,expected", [("resnet18", 224, 11_689_512), ("resnet50", 224, 25_557_032), ("vit_b_16", 224, 86_567_656)]
)
def test_parameter_counts_equal_torchvision(name: str, size: int, expected: int) -> None:
    def count(model: nn.Module) -> int:
        return sum(p.numel() for p in model.parameters())

    with seeded(0):
        reference = getattr(torchvision.models, name)(weights=None)
        net = build_backbone(name, 1000, 3, size)
    assert count(net) == count(reference) == expected


@pytest.mark.parametrize(
    "name,size,options", [("resnet18", 28, {"stem": "small"}), ("vit", 28, {}), ("vit", 28, {"dropout": 0.1})]
)
def test_init_seed(name: str, size: int, options: dict) -> None:
    state = torch.get_rng_state()
    first = build_backbone(name, 10, 1, size, init_seed=1, **options).state_dict()
    again = build_backbone(name, 10, 1, size, init_seed=1, **options).state_dict()
    other = build_backbone(name, 10, 1, size, init_seed=2, **options).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[key], again[key]) for key in first)
    weights = [key for key in first if key.endswith("weight") and first[key].dim() > 1 and first[key].any()]
    assert len(weights) > 3
    assert all(not torch.equal(first[key], other[key]) for key in weights)


@pytest.mark.parametrize("name,options", [("resnet18", {"stem": "small"}), ("vit", {})])
def test_one_channel_28px(name: str, options: dict) -> None:
    net = build_backbone(name, 10, 1, 28, init_seed=0, **options)
    assert (net.in_channels, net.input_size) == (1, 28)
    out = net(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 10)
    out.sum().backward()
    with pytest.raises(ValueError, match="input"):
        net(torch.randn(4, 3, 28, 28))


def test_seeded_dropout_and_stochastic_stages() -> None:
    plain = build_backbone("vit", 10, 1, 28, num_layers=2)
    assert plain.stochastic_stages == frozenset() and plain.shareable_depth(3) == 3
    net = build_backbone("vit", 10, 1, 28, init_seed=0, dropout_seed=3, num_layers=2, dropout=0.2)
    assert net.stochastic_stages == {"embed", "block1", "block2"} and net.shareable_depth(3) == 0
    assert not any(type(m) is nn.Dropout for m in net.modules())
    assert sum(isinstance(m, SeededDropout) for m in net.modules()) == 1 + 3 * 2
    twin = build_backbone("vit", 10, 1, 28, init_seed=0, dropout_seed=3, num_layers=2, dropout=0.2)
    x = torch.randn(2, 1, 28, 28)
    state = torch.get_rng_state()
    net.train(), twin.train()
    randomise_head(net.head.fc.head, twin.head.fc.head)
    torch.testing.assert_close(net(x), twin(x), rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), state)
    unseeded = build_backbone("vit", 10, 1, 28, num_layers=2, dropout=0.2)
    assert sum(type(m) is nn.Dropout for m in unseeded.modules()) == 7


def test_classes_directly() -> None:
    assert isinstance(ResNetStages("resnet50", 5, 3, 32, granularity="stage"), StagedNetwork)
    assert ViTStages("vit", 5, 3, 32, patch_size=8, hidden_dim=64, num_heads=2).stage_names[-1] == "head"


@pytest.mark.parametrize(
    "args,options,setting",
    [
        (("resnet34", 10, 3, 32), {}, "backbone"),
        (("resnet18", 10, 3, 32), {"patch_size": 4}, "patch_size"),
        (("vit", 10, 3, 28), {"granularity": "block"}, "granularity"),
        (("vit_b_16", 10, 3, 32), {"num_layers": 2}, "num_layers"),
        (("resnet18", 10, 3, 32), {"granularity": "layer"}, "granularity"),
        (("resnet50", 10, 3, 32), {"stem": "cifar"}, "stem"),
        (("vit", 10, 3, 30), {}, "patch_size"),
        (("vit_b_16", 10, 3, 40), {}, "patch_size"),
        (("vit", 10, 3, 28), {"hidden_dim": 90}, "num_heads"),
        (("resnet18", 10, 3, 0), {}, "input_size"),
        (("resnet18", 10, 3, 0), {"stem": "small"}, "input_size"),
        (("vit", 10, 3, 28), {"dropout": 1.0}, "dropout"),
        (("vit", 10, 3, 28), {"attention_dropout": 0.1, "dropout": 0.1}, "attention_dropout"),
        (("resnet18", 0, 3, 32), {}, "num_outputs"),
    ],
)
def test_errors_name_the_setting(args: tuple, options: dict, setting: str) -> None:
    if setting == "attention_dropout":
        options = {**options}
        with pytest.raises(ValueError, match=setting):
            build_backbone(*args, dropout_seed=1, **options)
        return
    with pytest.raises(ValueError, match=setting) as error:
        build_backbone(*args, **options)
    if setting in ("backbone", "granularity", "stem"):  # the valid values are listed
        valid = {
            "backbone": "resnet18, resnet50, vit_b_16, vit",
            "granularity": "block, stage",
            "stem": "imagenet, small",
        }[setting]
        assert valid in str(error.value) or "valid options" in str(error.value)
