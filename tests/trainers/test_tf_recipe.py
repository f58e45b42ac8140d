"""The TF recipe's details against float64 ports of the TF functions, written here from their semantics.

Ports: tf.image.adjust_contrast ((x - per-channel mean) * f + mean), adjust_saturation (HSV's s
times f, clipped to [0, 1]), adjust_hue (h + delta mod 1), google-research's brightness (x * f)
with its clip after each operation; google-research's gaussian_blur (normalised exp(-x^2 / 2s^2)
taps, depthwise conv with padding SAME, i.e. zeros) with one sigma per batch; TF ResNet's
init_zero on each residual branch's last BN; the head's random_normal_initializer(stddev=0.01).
"""

import colorsys

import numpy as np
import pytest
import torch
from scipy.stats import kstest

from trainers.augmentation import kernels as A
from trainers.config import TrainConfig
from trainers.model.networks import build_model

TOL = 1e-5


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- colour ---------------------------------------------------------------------------------

def _tf_contrast(img, f):
    mean = img.mean(axis=(1, 2), keepdims=True)
    return (img - mean) * f + mean


def _tf_hsv_map(img, fn):
    out = np.empty_like(img)
    for y in range(img.shape[1]):
        for x in range(img.shape[2]):
            r, g, b = fn(*colorsys.rgb_to_hsv(*img[:, y, x]))
            out[:, y, x] = colorsys.hsv_to_rgb(r, g, b)
    return out


def _tf_saturation(img, f):
    return _tf_hsv_map(img, lambda h, s, v: (h, min(max(s * f, 0.0), 1.0), v))


def _tf_hue(img, delta):
    return _tf_hsv_map(img, lambda h, s, v: ((h + delta) % 1.0, s, v))


_TF_OPS = {0: lambda x, f: x * f, 1: _tf_contrast, 2: _tf_saturation, 3: _tf_hue}


@pytest.mark.parametrize("n", [8, 6])
def test_tf_colour_ops_match_the_tf_functions_in_the_drawn_order(n):
    x = torch.rand(n, 3, 6, 6, generator=_gen(1))
    p = A.color_jitter.draw(x.shape, _gen(), x.device, strength=1.0)
    out = A._color_jitter_apply(x, **p, ops="tf")
    for i in range(n):
        ref = x[i].double().numpy()
        if p["applied"][i]:
            for op in p["order"][i].tolist():
                value = float(p["hue"][i] if op == 3 else p["factors"][i, op])
                ref = np.clip(_TF_OPS[op](ref, value), 0.0, 1.0)
        np.testing.assert_allclose(out[i].double().numpy(), ref, atol=TOL, rtol=0)


def test_tf_colour_ops_differ_from_torchvision_s():
    x = torch.rand(8, 3, 6, 6, generator=_gen(1))
    p = A.color_jitter.draw(x.shape, _gen(), x.device)
    assert (A._color_jitter_apply(x, **p, ops="tf") - A._color_jitter_apply(x, **p)).abs().max() > 0.05


def test_tf_saturation_saturates_at_s_equal_1():
    # A factor that would push s past 1 stops at the fully saturated colour (min channel 0).
    x = torch.tensor([0.8, 0.5, 0.4]).view(1, 3, 1, 1).expand(1, 3, 2, 2).contiguous()
    out = A._blend_toward(x, torch.tensor([2]), torch.tensor([10.0]), "tf")
    ref = _tf_saturation(x[0].double().numpy(), 10.0)
    np.testing.assert_allclose(out[0].double().numpy(), ref, atol=TOL)
    assert out.amin().item() == pytest.approx(0.0, abs=1e-6)


# --- blur -----------------------------------------------------------------------------------

def _tf_gaussian_blur(img, kernel_size, sigma):
    radius = int(kernel_size / 2)
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-taps ** 2 / (2.0 * sigma ** 2))
    k /= k.sum()
    c, h, w = img.shape
    padded = np.zeros((c, h + 2 * radius, w + 2 * radius))
    padded[:, radius:radius + h, radius:radius + w] = img
    horiz = sum(k[j] * padded[:, :, j:j + w] for j in range(2 * radius + 1))
    return sum(k[j] * horiz[:, j:j + h, :] for j in range(2 * radius + 1))


@pytest.mark.parametrize("side", [32, 56])
def test_tf_blur_draws_one_sigma_per_batch_and_pads_with_zeros(side):
    x = torch.rand(6, 3, side, side, generator=_gen(2))
    p = A.blur.draw(x.shape, _gen(), x.device, p=0.5, sigma_per="batch")
    assert (p["sigma"] == p["sigma"][0]).all() and 0.1 <= p["sigma"][0] <= 2.0
    assert 0 < int(p["blurred"].sum()) < 6
    out = A._blur_apply(x, **p, kernel_size=None, padding="zero")
    for i in range(6):
        # google-research: kernel_size = height // 10, made odd as 2 * int(k / 2) + 1.
        ref = _tf_gaussian_blur(x[i].double().numpy(), side // 10, float(p["sigma"][0]))
        expected = ref if p["blurred"][i] else x[i].double().numpy()
        np.testing.assert_allclose(out[i].double().numpy(), expected, atol=TOL, rtol=0)


def test_blur_sigma_is_per_sample_by_default():
    p = A.blur.draw((6, 3, 32, 32), _gen(), torch.device("cpu"))
    assert len(set(p["sigma"].tolist())) == 6


# --- initialisation -------------------------------------------------------------------------

@pytest.mark.parametrize("backbone, last_bn", [("resnet18", "bn2"), ("resnet50", "bn3")])
def test_zero_init_residual_makes_every_block_its_shortcut(backbone, last_bn):
    torch.manual_seed(0)
    model = build_model(TrainConfig(backbone=backbone, zero_init_residual=True, head="none"))
    blocks = [m for m in model.backbone if hasattr(m, last_bn)]
    assert len(blocks) == (8 if backbone == "resnet18" else 16)
    x = torch.rand(2, 64, 8, 8, dtype=torch.float64)
    for block in blocks:
        assert (getattr(block, last_bn).weight == 0).all()
        assert (block.bn1.weight == 1).all()
        if block.downsample is not None:
            assert (block.downsample[1].weight == 1).all()
    # A block of the first stage (no downsample) is then relu(x): TF's init_zero identity.
    first = blocks[0].double().eval() if backbone == "resnet18" else None
    if first is not None:
        torch.testing.assert_close(first(x), torch.relu(x))
    plain = build_model(TrainConfig(backbone=backbone, head="none"))
    assert all((getattr(m, last_bn).weight == 1).all() for m in plain.backbone if hasattr(m, last_bn))


def test_tf_head_init_draws_dense_weights_from_normal_0_001():
    torch.manual_seed(0)
    model = build_model(TrainConfig(head="nonlinear", head_layers=3, projection_dim=64, head_init="tf"))
    linears = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    weights = torch.cat([m.weight.detach().flatten() for m in linears]).double().numpy()
    assert kstest(weights, "norm", args=(0.0, 0.01)).pvalue > 1e-3
    torch.manual_seed(0)
    default = build_model(TrainConfig(head="nonlinear", head_layers=3, projection_dim=64))
    weights = torch.cat([m.weight.detach().flatten() for m in default.head.modules()
                         if isinstance(m, torch.nn.Linear)]).double().numpy()
    assert kstest(weights, "norm", args=(0.0, 0.01)).pvalue < 1e-6
