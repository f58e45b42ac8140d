"""The ablation fork's and the TF2 port's augmentations: each against torchvision or a float64
reference for the same drawn parameters, and the distribution of what it draws."""
import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from trainers.augmentation import kernels as A
from trainers.augmentation.pipeline import build_pipeline

TOL = 1e-5
CPU = torch.device("cpu")


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _images(n=16, h=32, w=32, seed=1):
    return torch.rand(n, 3, h, w, generator=_gen(seed))


# --- rotate ------------------------------------------------------------------------------------

@pytest.mark.parametrize("h, w", [(32, 32), (24, 40)])
def test_rotate_matches_torchvision_rotate(h, w):
    x = _images(12, h, w)
    p = A.rotate.draw(x.shape, _gen(), CPU, p=0.7, degrees=60.0)
    out = A._rotate_apply(x, **p)
    for i in range(12):
        ref = x[i]
        if p["rotated"][i]:
            ref = TF.rotate(x[i], float(p["angle"][i]), interpolation=TF.InterpolationMode.BILINEAR)
        # Grid coordinates are computed in a different order than torchvision's: ~1e-6 apart.
        torch.testing.assert_close(out[i], ref, atol=1e-4, rtol=0)


def test_rotate_angles_are_uniform_in_the_declared_range():
    p = A.rotate.draw((20_000, 3, 1, 1), _gen(), CPU, degrees=30.0)
    angle = p["angle"]
    assert angle.abs().max() <= 30.0 and abs(angle.mean().item()) < 0.5  # sd of mean 0.12
    assert abs(angle.std().item() - 30 / math.sqrt(3)) < 0.5
    assert abs(p["rotated"].double().mean().item() - 0.5) < 0.02


# --- brightness ----------------------------------------------------------------------------------

