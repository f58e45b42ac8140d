"""The SimCLR augmentations: each matches torchvision.transforms.v2.functional for the same drawn
parameters, and draws its parameters with the declared distribution."""
import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from study_files.vocabulary import SIMCLR_AUGMENTATIONS
from trainers.augmentation import kernels as A
from trainers.augmentation.pipeline import build_pipeline

# float32 on [0, 1]: torchvision and ours differ only by rounding order.
TOL = 1e-5


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _images(n=16, side=32, seed=1):
    return torch.rand(n, 3, side, side, generator=_gen(seed))


# --- crop ------------------------------------------------------------------------------------

@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("side, size", [(32, 32), (64, 24), (40, 56)])
def test_crop_matches_torchvision_resized_crop(interpolation, side, size):
    x = _images(12, side)
    p = A.crop.draw(x.shape, _gen(), x.device)
    out = A._crop_apply(x, **p, image_size=size, interpolation=interpolation)
    mode = TF.InterpolationMode[interpolation.upper()]
    for i in range(12):
        box = [int(p[k][i]) for k in ("top", "left", "height", "width")]
        ref = TF.resized_crop(x[i], *box, size=[size, size], interpolation=mode, antialias=True).clamp(0, 1)
        torch.testing.assert_close(out[i], ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("side, size", [(32, 32), (20, 32), (96, 64)])
def test_crop_always_outputs_image_size(side, size):
    x = _images(5, side)
    assert A.crop(x, _gen(), image_size=size).shape == (5, 3, size, size)


def test_crop_boxes_lie_inside_the_image_with_declared_area_and_aspect():
    h, w = 224, 160
    p = A.crop.draw((5000, 3, h, w), _gen(), torch.device("cpu"))
    assert (p["top"] >= 0).all() and (p["top"] + p["height"] <= h).all()
    assert (p["left"] >= 0).all() and (p["left"] + p["width"] <= w).all()
    area = (p["height"] * p["width"]).double() / (h * w)
    aspect = p["width"].double() / p["height"].double()
    # Rounding the box to whole pixels moves the fraction by at most ~1%; the fallback is the
    # largest centred box of aspect 3/4 (160 x 213).
    fallback = (area - 160 * 213 / (h * w)).abs() < 1e-9
    assert ((area > 0.08 * 0.98) & (area < 1.0 + 1e-9)).all()
    assert ((aspect[~fallback] > 0.75 * 0.98) & (aspect[~fallback] < 4 / 3 * 1.02)).all()


def _analytic_area(a=0.08, b=1.0, tries=10, below=0.3):
    """(E[area fraction], P(area < below)) for a square image under RandomResizedCrop's rejection
    scheme, in float64: a try fits iff A * exp(|log r|) <= 1; after ten misses the whole image is
    taken. ``below`` must be small enough that every area under it fits (below * 4/3 <= 1)."""
    lo, hi = math.log(3 / 4), math.log(4 / 3)
    steps = 200_000
    logr = lo + (torch.arange(steps, dtype=torch.float64) + 0.5) * (hi - lo) / steps
    cut = torch.exp(-logr.abs()).clamp(max=b)
    p_fit = ((cut - a).clamp(min=0) / (b - a)).mean().item()
    mass = ((cut ** 2 - a ** 2).clamp(min=0) / (2 * (b - a))).mean().item()
    miss = (1 - p_fit) ** tries
    p_small = (below - a) / (b - a) / p_fit * (1 - miss)
    return mass / p_fit * (1 - miss) + miss, p_small


def test_crop_area_fraction_mean_matches_the_analytic_value():
    n, side = 40_000, 224
    p = A.crop.draw((n, 3, side, side), _gen(3), torch.device("cpu"))
    area = (p["height"] * p["width"]).double() / side ** 2
    mean, p_small = _analytic_area()
    # sd of the mean ~ 0.27 / sqrt(40000) = 0.0014; pixel rounding adds < 0.002.
    assert abs(area.mean().item() - mean) < 0.006
    # Rejection of large, elongated boxes makes small crops more frequent than 0.22 / 0.92;
    # sd of the rate ~ 0.0022.
    assert abs((area < 0.3).double().mean().item() - p_small) < 0.012


def _accepted_log_ratio_cdf(height, width, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """CDF of log(w / h) of the crops _crop_params accepts, in float64.

    Each try draws the area fraction A ~ U(scale) and l = log r ~ U(log ratio) independently, and
    the first try whose box fits is taken: so an accepted crop is one try conditioned on fitting.
    With rho = width / height, w = sqrt(A H W r) <= W and h = sqrt(A H W / r) <= H hold iff
    A <= exp(-|l - log rho|): the accepted l has density proportional to
    P(fit | l) = clip((min(exp(-|l - log rho|), b) - a) / (b - a), 0, 1) on (log r0, log r1):
    log-uniform only where every drawn box fits (b <= exp(-|l - log rho|) for every l)."""
    a, b = scale
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    grid = np.linspace(lo, hi, 200_001)
    fit = np.clip((np.minimum(np.exp(-np.abs(grid - math.log(width / height))), b) - a) / (b - a), 0, 1)
    cdf = np.concatenate([[0.0], np.cumsum((fit[1:] + fit[:-1]) / 2)])
    return lambda v: np.interp(v, grid, cdf / cdf[-1])


@pytest.mark.parametrize("height, width", [(4096, 4096), (3072, 4096)])
def test_crop_aspect_ratio_of_accepted_crops_has_the_sampler_distribution(height, width):
    from scipy.stats import kstest

    # A large image makes the rounding of boxes to whole pixels negligible (< 1.2e-3 in log ratio).
    p = A.crop.draw((20_000, 3, height, width), _gen(8), torch.device("cpu"))
    accepted = ~((p["height"] == height) & (p["width"] == width))  # the fallback is the whole image
    assert accepted.double().mean() > 0.999
    log_ratio = torch.log(p["width"][accepted].double() / p["height"][accepted].double()).numpy()
    # A false alarm once in 1000 seeds (the seed is fixed).
    assert kstest(log_ratio, _accepted_log_ratio_cdf(height, width)).pvalue > 1e-3
    # The same sample is far from log-uniform: the test can tell the two apart.
    lo, hi = math.log(3 / 4), math.log(4 / 3)
    assert kstest(log_ratio, "uniform", args=(lo, hi - lo)).pvalue < 1e-6


# --- flip ------------------------------------------------------------------------------------

def test_flip_matches_torchvision_hflip():
    x = _images(16)
    p = A.flip.draw(x.shape, _gen(), x.device)
    out = A._flip_apply(x, **p)
    for i in range(16):
        ref = TF.horizontal_flip(x[i]) if p["flipped"][i] else x[i]
        torch.testing.assert_close(out[i], ref, atol=0, rtol=0)


def test_flip_rate_is_one_half():
    rate = A.flip.draw((20_000, 3, 1, 1), _gen(), torch.device("cpu"))["flipped"].double().mean().item()
    assert abs(rate - 0.5) < 0.02  # 5.6 sd


# --- color_jitter ------------------------------------------------------------------------------

_TV_COLOR = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]


def _assert_jitter_matches_torchvision(x, strength=1.0):
    """Ours against torchvision's four adjust_* applied one image at a time in the drawn order."""
    p = A.color_jitter.draw(x.shape, _gen(), x.device, strength=strength)
    out = A._color_jitter_apply(x, **p)
    for i in range(len(x)):
        ref = x[i]
        if p["applied"][i]:
            for op in p["order"][i].tolist():
                value = p["hue"][i] if op == 3 else p["factors"][i, op]
                ref = _TV_COLOR[op](ref, float(value))
        torch.testing.assert_close(out[i], ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_color_jitter_matches_torchvision_in_the_drawn_order(strength):
    _assert_jitter_matches_torchvision(_images(24), strength)


def test_color_jitter_draws_the_paper_ranges_and_rates():
    n, s = 20_000, 1.0
    p = A.color_jitter.draw((n, 3, 1, 1), _gen(), torch.device("cpu"), strength=s)
    assert abs(p["applied"].double().mean().item() - 0.8) < 0.02
    f = p["factors"]
    assert f.min() >= 1 - 0.8 * s and f.max() <= 1 + 0.8 * s
    assert (f.mean(dim=0) - 1).abs().max() < 0.02  # uniform, sd of mean 0.0033
    assert p["hue"].abs().max() <= 0.2 * s and abs(p["hue"].mean().item()) < 0.005
    # A uniform random order: each operation comes first a quarter of the time, and each row is
    # a permutation of the four.
    first = torch.bincount(p["order"][:, 0], minlength=4).double() / n
    assert (first - 0.25).abs().max() < 0.02
    assert (p["order"].sort(dim=1).values == torch.arange(4)).all()


def test_color_jitter_orders_are_uniform_over_the_24_permutations():
    from scipy.stats import chisquare

    n = 24_000
    order = A.color_jitter.draw((n, 3, 1, 1), _gen(5), torch.device("cpu"))["order"]
    code = (order * torch.tensor([64, 16, 4, 1])).sum(dim=1)  # one integer per permutation
    counts = torch.unique(code, return_counts=True)[1]
    assert len(counts) == 24
    assert chisquare(counts.numpy()).pvalue > 1e-3


@pytest.mark.parametrize("n", [30, 5])
def test_color_jitter_matches_torchvision_when_the_batch_is_not_a_multiple_of_4(n):
    _assert_jitter_matches_torchvision(_images(n))


def test_color_jitter_orders_are_uniform_per_sample_at_a_batch_of_30():
    # Dealing hue's position over 30 samples alone gives positions 0-1 8/30 and 2-3 7/30; each
    # sample's order must be uniform over the 24 permutations whatever the batch size.
    from scipy.stats import chisquare

    draws, n = 800, 30
    gen = _gen(7)
    orders = torch.stack([A.color_jitter.draw((n, 3, 1, 1), gen, torch.device("cpu"))["order"] for _ in range(draws)])
    hue_position = (orders == 3).float().argmax(dim=2)  # (draws, n)
    pooled = torch.bincount(hue_position.flatten(), minlength=4)
    assert chisquare(pooled.numpy()).pvalue > 1e-3
    for sample in (0, n - 1):
        assert chisquare(torch.bincount(hue_position[:, sample], minlength=4).numpy()).pvalue > 1e-3
    code = (orders.reshape(-1, 4) * torch.tensor([64, 16, 4, 1])).sum(dim=1)
    counts = torch.unique(code, return_counts=True)[1]
    assert len(counts) == 24
    assert chisquare(counts.numpy()).pvalue > 1e-3


def test_color_jitter_on_single_channel_images_matches_torchvision():
    _assert_jitter_matches_torchvision(torch.rand(12, 1, 16, 16, generator=_gen(2)))


def test_color_jitter_keeps_values_in_unit_range():
    out = A.color_jitter(_images(32), _gen(), strength=1.5)
    assert out.min() >= 0 and out.max() <= 1


# --- grayscale ---------------------------------------------------------------------------------

def test_grayscale_matches_torchvision_rgb_to_grayscale():
    x = _images(16)
    p = A.grayscale.draw(x.shape, _gen(), x.device, p=0.5)
    out = A._grayscale_apply(x, **p)
    for i in range(16):
        ref = TF.rgb_to_grayscale(x[i], num_output_channels=3) if p["grey"][i] else x[i]
        torch.testing.assert_close(out[i], ref, atol=TOL, rtol=0)


def test_grayscale_rate_is_one_fifth():
    rate = A.grayscale.draw((20_000, 3, 1, 1), _gen(), torch.device("cpu"))["grey"].double().mean().item()
    assert abs(rate - 0.2) < 0.015  # 5.3 sd


# --- blur --------------------------------------------------------------------------------------

@pytest.mark.parametrize("side", [32, 96])
def test_blur_matches_torchvision_gaussian_blur(side):
    x = _images(8, side)
    p = A.blur.draw(x.shape, _gen(), x.device)
    k = A.blur_kernel_size_for(side)
    out = A._blur_apply(x, **p, kernel_size=k)
    for i in range(8):
        ref = TF.gaussian_blur(x[i], [k, k], [float(p["sigma"][i])] * 2) if p["blurred"][i] else x[i]
        torch.testing.assert_close(out[i], ref, atol=TOL, rtol=0)


def test_blur_kernel_is_ten_percent_of_the_side_and_odd():
    assert [A.blur_kernel_size_for(s) for s in (32, 64, 96, 224)] == [3, 7, 9, 23]


def test_blur_rate_and_sigma_distribution():
    p = A.blur.draw((20_000, 3, 1, 1), _gen(), torch.device("cpu"))
    assert abs(p["blurred"].double().mean().item() - 0.5) < 0.02
    sigma = p["sigma"]
    assert sigma.min() >= 0.1 and sigma.max() <= 2.0
    assert abs(sigma.mean().item() - 1.05) < 0.02  # uniform on (0.1, 2): sd of mean 0.004


def test_blur_sigma_is_uniform_on_the_declared_range():
    from scipy.stats import kstest

    sigma = A.blur.draw((20_000, 3, 1, 1), _gen(9), torch.device("cpu"), sigma=(0.1, 2.0))["sigma"]
    # Against U(0.1, 2.0); a false alarm once in 1000 seeds (the seed is fixed).
    assert kstest(sigma.double().numpy(), "uniform", args=(0.1, 1.9)).pvalue > 1e-3
    # The test has the power to see a range off by 5%.
    assert kstest(sigma.double().numpy(), "uniform", args=(0.1, 1.8)).pvalue < 1e-6


# --- pipeline ----------------------------------------------------------------------------------

def _uint8(n=8, side=32, seed=2):
    return torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=_gen(seed))


def test_pipeline_is_deterministic_given_the_generator():
    fn = build_pipeline(A.PAPER_ORDER, image_size=32)
    batch = _uint8()
    torch.testing.assert_close(fn(batch, _gen(7)), fn(batch, _gen(7)), atol=0, rtol=0)
    assert not torch.equal(fn(batch, _gen(7)), fn(batch, _gen(8)))


def test_pipeline_applies_in_paper_order_whatever_the_given_order():
    batch = _uint8()
    a = build_pipeline(["blur", "crop", "color_jitter"], image_size=24)(batch, _gen(3))
    b = build_pipeline("crop,color_jitter,blur", image_size=24)(batch, _gen(3))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    g = _gen(3)
    x = A.crop(batch.float() / 255, g, image_size=24)
    x = A.color_jitter(x, g)
    x = A.blur(x, g)
    torch.testing.assert_close(a, x, atol=0, rtol=0)


def test_pipeline_without_augmentations_returns_the_float_batch():
    batch = _uint8()
    out = build_pipeline([], image_size=32)(batch, _gen())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, batch.float() / 255, atol=0, rtol=0)


