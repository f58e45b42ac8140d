"""Backbones (stems, width) and projection heads."""

import pytest
import torch
import torchvision
from torch import nn

from trainers import TrainConfig
from trainers.model.networks import BACKBONES, HEADS, build_model


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet18_imagenet_stem_is_torchvisions_resnet18_without_fc():
    ours, dim = BACKBONES["resnet18"](stem="imagenet", width=1)
    reference = torchvision.models.resnet18()
    reference.fc = nn.Identity()
    assert dim == 512
    assert _params(ours) == _params(reference)
    # Same layers in the same order: copying the weights over gives the same function.
    ours.load_state_dict(dict(zip(ours.state_dict(), reference.state_dict().values())))
    x = torch.rand(2, 3, 64, 64)
    ours.eval(), reference.eval()
    torch.testing.assert_close(ours(x), reference(x))


def test_resnet50_is_torchvisions_resnet50_without_fc():
    ours, dim = BACKBONES["resnet50"](stem="imagenet", width=1)
    reference = torchvision.models.resnet50()
    reference.fc = nn.Identity()
    assert dim == 2048 and _params(ours) == _params(reference)


@pytest.mark.parametrize("stem, side", [("cifar", 32), ("stl", 16), ("imagenet", 8)])
def test_stems_set_the_resolution_of_the_first_stage(stem, side):
    net, _ = BACKBONES["resnet18"](stem=stem, width=1)
    stem_layers = net[:4] if stem == "cifar" else net[:5]
    assert stem_layers(torch.rand(1, 3, 32, 32)).shape[-1] == side
    assert net[0].kernel_size == ((7, 7) if stem == "imagenet" else (3, 3))


def test_width_multiplier_scales_every_channel():
    net1, dim1 = BACKBONES["resnet18"](stem="cifar", width=1)
    net2, dim2 = BACKBONES["resnet18"](stem="cifar", width=2)
    assert (dim1, dim2) == (512, 1024)
    # Conv weights grow 4x (in and out channels), apart from the first conv's 3 input channels.
    assert _params(net2) > 3.9 * _params(net1)
    assert net2(torch.rand(2, 3, 32, 32)).shape == (2, 1024)


def test_convnet_representation_size_scales_with_width():
    for width in (1, 2):
        net, dim = BACKBONES["convnet"](stem="cifar", width=width)
        assert dim == 128 * width and net(torch.rand(2, 3, 32, 32)).shape == (2, dim)


def test_nonlinear_head_is_the_tf_mlp():
    head = HEADS["nonlinear"](64, hidden_dim=32, out_dim=8, layers=3)
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert head[-1].bias.requires_grad is False and head[-1].weight.requires_grad is True
    assert head(torch.rand(4, 64)).shape == (4, 8)


def test_model_returns_h_and_z_and_none_head_gives_z_equal_h():
    cfg = TrainConfig(projection_dim=16, head="none")
    model = build_model(cfg)
    h, z = model(torch.rand(3, 3, 32, 32))
    assert z is h and h.shape == (3, 128)
    model = build_model(TrainConfig(projection_dim=16, head="linear"))
    h, z = model(torch.rand(3, 3, 32, 32))
    assert z.shape == (3, 16)


def test_projection_hidden_dim_zero_means_the_representation_size():
    model = build_model(TrainConfig(projection_dim=16, head="nonlinear"))
    assert model.head[0].out_features == 128
