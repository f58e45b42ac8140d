"""Spirograph (Foster, Pukdee & Rainforth 2021): hypotrochoids drawn with Gaussian strokes.

Generative factors m, b, h, sigma are the regression targets; the foreground and background
colours are nuisance factors. With a = m + b - h and 40 points t in [0, 2 pi]:
    x = (a - b) cos t + h cos(t (a - b) / b),   y = (a - b) sin t - h sin(t (a - b) / b)
Each pixel of a 32 x 32 grid over [-6, 6]^2 gets the mean over the points of exp(-d / sigma), d the
squared distance from the pixel centre to the point (as in the authors' code); the image is
divided by its maximum and blended: v * foreground + (1 - v) * background.
Pixel (row i, column j) sits at x = grid[j], y = grid[i], grid = linspace(-6, 6, 32).
"""
from __future__ import annotations

import math

import torch

Tensor = torch.Tensor

IMAGE_SIZE = 32
NUM_POINTS = 40
EXTENT = 6.0
TARGET_NAMES = ["m", "b", "h", "sigma"]
BOUNDS = {"m": (2.0, 5.0), "b": (0.1, 1.1), "h": (0.5, 2.5), "sigma": (0.25, 1.0)}
FOREGROUND = (0.4, 1.0)
BACKGROUND = (0.0, 0.6)
DEFAULT_TRAIN = 100_000  # Foster et al.'s sizes: 100k train, 20k test
TEST_FRACTION = 5
_CHUNK = 4096  # images drawn at once: keeps the [N, points, 32] temporaries to ~40 MB


def sample_factors(n: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Targets float32 [n, 4] (m, b, h, sigma) and foreground/background colours [n, 3] each."""
    targets = torch.stack([torch.empty(n).uniform_(lo, hi, generator=gen) for lo, hi in BOUNDS.values()], dim=1)
    fg = torch.empty(n, 3).uniform_(*FOREGROUND, generator=gen)
    bg = torch.empty(n, 3).uniform_(*BACKGROUND, generator=gen)
    return targets, fg, bg


def draw(targets: Tensor, fg: Tensor, bg: Tensor) -> Tensor:
    """Draw spirographs from factors as float [N, 3, 32, 32] in [0, 1] (dtype of `targets`)."""
    m, b, h, sigma = targets.unbind(dim=1)
    a = m + b - h
    t = torch.linspace(0, 2 * math.pi, NUM_POINTS, dtype=targets.dtype)
    grid = torch.linspace(-EXTENT, EXTENT, IMAGE_SIZE, dtype=targets.dtype)
    ratio = ((a - b) / b)[:, None]
    x = (a - b)[:, None] * torch.cos(t) + h[:, None] * torch.cos(t * ratio)  # [N, points]
    y = (a - b)[:, None] * torch.sin(t) - h[:, None] * torch.sin(t * ratio)
    # exp(-(dx^2 + dy^2) / sigma) factorises into a column and a row term, so the sum over
    # points is one batched matmul [N, 32, points] @ [N, points, 32].
    s = sigma[:, None, None]
    ex = torch.exp(-(grid[None, None, :] - x[:, :, None]) ** 2 / s)  # [N, points, columns]
    ey = torch.exp(-(grid[None, None, :] - y[:, :, None]) ** 2 / s)  # [N, points, rows]
    value = ey.transpose(1, 2) @ ex
    value /= NUM_POINTS
    value = value / (value.amax(dim=(1, 2), keepdim=True) + 1e-8)
    v = value[:, None]
    return v * fg[:, :, None, None].to(v.dtype) + (1 - v) * bg[:, :, None, None].to(v.dtype)


def generate(n: int, seed: int, stream: int) -> tuple[Tensor, Tensor]:
    """n uint8 images [n, 3, 32, 32] and float32 targets [n, 4]; (seed, stream) picks the stream."""
    gen = torch.Generator().manual_seed(seed * 2 + stream)
    targets, fg, bg = sample_factors(n, gen)
    images = torch.empty(n, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
    for start in range(0, n, _CHUNK):
        part = slice(start, start + _CHUNK)
        images[part] = (draw(targets[part], fg[part], bg[part]) * 255).round().to(torch.uint8)
    return images, targets