def test_pipeline_output_is_image_size_in_unit_range_and_leaves_input_alone():
    batch = _uint8(side=40)
    before = batch.clone()
    for names in (SIMCLR_AUGMENTATIONS, A.PAPER_ORDER[:-1], ["flip"], ["crop"]):
        out = build_pipeline(names, image_size=32)(batch, _gen())
        assert out.shape == (8, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(batch, before)


def test_pipeline_passes_parameters_by_augmentation_prefix():
    batch = _uint8()
    never = build_pipeline(["flip", "grayscale"], image_size=32, params={"flip.p": 0.0, "grayscale.p": 0.0})
    torch.testing.assert_close(never(batch, _gen()), batch.float() / 255, atol=0, rtol=0)
    always = build_pipeline(["flip"], image_size=32, params={"flip.p": 1.0})
    torch.testing.assert_close(always(batch, _gen()), batch.float().flip(-1) / 255, atol=0, rtol=0)


def test_pipeline_refuses_unknown_names_and_parameters():
    with pytest.raises(ValueError, match=r"'cropp'.*crop, flip"):
        build_pipeline(["cropp"], image_size=32)
    with pytest.raises(ValueError, match=r"'flip\.q'.*flip\.p"):
        build_pipeline(["flip"], image_size=32, params={"flip.q": 0.1})


# Keyword arguments that make each augmentation act on every image (p = 1 where it has a p).
_ACT = {name: {"p": 1.0} if "p" in A.AUGMENTATIONS[name].params else {} for name in A.AUGMENTATIONS}
_ACT["crop"] = {"image_size": 24}


@pytest.mark.parametrize("name", sorted(A.AUGMENTATIONS))
def test_every_augmentation_gives_the_same_float32_for_a_uint8_batch_as_for_it_over_255(name):
    batch = _uint8(seed=4)
    fn = A.AUGMENTATIONS[name]
    from_uint8 = fn(batch, _gen(11), **_ACT[name])
    from_float = fn(batch.float() / 255, _gen(11), **_ACT[name])
    assert from_uint8.dtype == from_float.dtype == torch.float32
    torch.testing.assert_close(from_uint8, from_float, atol=0, rtol=0)
    if name != "standardize":
        assert from_uint8.min() >= 0 and from_uint8.max() <= 1


def test_augmentations_give_float32_for_float64_input_and_refuse_other_integer_types():
    x = _images(4).double()
    out = A.flip(x, _gen(), p=1.0)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, x.float().flip(-1), atol=0, rtol=0)
    with pytest.raises(TypeError, match=r"^augmentations take a uint8 or floating-point batch \(got torch.int64\)$"):
        A.invert(_uint8().long(), _gen())


