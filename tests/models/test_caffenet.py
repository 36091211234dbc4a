"""CaffeNet: the paper's shapes, parameter count, Caffe init and bad settings."""

import pytest
import torch

from models.caffenet import CAFFE_BIAS, CAFFE_WEIGHT_STD, STAGE_NAMES, CaffeNet, feature_map_sizes
from models.classifier import count_parameters

SMALL = dict(in_channels=1, input_size=28, widths=(32, 64, 96, 96, 64, 256, 256), conv1_kernel=5, conv1_stride=1)


@pytest.fixture(scope="module")
def paper_net() -> CaffeNet:
    torch.manual_seed(0)
    return CaffeNet()


def test_paper_parameter_count(paper_net):
    """With 1000 outputs the network has exactly the Caffe reference net's 60,965,224 parameters."""
    assert count_parameters(paper_net) == 60_965_224


def test_paper_feature_map_sizes(paper_net):
    """At 227 pixels the maps are 55, 27, 27, 13, 13, 13, 13, 6 (9216 features into fc6)."""
    assert paper_net.feature_map_sizes == [55, 27, 27, 13, 13, 13, 13, 6]
    assert paper_net.fc6.in_features == 9216


def test_paper_forward_shape(paper_net):
    """A 227x227 RGB batch gives 1000 logits; intermediate shapes match Caffe's."""
    x = torch.randn(2, 3, 227, 227)
    with torch.no_grad():
        assert paper_net.conv1(x).shape == (2, 96, 55, 55)
        assert paper_net.forward_stages(x, 1, 5).shape == (2, 9216)
        assert paper_net(x).shape == (2, 1000)


def test_layers_addressable_by_paper_index(paper_net):
    """Layers 1..8 are conv1..fc8, and conv2, conv4, conv5 are grouped in two."""
    assert paper_net.stage_names == STAGE_NAMES == ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
    assert [getattr(paper_net, name).groups for name in STAGE_NAMES[:5]] == [1, 2, 1, 2, 2]


def test_forward_stages_compose_to_forward():
    """Layers 1..n then n+1..8 equal forward, in eval and (same seeded dropout) in training."""
    net = CaffeNet(
        num_outputs=4,
        in_channels=1,
        input_size=28,
        widths=(8, 8, 8, 8, 8, 16, 16),
        conv1_kernel=5,
        conv1_stride=1,
        dropout_seed=5,
    )
    x = torch.randn(3, 1, 28, 28)
    net.eval()
    for n in range(1, 8):
        assert torch.equal(net.forward_stages(net.forward_stages(x, 1, n), n + 1, 8), net(x))
    net.train()
    net(x)
    state = net.state_dict()  # the dropout generators' states travel with the weights
    whole = net(x)
    net.load_state_dict(state)
    assert torch.equal(net.forward_stages(net.forward_stages(x, 1, 6), 7, 8), whole)
    with pytest.raises(ValueError, match="first <= last"):
        net.forward_stages(x, 3, 9)


def test_seeded_dropout_is_the_networks_own():
    """Same dropout_seed, same masks whatever else draws from the global generator; another seed, others."""

    def masks(seed: int) -> torch.Tensor:
        net = CaffeNet(
            num_outputs=4,
            in_channels=1,
            input_size=28,
            widths=(8, 8, 8, 8, 8, 64, 64),
            conv1_kernel=5,
            conv1_stride=1,
            dropout_seed=seed,
        )
        torch.rand(100)  # other draws in the process
        return net.drop6(torch.ones(2, 64))

    assert torch.equal(masks(1), masks(1))
    assert not torch.equal(masks(1), masks(2))
    assert 0.2 < (masks(1) == 0).float().mean() < 0.8


def test_caffe_init_statistics(paper_net):
    """Gaussian weights with the prototxt's std (0.005 for fc6/fc7) and the constant biases."""
    for name in STAGE_NAMES:
        layer = getattr(paper_net, name)
        weight = layer.weight.detach()
        assert abs(weight.mean().item()) < 1e-3, name
        assert weight.std().item() == pytest.approx(CAFFE_WEIGHT_STD[name], rel=0.05), name
        assert torch.all(layer.bias == CAFFE_BIAS[name]), name
    assert CAFFE_WEIGHT_STD["fc6"] == CAFFE_WEIGHT_STD["fc7"] == 0.005
    assert [CAFFE_BIAS[n] for n in STAGE_NAMES] == [0, 1, 0, 1, 1, 1, 1, 0]


def test_small_variant_same_class():
    """The small default-dataset network is the same class with other arguments."""
    net = CaffeNet(num_outputs=10, **SMALL)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert [name for name, _ in net.named_children()][:8] == list(STAGE_NAMES)
    assert net.feature_map_sizes == [24, 12, 12, 6, 6, 6, 6, 3]


def test_kaiming_init_option():
    """init='kaiming' is a named deviation: zero biases, He-scaled weights."""
    net = CaffeNet(num_outputs=10, init="kaiming", **SMALL)
    assert torch.all(net.conv2.bias == 0)
    assert net.fc6.weight.std().item() == pytest.approx((2 / net.fc6.in_features) ** 0.5, rel=0.05)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(widths=(96, 0, 384, 384, 256, 4096, 4096)), "conv2 width must be positive"),
        (dict(widths=(96, 256)), "7 numbers"),
        (dict(num_outputs=0), "num_outputs must be positive"),
        (dict(input_size=40), "input_size=40 is too small"),
        (dict(widths=(95, 256, 384, 384, 256, 4096, 4096)), "not divisible by groups"),
        (dict(init="xavier"), "init must be"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_bad_settings_are_named(kwargs, match):
    """Each bad setting raises an error that names it."""
    with pytest.raises(ValueError, match=match):
        CaffeNet(**kwargs)


def test_wrong_input_shape_is_explained():
    """A batch at the wrong size names the expected shape and the setting to check."""
    net = CaffeNet(num_outputs=10, **SMALL)
    with pytest.raises(ValueError, match=r"\(batch, 1, 28, 28\).*input_size"):
        net(torch.randn(2, 1, 32, 32))


def test_minimum_input_size_message():
    """The too-small error suggests the smallest size that works."""
    with pytest.raises(ValueError, match="at least 55"):
        feature_map_sizes(54, 11, 4, 0)
    assert feature_map_sizes(55, 11, 4, 0)[-1] == 1
