"""A small generated classification set: ten shapes on 32x32 RGB, with nuisance factors.

The class is the shape alone. Colours (tinted grey levels for foreground and background),
position, scale, rotation and noise are drawn independently of the class, so an encoder that has
not learned shape (random weights, raw pixels) sees mostly brightness and layout and scores low,
while SimCLR with crop + colour jitter learns shape.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

Tensor = torch.Tensor

IMAGE_SIZE = 32
SUPERSAMPLE = 2  # masks are drawn at 2x and averaged down: anti-aliased edges
DEFAULT_TRAIN = 3000
TEST_FRACTION = 3  # test set = train size // 3 (1000 for the default)
NOISE_STD = 0.03
# Large shapes, so that most random crops (down to 8% of the area) still hold part of an outline.
SCALE = (0.32, 0.45)  # shape radius as a fraction of the image side
MARGIN = 0.8  # the centre keeps MARGIN x radius from the border: shapes stay mostly in frame
MIN_CONTRAST = 0.3  # least difference of the foreground's and background's grey levels
TINT = 0.15  # colour tint per channel around each grey level


def _disc(u: Tensor, v: Tensor) -> Tensor:
    return u * u + v * v < 1.0


def _square(u: Tensor, v: Tensor) -> Tensor:
    return torch.maximum(u.abs(), v.abs()) < 0.8


def _triangle(u: Tensor, v: Tensor) -> Tensor:
    # Equilateral, circumradius 1: three half-planes with apothem 0.5.
    return torch.maximum(-v, (math.sqrt(3) / 2) * u.abs() + 0.5 * v) < 0.5


def _cross(u: Tensor, v: Tensor) -> Tensor:
    arm_u = (u.abs() < 0.28) & (v.abs() < 1.0)
    arm_v = (v.abs() < 0.28) & (u.abs() < 1.0)
    return arm_u | arm_v


def _ring(u: Tensor, v: Tensor) -> Tensor:
    r2 = u * u + v * v
    return (r2 < 1.0) & (r2 > 0.36)


def _bar(u: Tensor, v: Tensor) -> Tensor:
    return (u.abs() < 1.0) & (v.abs() < 0.3)


def _star(u: Tensor, v: Tensor) -> Tensor:
    r = torch.sqrt(u * u + v * v)
    theta = torch.atan2(v, u)
    return r < 0.6 + 0.4 * torch.cos(5 * theta)


def _half_disc(u: Tensor, v: Tensor) -> Tensor:
    # Shifted down so the half-disc's centre of mass sits near the shape's centre.
    w = v + 0.4
    return (u * u + w * w < 1.0) & (w > 0)


def _hollow_square(u: Tensor, v: Tensor) -> Tensor:
    m = torch.maximum(u.abs(), v.abs())
    return (m < 0.9) & (m > 0.55)


def _two_dots(u: Tensor, v: Tensor) -> Tensor:
    left = (u + 0.55) ** 2 + v * v < 0.2
    right = (u - 0.55) ** 2 + v * v < 0.2
    return left | right


# A diamond would be a rotated square under free rotation, so two_dots takes its place.
SHAPES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "disc": _disc,
    "square": _square,
    "triangle": _triangle,
    "cross": _cross,
    "ring": _ring,
    "bar": _bar,
    "star": _star,
    "half_disc": _half_disc,
    "hollow_square": _hollow_square,
    "two_dots": _two_dots,
}
CLASS_NAMES: list[str] = list(SHAPES)


def _colours(n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Foreground and background colours in [0, 1]^3: grey levels at least MIN_CONTRAST apart, each
    with a random tint of up to +-TINT per channel.

    Fully random RGB pairs identify an image so well that SimCLR matches colours instead of
    learning shapes (measured: trained below random-init); greys that colour jitter can move
    leave the shape and its orientation as what two views share.
    """
    grey = torch.rand(n, 2, generator=gen)
    close = (grey[:, 0] - grey[:, 1]).abs() < MIN_CONTRAST
    # Moving the foreground half-way round the grey scale puts it at least MIN_CONTRAST away.
    grey[:, 0] = torch.where(close, (grey[:, 1] + 0.5) % 1.0, grey[:, 0])
    tint = (torch.rand(n, 2, 3, generator=gen) * 2 - 1) * TINT
    colours = (grey[:, :, None] + tint).clamp(0, 1)
    return colours[:, 0], colours[:, 1]


def draw_shapes(labels: Tensor, gen: torch.Generator, image_size: int = IMAGE_SIZE) -> Tensor:
    """Draw one shape per label as uint8 [N, 3, S, S], nuisance factors drawn from `gen`."""
    n = labels.shape[0]
    scale = torch.empty(n).uniform_(*SCALE, generator=gen) * image_size  # radius in pixels
    margin = MARGIN * scale
    cx = margin + torch.rand(n, generator=gen) * (image_size - 2 * margin)
    cy = margin + torch.rand(n, generator=gen) * (image_size - 2 * margin)
    angle = torch.rand(n, generator=gen) * 2 * math.pi
    fg, bg = _colours(n, gen)
    noise = torch.randn(n, 3, image_size, image_size, generator=gen) * NOISE_STD

    fine = image_size * SUPERSAMPLE
    coords = (torch.arange(fine, dtype=torch.float32) + 0.5) / SUPERSAMPLE
    py, px = torch.meshgrid(coords, coords, indexing="ij")
    basis = torch.stack([px.flatten(), py.flatten(), torch.ones(fine * fine)])  # [3, pixels]
    # The inverse pose (translate, rotate, scale; y pointing up) is affine in (px, py), so the
    # shape-frame coordinates of every pixel come from one matmul per axis.
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    to_u = torch.stack([cos, sin, -(cos * cx + sin * cy)], dim=1)
    to_v = torch.stack([sin, -cos, -(sin * cx - cos * cy)], dim=1)
    mask = torch.empty(n, 1, image_size, image_size)
    for cls, shape_fn in enumerate(SHAPES.values()):
        idx = (labels == cls).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            continue
        u = (to_u[idx] @ basis).view(-1, 1, fine, fine)
        v = (to_v[idx] @ basis).view(-1, 1, fine, fine)
        mask[idx] = torch.nn.functional.avg_pool2d(shape_fn(u, v).float(), SUPERSAMPLE)
    img = torch.lerp(bg[:, :, None, None], fg[:, :, None, None], mask).add_(noise)
    return img.clamp_(0, 1).mul_(255).round_().to(torch.uint8)


def generate(n: int, seed: int, stream: int) -> tuple[Tensor, Tensor]:
    """n images with balanced, shuffled labels; (seed, stream) picks an independent random stream."""
    gen = torch.Generator().manual_seed(seed * 2 + stream)
    labels = torch.arange(n) % len(SHAPES)
    labels = labels[torch.randperm(n, generator=gen)]
    return draw_shapes(labels, gen), labels