def test_every_registered_augmentation_is_in_paper_order():
    assert set(A.PAPER_ORDER) == set(A.AUGMENTATIONS)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_feeding_and_augmenting_never_synchronise_the_cuda_stream():
    from trainers.data.feeder import DeviceFeeder

    feeder = DeviceFeeder(_uint8(256, 32), "cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    fn = build_pipeline(A.PAPER_ORDER, image_size=24)
    fn(next(feeder.batches(64, g)), g)  # first call makes the per-device constants
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host-device synchronisation now raises
    try:
        for batch in feeder.batches(64, g):
            fn(batch, g)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_pipeline_without_crop_resizes_to_image_size_before_drawing():
    out = build_pipeline(["flip", "cutout"], image_size=24)(_uint8(side=40), _gen())
    assert out.shape == (8, 3, 24, 24)


def test_pipeline_refuses_bad_crop_interpolation_and_blur_kernel_at_build_time():
    with pytest.raises(ValueError, match=r"crop\.interpolation"):
        build_pipeline(["crop"], image_size=32, params={"crop.interpolation": "nearest"})
    with pytest.raises(ValueError, match=r"blur\.kernel_size"):
        build_pipeline(["blur"], image_size=32, params={"blur.kernel_size": 4})


def test_compiled_pipeline_matches_the_eager_one():
    batch = _uint8(16)
    eager = build_pipeline(SIMCLR_AUGMENTATIONS, image_size=32, params={"color_jitter.strength": 0.5})
    # aot_eager traces the same graph as inductor without a C++ build: seconds, not minutes, on a CPU.
    compiled = build_pipeline(SIMCLR_AUGMENTATIONS, image_size=32, params={"color_jitter.strength": 0.5},
                                compile="aot_eager")
    torch.testing.assert_close(compiled(batch, _gen(4)), eager(batch, _gen(4)), atol=TOL, rtol=0)
