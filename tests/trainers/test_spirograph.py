"""Spirograph against a direct float64 implementation of Foster et al.'s formulas."""
import math
import time

import pytest
import torch

from trainers.data import spirograph
from trainers.data.datasets import load_dataset


def _reference_image(m, b, h, sigma, fg, bg):
    """One image, pixel by pixel, in float64, straight from the formulas."""
    a = m + b - h
    ts = [2 * math.pi * i / 39 for i in range(40)]
    pts = [((a - b) * math.cos(t) + h * math.cos(t * (a - b) / b),
            (a - b) * math.sin(t) - h * math.sin(t * (a - b) / b)) for t in ts]
    grid = [-6 + 12 * i / 31 for i in range(32)]
    v = torch.zeros(32, 32, dtype=torch.float64)
    for row, gy in enumerate(grid):
        for col, gx in enumerate(grid):
            v[row, col] = sum(math.exp(-((gx - x) ** 2 + (gy - y) ** 2) / sigma) for x, y in pts) / 40
    v = v / (v.max() + 1e-8)
    return torch.stack([v * f + (1 - v) * g for f, g in zip(fg, bg)])


def test_images_match_the_float64_formulas():
    images, targets = spirograph.generate(3, seed=7, stream=0)
    gen = torch.Generator().manual_seed(7 * 2 + 0)
    _, fg, bg = spirograph.sample_factors(3, gen)
    for i in range(3):
        m, b, h, sigma = targets[i].double().tolist()
        want = (_reference_image(m, b, h, sigma, fg[i].double().tolist(), bg[i].double().tolist()) * 255).round()
        diff = (images[i].double() - want).abs()
        assert diff.max() <= 1, f"image {i}: max |diff| {diff.max()}"
        assert (diff > 0).float().mean() < 0.01  # off by one only at float32 rounding ties


def test_float_draw_matches_reference_closely():
    targets = torch.tensor([[3.1, 0.45, 1.7, 0.6], [2.2, 1.0, 0.6, 0.3]], dtype=torch.float64)
    fg = torch.tensor([[0.9, 0.5, 0.4], [0.4, 1.0, 0.7]], dtype=torch.float64)
    bg = torch.tensor([[0.1, 0.2, 0.55], [0.0, 0.3, 0.6]], dtype=torch.float64)
    got = spirograph.draw(targets, fg, bg)
    for i in range(2):
        want = _reference_image(*targets[i].tolist(), fg[i].tolist(), bg[i].tolist())
        torch.testing.assert_close(got[i], want, rtol=0, atol=1e-12)


def test_factors_lie_in_the_published_ranges():
    data = load_dataset("spirograph", size=2000, seed=0)
    y = data.train_y
    for col, (lo, hi) in enumerate(spirograph.BOUNDS.values()):
        assert lo <= y[:, col].min() and y[:, col].max() <= hi
        assert y[:, col].min() < lo + 0.05 * (hi - lo) and y[:, col].max() > hi - 0.05 * (hi - lo)
    x = data.train_x.float() / 255
    # The brightest pixel is the foreground colour (v = 1), the darkest is near the background's range.
    brightest = x.amax(dim=(2, 3))
    assert brightest.min() >= 0.4 - 1 / 255


def test_splits_layout_and_sizes():
    data = load_dataset("spirograph", size=100, seed=1)
    assert data.task == "regression" and data.num_classes == 0
    assert data.target_names == ["m", "b", "h", "sigma"]
    assert data.train_x.shape == (100, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (20, 3, 32, 32)
    assert data.train_y.shape == (100, 4) and data.train_y.dtype == torch.float32
    assert data.pretrain is data.train_x


def test_deterministic_from_the_seed():
    a, b, c = (load_dataset("spirograph", size=50, seed=s) for s in (4, 4, 5))
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_y, c.train_y)


def test_generation_is_fast_enough_for_tests():
    start = time.perf_counter()
    spirograph.generate(2000, seed=0, stream=0)
    assert time.perf_counter() - start < 2.0


def test_spirograph_refuses_another_image_size():
    with pytest.raises(ValueError, match=r"^dataset spirograph: image_size must be 32 \(got 64\)$"):
        load_dataset("spirograph", size=10, image_size=64)