def _piecewise_clip(v: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, v between: written as branches, not as a clamp."""
    return np.select([v < 0.0, v > 1.0], [0.0, 1.0], default=v)


def test_brightness_shifts_each_image_by_one_delta_then_clips():
    # A reference that does not read the drawn parameters: each image's shift is recovered from the
    # output's unclipped pixels, must be one number per image, and must explain every pixel.
    x = _images(32)
    out = A.brightness(x, _gen(), p=0.5, max_delta=0.4)
    shifts = 0
    for i in range(32):
        xi, oi = x[i].double().numpy(), out[i].double().numpy()
        inside = (oi > 0) & (oi < 1)
        d = oi[inside] - xi[inside]
        assert d.max() - d.min() < 1e-6  # float32 rounding of x + delta
        delta = float(np.median(d))
        assert abs(delta) <= 0.4
        np.testing.assert_allclose(oi, _piecewise_clip(xi + delta), atol=1e-6, rtol=0)
        shifts += delta != 0
        if delta == 0:
            assert torch.equal(out[i], x[i])
    assert 8 <= shifts <= 24  # p = 0.5 of 32 images: 2.8 sd


def test_brightness_delta_is_uniform_when_applied():
    from scipy.stats import kstest

    n = 20_000
    out = A.brightness(torch.full((n, 1, 1, 1), 0.5), _gen(6), p=0.8, max_delta=0.4)
    delta = (out.flatten().double() - 0.5).numpy()  # 0.5 +- 0.4 is never clipped
    applied = delta != 0
    assert abs(applied.mean() - 0.8) < 4 * math.sqrt(0.8 * 0.2 / n)  # binomial, 4 sd
    # The applied deltas against U(-0.4, 0.4); a false alarm once in 1000 seeds (the seed is fixed).
    assert kstest(delta[applied], "uniform", args=(-0.4, 0.8)).pvalue > 1e-3


def test_brightness_delta_distribution():
    delta = A.brightness.draw((20_000, 3, 1, 1), _gen(), CPU, p=0.8, max_delta=0.4)["delta"]
    applied = delta != 0
    assert abs(applied.double().mean().item() - 0.8) < 0.02
    assert delta.abs().max() <= 0.4 and abs(delta[applied].mean().item()) < 0.01  # sd of mean 0.0018
    assert abs(delta[applied].abs().mean().item() - 0.2) < 0.01


# --- invert, solarize ----------------------------------------------------------------------------

def test_invert_matches_torchvision_invert():
    x = _images()
    p = A.invert.draw(x.shape, _gen(), CPU)
    out = A._invert_apply(x, **p)
    for i in range(16):
        torch.testing.assert_close(out[i], TF.invert(x[i]) if p["inverted"][i] else x[i], atol=0, rtol=0)


@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_solarize_matches_torchvision_solarize(threshold):
    x = _images()
    p = A.solarize.draw(x.shape, _gen(), CPU, p=0.5)
    out = A._solarize_apply(x, **p, threshold=threshold)
    for i in range(16):
        ref = TF.solarize(x[i], threshold) if p["solarized"][i] else x[i]
        torch.testing.assert_close(out[i], ref, atol=0, rtol=0)


def test_invert_and_solarize_rates():
    assert abs(A.invert.draw((20_000, 3, 1, 1), _gen(), CPU)["inverted"].double().mean().item() - 0.5) < 0.02
    assert abs(A.solarize.draw((20_000, 3, 1, 1), _gen(), CPU)["solarized"].double().mean().item() - 0.2) < 0.015


# --- gaussian_noise ------------------------------------------------------------------------------

def test_gaussian_noise_matches_torchvision_gaussian_noise_for_the_same_draw():
    # torchvision draws from the global generator: seeded alike, its draw is ours, in the same order
    # (the per-image coin first, then one normal per value).
    x = _images()
    ours = A.gaussian_noise(x, _gen(9), p=0.5, std=0.2)
    with torch.random.fork_rng():
        torch.manual_seed(9)
        noisy = torch.rand(16) < 0.5
        ref = TF.gaussian_noise(x, mean=0.0, sigma=0.2, clip=True)
    assert 0 < noisy.sum() < 16
    torch.testing.assert_close(ours, torch.where(noisy.view(-1, 1, 1, 1), ref, x), atol=0, rtol=0)


def test_gaussian_noise_is_normal_with_the_declared_sigma_and_clips_at_zero():
    from scipy.stats import kstest, norm

    sigma = 0.1
    mid = A.gaussian_noise(torch.full((64, 3, 32, 32), 0.5), _gen(2), p=1.0, std=sigma)
    noise = (mid.flatten().double() - 0.5).numpy()[:100_000]  # 0.5 +- 5 sigma: clipping negligible
    assert kstest(noise, norm(0.0, sigma).cdf).pvalue > 1e-3  # false alarm once in 1000 seeds
    # Near black a third of the values clip: P(0.05 + sigma Z <= 0) = Phi(-0.5); the mean is that
    # of max(0, N(0.05, sigma^2)): mu Phi(mu/sigma) + sigma phi(mu/sigma).
    n, mu = 64 * 3 * 32 * 32, 0.05
    dark = A.gaussian_noise(torch.full((64, 3, 32, 32), mu), _gen(3), p=1.0, std=sigma).flatten().double()
    p0 = norm.cdf(-mu / sigma)
    assert abs((dark == 0).double().mean().item() - p0) < 4 * math.sqrt(p0 * (1 - p0) / n)  # 4 sd
    expected = mu * norm.cdf(mu / sigma) + sigma * norm.pdf(mu / sigma)
    assert abs(dark.mean().item() - expected) < 4 * sigma / math.sqrt(n)  # 4 sd (an upper bound)
    assert dark.min() == 0 and dark.max() < 1


def test_gaussian_noise_has_the_declared_standard_deviation():
    grey = torch.full((200, 3, 32, 32), 0.5)
    out = A.gaussian_noise(grey, _gen(), p=1.0, std=0.1)
    # 614k values: sd of the mean 1.3e-4; clipping at 5 sd is negligible.
    assert abs(out.mean().item() - 0.5) < 1e-3 and abs(out.std().item() - 0.1) < 1e-3
    rate = A.gaussian_noise.draw((20_000, 1, 1, 1), _gen(), CPU)["noisy"].double().mean()
    assert abs(rate.item() - 0.5) < 0.02


# --- salt_and_pepper -----------------------------------------------------------------------------

def test_salt_and_pepper_matches_a_float64_reference():
    x = _images()
    p = A.salt_and_pepper.draw(x.shape, _gen(), CPU)
    out = A._salt_and_pepper_apply(x, **p, amount=0.2)
    ref = x.double().clone()
    for i in range(16):
        if p["noisy"][i]:
            u = p["u"][i, 0]
            ref[i][:, u < 0.1] = 1.0
            ref[i][:, u >= 0.9] = 0.0
    torch.testing.assert_close(out.double(), ref, atol=0, rtol=0)


def test_salt_and_pepper_hits_the_declared_fraction_of_pixels():
    grey = torch.full((400, 3, 32, 32), 0.5)
    out = A.salt_and_pepper(grey, _gen(), p=1.0, amount=0.1)
    white = (out == 1).all(dim=1).double().mean().item()
    black = (out == 0).all(dim=1).double().mean().item()
    assert abs(white - 0.05) < 0.003 and abs(black - 0.05) < 0.003  # 410k pixels: sd 3.4e-4
    assert ((out == 0.5) | (out == 1) | (out == 0)).all()  # whole pixels, every channel alike


def test_salt_and_pepper_hits_each_image_with_probability_p():
    n = 4000
    out = A.salt_and_pepper(torch.full((n, 1, 16, 16), 0.5), _gen(4), p=0.5, amount=0.1)
    # A hit image keeps all of its 256 pixels with probability 0.9^256 ~ 2e-12: hit == any changed.
    hit = (out != 0.5).flatten(1).any(dim=1).double().mean().item()
    assert abs(hit - 0.5) < 4 * math.sqrt(0.25 / n)  # binomial, 4 sd = 0.032


# --- cutout ---------------------------------------------------------------------------------------

def test_cutout_matches_a_float64_reference():
    x = _images(16, 20, 28)
    p = A.cutout.draw(x.shape, _gen(), CPU, p=0.7)
    out = A._cutout_apply(x, **p, size=0.4)
    side = int(0.4 * 20)
    ref = x.double().clone()
    for i in range(16):
        if p["cut"][i]:
            top, left = int(p["cy"][i]) - side // 2, int(p["cx"][i]) - side // 2
            ref[i, :, max(top, 0):max(top + side, 0), max(left, 0):max(left + side, 0)] = 0.0
    torch.testing.assert_close(out.double(), ref, atol=0, rtol=0)


def _expected_clipped_length(extent, side):
    """Mean length of [c - side//2, c - side//2 + side) inside [0, extent), c uniform."""
    return sum(min(c - side // 2 + side, extent) - max(c - side // 2, 0) for c in range(extent)) / extent


def test_cutout_erases_the_analytic_mean_area():
    n = 20_000
    ones = torch.ones(n, 1, 32, 32)
    out = A.cutout(ones, _gen(), p=1.0, size=0.5)
    erased = 1 - out.mean(dim=(1, 2, 3))
    expected = _expected_clipped_length(32, 16) ** 2 / 32 ** 2
    assert abs(erased.mean().item() - expected) < 0.003  # sd of mean ~ 5e-4
    rate = (A.cutout.draw((n, 1, 32, 32), _gen(), CPU)["cut"]).double().mean().item()
    assert abs(rate - 0.5) < 0.02


# --- standardize ----------------------------------------------------------------------------------

def test_standardize_matches_tf_per_image_standardization_in_float64():
    x = _images(8)
    x[0] = 0.25  # a flat image: std 0, the 1/sqrt(numel) floor keeps it finite
    out = A.standardize(x, _gen())
    d = x.double().flatten(1)
    floor = 1 / math.sqrt(d.shape[1])
    ref = (d - d.mean(1, keepdim=True)) / d.std(1, correction=0, keepdim=True).clamp(min=floor)
    torch.testing.assert_close(out.double().flatten(1), ref, atol=TOL, rtol=0)


def test_standardize_gives_zero_mean_unit_variance_per_image():
    out = A.standardize(_images(32), _gen())
    assert out.mean(dim=(1, 2, 3)).abs().max() < 1e-5
    assert (out.std(dim=(1, 2, 3), correction=0) - 1).abs().max() < 1e-4


# --- all of them in one pipeline -------------------------------------------------------------------

def test_every_augmentation_runs_in_one_pipeline_with_parameters_from_yaml_names():
    batch = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=_gen())
    fn = build_pipeline(A.PAPER_ORDER, image_size=24, params={
        "rotate.degrees": 10.0, "cutout.size": 0.25, "salt_and_pepper.amount": 0.02, "gaussian_noise.std": 0.05,
        "solarize.threshold": 0.6, "brightness.max_delta": 0.2, "blur.sigma": (0.5, 1.0),
        "crop.interpolation": "bicubic"})
    out = fn(batch, _gen(3))
    assert out.shape == (8, 3, 24, 24) and torch.isfinite(out).all()
    torch.testing.assert_close(out, fn(batch, _gen(3)), atol=0, rtol=0)


def test_every_declared_parameter_is_documented_in_one_line():
    for name, augmentation in A.AUGMENTATIONS.items():
        for key, param in augmentation.params.items():
            assert param.meaning and "\n" not in param.meaning, f"{name}.{key}"
