"""Batched image augmentations on the batch's device, each declared once with its parameters.

An augmentation is two functions of an NCHW batch and a declaration of its parameters:
``draw(shape, generator, device, **params)`` draws the per-sample randomness as tensors, and
``apply(x, **drawn, **params)`` applies it (deterministic, so a pipeline can draw everything first and
hand the rest to ``torch.compile``, and tests can compare with torchvision for the same draw). Each
``Param`` states a parameter's default, its rule (from ``trainers.checks``) and what it means; a study
sets it as ``<augmentation>.<parameter>`` (``color_jitter.strength``), and that name reaches the
kernel unchanged. ``AUGMENTATIONS`` is the registry, an explicit dict; ``PAPER_ORDER`` the order a
pipeline applies them in.

Calling an augmentation, ``flip(batch, generator, p=1.0)``, takes a uint8 batch as float32 / 255 and a
floating-point one (values in [0, 1]) as float32, and gives float32. Random parameters are drawn per
sample from ``generator``, which must live on the batch's device: no per-image Python loop, no
host-device copy, no synchronisation.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from study_files.vocabulary import SIMCLR_AUGMENTATIONS
from trainers.checks import Rule, at_most, choice, number, odd_size, pair, unit

Tensor = torch.Tensor
Shape = tuple[int, ...]  # (N, C, H, W) of the batch a draw is for

# ITU-R 601-2 luma, the weights torchvision's rgb_to_grayscale uses.
_LUMA = (0.2989, 0.587, 0.114)


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(n, generator=generator, device=device) * (high - low) + low


def _bernoulli(n: int, p: float, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(n, generator=generator, device=device) < p


def _per_sample(mask: Tensor) -> Tensor:
    """A per-sample bool of shape (N,) as (N, 1, 1, 1), to select whole images with torch.where."""
    return mask.view(-1, 1, 1, 1)


def _luma(x: Tensor) -> Tensor:
    """(N, 1, H, W) luma of an RGB batch (the batch itself when single-channel)."""
    n, c, h, w = x.shape
    if c == 1:
        return x
    # One batched matmul reads the image once; three scaled adds would read it five times.
    if torch.compiler.is_compiling():
        weights = torch.tensor([_LUMA], dtype=x.dtype, device=x.device)  # a constant of the graph
    else:
        weights = _luma_weights(x.device, x.dtype)
    return (weights @ x.reshape(n, c, h * w)).view(n, 1, h, w)


@functools.lru_cache(maxsize=None)
def _luma_weights(device: torch.device, dtype: torch.dtype) -> Tensor:
    # Made once per device: torch.tensor(..., device=cuda) copies from pageable memory, a stream sync.
    return torch.tensor([_LUMA], dtype=dtype).to(device)


def to_unit_float(batch: Tensor) -> Tensor:
    """The input contract of every augmentation: uint8 as float32 / 255, floating point as float32."""
    if batch.dtype == torch.uint8:
        return batch.float().div_(255.0)
    if not batch.is_floating_point():
        raise TypeError(f"augmentations take a uint8 or floating-point batch (got {batch.dtype})")
    return batch.float()


@dataclass(frozen=True)
class Param:
    """One parameter a study may set as ``<augmentation>.<name>``."""
    default: Any
    rule: Rule  # checks a given value: rule("<augmentation>.<name>", value) -> value
    meaning: str
    drawn: bool = True  # taken by the draw; False: by the apply


@dataclass(frozen=True)
class Augmentation:
    """An augmentation: its name, its two halves, and its parameters (the one place each is declared)."""
    name: str
    draw_fn: Callable[..., dict[str, Tensor]]
    apply_fn: Callable[..., Tensor]
    params: Mapping[str, Param]
    summary: str

    def settings(self, given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(draw keywords, apply keywords): declared parameters checked by their rule, defaults for
        those not given; any other keyword (crop's ``image_size``) goes to the apply."""
        values = {key: param.default for key, param in self.params.items()}
        for key, value in given.items():
            values[key] = self.params[key].rule(f"{self.name}.{key}", value) if key in self.params else value
        draw = {key: value for key, value in values.items() if key in self.params and self.params[key].drawn}
        return draw, {key: value for key, value in values.items() if key not in draw}

    def draw(self, shape: Shape, generator: torch.Generator, device: torch.device, **params) -> dict[str, Tensor]:
        """The per-sample randomness for a batch of ``shape``, the parameters not given at their defaults."""
        return self.draw_fn(shape, generator, device, **self.settings(params)[0])

    def __call__(self, x: Tensor, generator: torch.Generator, **params) -> Tensor:
        x = to_unit_float(x)
        draw_kw, apply_kw = self.settings(params)
        return self.apply_fn(x, **self.draw_fn(x.shape, generator, x.device, **draw_kw), **apply_kw)


# ---------------------------------------------------------------------------------------------
# crop: random resized crop
# ---------------------------------------------------------------------------------------------

# Who draws the crop's box: torchvision's RandomResizedCrop, or TF's sample_distorted_bounding_box
# as google-research's crop_and_resize calls it (min_object_covered 0.1, 100 attempts).
CROP_SAMPLERS = ("torchvision", "tf")
TF_CROP_ATTEMPTS = 100
TF_MIN_OBJECT_COVERED = 0.1


def _crop_params(shape: Shape, generator: torch.Generator, device: torch.device, *, scale: tuple[float, float],
                 min_scale: float | None, ratio: tuple[float, float], sampler: str = "torchvision") -> dict[str, Tensor]:
    """Crop boxes (top, left, height, width), int64 of shape (N,), drawn as torchvision's
    RandomResizedCrop.get_params does: ten tries of area and log-aspect, the first box that fits,
    else a centre crop with the aspect ratio clamped into ``ratio``; or, with ``sampler: tf``, as
    TF's sample_distorted_bounding_box does (``tf_crop_boxes``)."""
    if min_scale is not None:
        scale = (min_scale, 1.0)
    n, _, height, width = shape
    if sampler == "tf":
        u = torch.rand(4, n, TF_CROP_ATTEMPTS, generator=generator, device=device, dtype=torch.float64)
        return tf_crop_boxes(*u, height=height, width=width, scale=scale, ratio=ratio)
    tries = 10
    area = height * width
    target = area * (torch.rand(n, tries, generator=generator, device=device) * (scale[1] - scale[0]) + scale[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(torch.rand(n, tries, generator=generator, device=device) * (log_hi - log_lo) + log_lo)
    w = torch.sqrt(target * aspect).round().long()
    h = torch.sqrt(target / aspect).round().long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.int().argmax(dim=1, keepdim=True)  # argmax returns the first maximal index
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    any_fit = fits.any(dim=1)

    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    w = torch.where(any_fit, w, fw)
    h = torch.where(any_fit, h, fh)

    # Uniform integer offsets in [0, side - size]; the fallback is centred.
    u_top = torch.rand(n, generator=generator, device=device)
    u_left = torch.rand(n, generator=generator, device=device)
    top = torch.where(any_fit, (u_top * (height - h + 1)).long().clamp(max=height - h), (height - fh) // 2)
    left = torch.where(any_fit, (u_left * (width - w + 1)).long().clamp(max=width - w), (width - fw) // 2)
    return {"top": top, "left": left, "height": h, "width": w}


def tf_crop_boxes(u_aspect: Tensor, u_height: Tensor, u_top: Tensor, u_left: Tensor, *, height: int, width: int,
                  scale: tuple[float, float], ratio: tuple[float, float]) -> dict[str, Tensor]:
    """TF's sample_distorted_bounding_box (its GenerateRandomCrop and the coverage test of the whole
    image as the one box) with its uniforms given, (N, attempts) each in [0, 1): an aspect ratio
    uniform in ``ratio``, a height rounded from the area range then raised by a uniform integer,
    the width rounded from it, offsets uniform in [0, side - size) (TF's Uniform(n) is < n); the
    first attempt whose box lies in the image, has its area in ``scale`` and covers at least 0.1 of
    the image is kept, else the whole image."""
    aspect = u_aspect * (ratio[1] - ratio[0]) + ratio[0]
    image_area = float(height * width)
    min_area, max_area = scale[0] * image_area, scale[1] * image_area
    h = torch.round(torch.sqrt(min_area / aspect))  # lrintf: to nearest, ties to even
    max_h = torch.round(torch.sqrt(max_area / aspect))
    too_wide = torch.round(max_h * aspect) > width
    max_h = torch.where(too_wide, torch.floor((width + 0.5 - 1e-7) / aspect), max_h)
    max_h = torch.where(too_wide & (torch.round(max_h * aspect) > width), max_h - 1, max_h)
    max_h = max_h.clamp(max=height)
    h = torch.minimum(h, max_h)
    h = h + torch.floor(u_height * (max_h - h + 1)).clamp(max=max_h - h)
    w = torch.round(h * aspect)
    small = w * h < min_area
    h = torch.where(small, h + 1, h)
    w = torch.round(h * aspect)
    large = w * h > max_area
    h = torch.where(large, h - 1, h)
    w = torch.round(h * aspect)
    area = w * h
    ok = (area >= min_area) & (area <= max_area) & (w <= width) & (h <= height) & (w > 0) & (h > 0)
    ok &= (area >= 1.0) & (area / image_area >= TF_MIN_OBJECT_COVERED)
    top = torch.where(h < height, torch.floor(u_top * (height - h)), torch.zeros_like(h))
    left = torch.where(w < width, torch.floor(u_left * (width - w)), torch.zeros_like(w))
    first = ok.int().argmax(dim=1, keepdim=True)  # the first attempt that passed
    found = ok.any(dim=1)

    def pick(values: Tensor, fallback: int) -> Tensor:
        return torch.where(found, values.gather(1, first).squeeze(1), float(fallback)).long()

    return {"top": pick(top, 0), "left": pick(left, 0), "height": pick(h, height), "width": pick(w, width)}


def _bilinear_filter(x: Tensor) -> Tensor:
    return (1.0 - x.abs()).clamp(min=0.0)


def _bicubic_filter(x: Tensor) -> Tensor:
    # Keys' cubic with a = -0.5, the kernel of antialiased interpolation (PIL, torch antialias=True).
    a = -0.5
    x = x.abs()
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


INTERPOLATIONS: dict[str, tuple[Callable[[Tensor], Tensor], float]] = {
    "bilinear": (_bilinear_filter, 1.0),
    "bicubic": (_bicubic_filter, 2.0),
}


def _resample_matrix(start: Tensor, length: Tensor, in_size: int, out_size: int, interpolation: str) -> Tensor:
    """Per-sample (N, out_size, in_size) weights resampling the window [start, start + length) of an
    axis to out_size samples, as torch's antialiased interpolate (align_corners=False) does."""
    filt, support = INTERPOLATIONS[interpolation]
    start = start.to(torch.float32).view(-1, 1, 1)
    length = length.to(torch.float32).view(-1, 1, 1)
    scale = length / out_size
    stretch = scale.clamp(min=1.0)  # downsampling widens the kernel: the antialiasing
    out = torch.arange(out_size, device=start.device, dtype=torch.float32).view(1, -1, 1)
    pos = torch.arange(in_size, device=start.device, dtype=torch.float32).view(1, 1, -1) - start
    center = scale * (out + 0.5)
    weights = filt((pos + 0.5 - center) / stretch)
    inside = (pos >= 0) & (pos < length) & ((pos + 0.5 - center).abs() < support * stretch)
    weights = weights * inside
    return weights / weights.sum(dim=-1, keepdim=True)


# Whose resize of the box: torch's (antialiased, ``interpolation``), or TF's bicubic (not
# antialiased; ``interpolation`` then does not apply): tf is TF2's tf.image.resize (half-pixel
# centres, Keys a = -0.5, taps outside the box dropped and the rest renormalised; google-research
# SimCLRv2), tf1 TF1's resize_bicubic (corner-aligned x * scale, a = -0.75, edge taps repeated;
# SimCLRv1 and the ablation fork). Both quantise the tap offset to 1/1024, as TF's table does.
RESIZES = ("torch", "tf", "tf1")
_TF_CUBIC_A = {"tf": -0.5, "tf1": -0.75}
_TF_TABLE_SIZE = 1024


def _tf_resample_matrix(start: Tensor, length: Tensor, in_size: int, out_size: int, resize: str) -> Tensor:
    """Per-sample (N, out_size, in_size) weights of TF's bicubic resize (``resize`` tf or tf1) of
    the window [start, start + length) of an axis to out_size samples."""
    a = _TF_CUBIC_A[resize]
    legacy = resize == "tf1"
    length = length.to(torch.float64).view(-1, 1)
    scale = length / out_size
    out = torch.arange(out_size, device=start.device, dtype=torch.float64).view(1, -1)
    loc = out * scale if legacy else (out + 0.5) * scale - 0.5
    base = torch.floor(loc)
    delta = torch.round((loc - base) * _TF_TABLE_SIZE) / _TF_TABLE_SIZE
    d = torch.stack([delta + 1.0, delta, 1.0 - delta, 2.0 - delta], dim=-1)  # distances of taps -1..2
    near = ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
    far = ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
    weights = torch.where(d <= 1.0, near, far)
    taps = base.unsqueeze(-1) + torch.arange(-1.0, 3.0, device=start.device, dtype=torch.float64)
    last = (length - 1).unsqueeze(-1)
    if not legacy:
        weights = weights * ((taps >= 0) & (taps <= last))
        weights = weights / weights.sum(dim=-1, keepdim=True)
    taps = torch.minimum(taps.clamp(min=0.0), last)
    index = (taps + start.to(torch.float64).view(-1, 1, 1)).long()
    matrix = torch.zeros(start.shape[0], out_size, in_size, dtype=torch.float64, device=start.device)
    return matrix.scatter_add_(2, index, weights).to(torch.float32)


def _crop_apply(x: Tensor, top: Tensor, left: Tensor, height: Tensor, width: Tensor, *,
                image_size: int, interpolation: str, resize: str = "torch") -> Tensor:
    """Resample each box to image_size x image_size: two batched matmuls with per-sample weights."""
    n, c, h, w = x.shape
    if resize == "torch":
        wy = _resample_matrix(top, height, h, image_size, interpolation).to(x.dtype)
        wx = _resample_matrix(left, width, w, image_size, interpolation).to(x.dtype)
    else:
        wy = _tf_resample_matrix(top, height, h, image_size, resize).to(x.dtype)
        wx = _tf_resample_matrix(left, width, w, image_size, resize).to(x.dtype)
    # Two plain bmm's, channels folded into the rows: a matmul broadcasting the weights over channels
    # would materialise them C times.
    s = image_size
    cols = torch.bmm(x.reshape(n, c * h, w), wx.transpose(1, 2))                    # (N, C*H, S)
    rows = torch.bmm(wy, cols.view(n, c, h, s).transpose(1, 2).reshape(n, h, c * s))  # (N, S, C*S)
    out = rows.view(n, s, c, s).transpose(1, 2).contiguous()
    return out if interpolation == "bilinear" and resize == "torch" else out.clamp_(0.0, 1.0)


crop = Augmentation("crop", _crop_params, _crop_apply, {
    "scale": Param((0.08, 1.0), pair(high=1.0), "area fraction range of the random resized crop"),
    # The low end of scale as one number, which a sampler can search.
    "min_scale": Param(None, number(0.0, inclusive=False, high=1.0), "scale = (min_scale, 1); None: scale"),
    "ratio": Param((3 / 4, 4 / 3), pair(), "aspect ratio range (drawn log-uniform; misfits redrawn)"),
    "interpolation": Param("bilinear", choice(lambda: INTERPOLATIONS), "bilinear or bicubic (antialiased, as v2's)",
                           drawn=False),
    "resize": Param("torch", choice(lambda: RESIZES), "torch (interpolation, antialiased), or TF2's (tf) or "
                    "TF1's (tf1) bicubic resize", drawn=False),
    "sampler": Param("torchvision", choice(lambda: CROP_SAMPLERS), "the box's draw: torchvision's "
                     "RandomResizedCrop or TF's sample_distorted_bounding_box (ratio drawn uniform)"),
}, "Random resized crop to image_size x image_size (torchvision RandomResizedCrop semantics).")


def resize_full(x: Tensor, image_size: int) -> Tensor:
    """Deterministic resize of whole images (used when no crop is chosen but sizes differ)."""
    n, device = x.shape[0], x.device
    zeros = torch.zeros(n, dtype=torch.long, device=device)
    h = torch.full((n,), x.shape[-2], dtype=torch.long, device=device)
    w = torch.full((n,), x.shape[-1], dtype=torch.long, device=device)
    return _crop_apply(x, zeros, zeros, h, w, image_size=image_size, interpolation="bilinear")


# ---------------------------------------------------------------------------------------------
# flip
# ---------------------------------------------------------------------------------------------

def _flip_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float) -> dict[str, Tensor]:
    n = shape[0]
    return {"flipped": _bernoulli(n, p, generator, device)}


def _flip_apply(x: Tensor, flipped: Tensor) -> Tensor:
    return torch.where(_per_sample(flipped), x.flip(-1), x)


flip = Augmentation("flip", _flip_params, _flip_apply, {
    "p": Param(0.5, unit, "probability of a horizontal flip"),
}, "Horizontal flip of each image with probability p.")


# ---------------------------------------------------------------------------------------------
# color_jitter
# ---------------------------------------------------------------------------------------------

# Whose contrast and saturation: torchvision's (toward luma) or TF's (see _blend_toward).
COLOR_OPS = ("torchvision", "tf")

# Operation indices in the per-sample order; hue is last because it is the one that is not a blend.
_BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = 0, 1, 2, 3


def _color_jitter_params(shape: Shape, generator: torch.Generator, device: torch.device, *,
                         strength: float, p: float) -> dict[str, Tensor]:
    """Per sample: whether jitter applies, the factors of brightness/contrast/saturation (uniform in
    [max(0, 1 - 0.8s), 1 + 0.8s]), the hue shift (uniform in [-0.2s, 0.2s]) and a random order of
    the four operations (SimCLR Appendix A, torchvision ColorJitter ranges).

    Each sample's order is a uniform random permutation of the four. Hue's position is dealt like
    cards over the batch padded to a multiple of 4 (sample ``hue_deal[j]`` has hue at position
    j % 4; entries >= N are padding): each position then holds the same number of slots, so every
    sample has hue at each position with probability 1/4, and the samples that take hue at a given
    position are a fixed-size slice: hue, the costly operation, is computed once per image (and
    per padding slot) instead of at all four positions, with no data-dependent shapes (no device
    sync). The samples' orders are not independent of each other: each position holds at most
    ceil(N / 4) hues.
    """
    n = shape[0]
    b = 0.8 * strength
    h = min(0.2 * strength, 0.5)
    applied = _bernoulli(n, p, generator, device)
    factors = torch.stack([_uniform(n, max(0.0, 1.0 - b), 1.0 + b, generator, device) for _ in range(3)], dim=1)
    hue = _uniform(n, -h, h, generator, device)
    slots = n + (-n) % 4
    hue_deal = torch.randperm(slots, generator=generator, device=device)
    hue_position = torch.empty(slots, dtype=torch.long, device=device).scatter_(
        0, hue_deal, torch.arange(slots, device=device) % 4)[:n].view(-1, 1)
    others = torch.rand(n, 3, generator=generator, device=device).argsort(dim=1)  # blends in random order
    positions = torch.arange(4, device=device).view(1, 4)
    slot = (positions - (positions > hue_position).long()).clamp(max=2)
    order = torch.where(positions == hue_position, _HUE, others.gather(1, slot))
    return {"applied": applied, "factors": factors, "hue": hue, "order": order, "hue_deal": hue_deal}


def _hue_sixths(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hue in sixths of a turn (any real: only its value mod 6 matters), max and max - min over
    the channels, with torchvision's tie rule (red, then green, then blue)."""
    r, g, b = x.unbind(dim=1)
    # Elementwise maxima: a reduction over the channel dimension is several times slower.
    maxc = torch.maximum(torch.maximum(r, g), b)
    delta = maxc - torch.minimum(torch.minimum(r, g), b)
    inv = 1.0 / torch.where(delta > 0, delta, torch.ones_like(delta))
    h6 = torch.where(r == maxc, (g - b) * inv, torch.where(g == maxc, (b - r) * inv + 2.0, (r - g) * inv + 4.0))
    return h6, maxc, delta


def _adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of each image by shift (N,) turns in torchvision's HSV model: s and v stay,
    so channel c = v - (v - min) clamp(min(k, 4 - k), 0, 1) with k = (n_c + 6h) mod 6, n = 5, 3, 1."""
    if x.shape[1] != 3:
        return x
    h6, maxc, delta = _hue_sixths(x)
    n = torch.arange(5.0, 0.0, -2.0, device=x.device).view(1, 3, 1, 1)  # 5, 3, 1 made on the device
    k = torch.remainder(n + (h6 + 6.0 * shift.view(-1, 1, 1)).unsqueeze(1), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return maxc.unsqueeze(1) - delta.unsqueeze(1) * ramp


def _blend_toward(x: Tensor, op: Tensor, factor: Tensor, ops: str = "torchvision") -> Tensor:
    """One of brightness/contrast/saturation per sample, all three being clamp(f x + (1 - f) ref).

    torchvision: ref = 0, the image's mean luma, or the pixel's luma respectively. tf: contrast's
    ref is each channel's own mean (tf.image.adjust_contrast); saturation scales HSV's S by f,
    clipped at 1 (tf.image.adjust_saturation), which with h and v kept is the blend toward the
    pixel's max channel v at factor min(f, v / (v - min)).
    """
    op = op.view(-1, 1, 1, 1)
    factor = factor.view(-1, 1, 1, 1)
    if ops == "tf":
        channel_means = x.mean(dim=(2, 3), keepdim=True)
        v = x.amax(dim=1, keepdim=True)
        delta = v - x.amin(dim=1, keepdim=True)
        saturated = torch.minimum(factor, v / torch.where(delta > 0, delta, torch.ones_like(delta)))
        ref = torch.where(op == _SATURATION, v, channel_means * (op == _CONTRAST))
        factor = torch.where(op == _SATURATION, saturated, factor)
        return torch.lerp(ref, x, factor).clamp_(0.0, 1.0)
    gray = _luma(x)
    mean_or_zero = gray.mean(dim=(1, 2, 3), keepdim=True) * (op == _CONTRAST)
    ref = torch.where(op == _SATURATION, gray, mean_or_zero)
    if x.shape[1] != 3:
        # Saturation leaves a single-channel image unchanged, as torchvision does.
        factor = torch.where(op == _SATURATION, torch.ones_like(factor), factor)
    return torch.lerp(ref, x, factor).clamp_(0.0, 1.0)


def _pad_rows(t: Tensor, pad: int) -> Tensor:
    """``t`` with ``pad`` rows of zeros after its own (itself, uncopied, when pad is 0)."""
    return torch.cat([t, t.new_zeros((pad, *t.shape[1:]))]) if pad else t


def _color_jitter_apply(x: Tensor, applied: Tensor, factors: Tensor, hue: Tensor, order: Tensor,
                        hue_deal: Tensor, ops: str = "torchvision") -> Tensor:
    n = x.shape[0]
    pad = hue_deal.shape[0] - n
    # Padding slots read a blank image with no shift; what they compute is dropped.
    hue = _pad_rows(hue, pad)
    out = x
    for position in range(4):
        op = order[:, position]
        blend_factor = factors.gather(1, op.clamp(max=_SATURATION).unsqueeze(1)).squeeze(1)
        blended = _pad_rows(_blend_toward(out, op, blend_factor, ops), pad)
        rows = hue_deal[position::4]  # the samples (or padding slots) whose operation here is hue
        hued = _adjust_hue(_pad_rows(out, pad).index_select(0, rows), hue.index_select(0, rows))
        out = blended.index_copy_(0, rows, hued)[:n]
    return torch.where(_per_sample(applied), out, x)


color_jitter = Augmentation("color_jitter", _color_jitter_params, _color_jitter_apply, {
    "strength": Param(1.0, number(0.0, inclusive=True), "s: brightness/contrast/saturation 0.8s, hue 0.2s"),
    "p": Param(0.8, unit, "probability that colour jitter is applied"),
    "ops": Param("torchvision", choice(lambda: COLOR_OPS), "torchvision's contrast and saturation, or TF's "
                 "(per-channel means; HSV saturation)", drawn=False),
}, "SimCLR colour distortion: brightness, contrast, saturation, hue in a random order per sample, "
   "applied to each image with probability p.")


# ---------------------------------------------------------------------------------------------
# grayscale
# ---------------------------------------------------------------------------------------------

def _grayscale_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float) -> dict[str, Tensor]:
    n = shape[0]
    return {"grey": _bernoulli(n, p, generator, device)}


def _grayscale_apply(x: Tensor, grey: Tensor) -> Tensor:
    return torch.where(_per_sample(grey), _luma(x).expand_as(x), x)


grayscale = Augmentation("grayscale", _grayscale_params, _grayscale_apply, {
    "p": Param(0.2, unit, "probability of converting to grey"),
}, "Replace each image by its luma in every channel with probability p.")


# ---------------------------------------------------------------------------------------------
# blur
# ---------------------------------------------------------------------------------------------

def blur_kernel_size_for(side: int) -> int:
    """SimCLR's kernel: 10% of the image side, made odd (32 -> 3, 96 -> 9, 224 -> 23)."""
    return (side // 10) // 2 * 2 + 1


# Whom a blur's sigma is drawn for: each image (torchvision) or the whole batch (TF SimCLR's
# batch_random_blur, which draws one sigma per view's batch).
BLUR_SIGMA_PER = ("sample", "batch")
# The blur's border: reflect (torchvision gaussian_blur) or zero (TF's depthwise conv, padding SAME).
BLUR_PADDINGS = {"reflect": "reflect", "zero": "constant"}


def _blur_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float,
                 sigma: tuple[float, float], sigma_per: str) -> dict[str, Tensor]:
    n = shape[0]
    blurred = _bernoulli(n, p, generator, device)
    if sigma_per == "batch":
        return {"blurred": blurred, "sigma": _uniform(1, sigma[0], sigma[1], generator, device).expand(n)}
    return {"blurred": blurred, "sigma": _uniform(n, sigma[0], sigma[1], generator, device)}


def _blur_apply(x: Tensor, blurred: Tensor, sigma: Tensor, *, kernel_size: int | None,
                padding: str = "reflect") -> Tensor:
    """Separable Gaussian blur with a per-sample sigma: grouped convolutions, one group per channel
    of each image, ``padding`` at the border (reflect: torchvision gaussian_blur; zero: TF's).
    kernel_size None: 10% of the side."""
    kernel_size = blur_kernel_size_for(min(x.shape[-2:])) if kernel_size is None else kernel_size
    if kernel_size == 1:
        return x
    n, c, h, w = x.shape
    half = (kernel_size - 1) / 2
    taps = torch.linspace(-half, half, kernel_size, device=x.device)
    kernel = torch.softmax(-0.5 * (taps.view(1, -1) / sigma.view(-1, 1)) ** 2, dim=1)  # (N, k), sums to 1
    kernel = kernel.repeat_interleave(c, dim=0)  # (N*C, k)
    pad = kernel_size // 2
    flat = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode=BLUR_PADDINGS[padding])
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, kernel_size), groups=n * c)
    flat = F.conv2d(flat, kernel.view(n * c, 1, kernel_size, 1), groups=n * c)
    return torch.where(_per_sample(blurred), flat.view(n, c, h, w), x)


blur = Augmentation("blur", _blur_params, _blur_apply, {
    "p": Param(0.5, unit, "probability of a Gaussian blur"),
    "sigma": Param((0.1, 2.0), pair(), "sigma range (uniform)"),
    "kernel_size": Param(None, odd_size, "odd size; None: 10% of the side (SimCLR)", drawn=False),
    "sigma_per": Param("sample", choice(lambda: BLUR_SIGMA_PER), "sample: a sigma per image; batch: one per "
                       "batch (TF)"),
    "padding": Param("reflect", choice(lambda: BLUR_PADDINGS), "reflect (torchvision) or zero (TF)", drawn=False),
}, "Gaussian blur with sigma uniform in sigma, with probability p; kernel 10% of the side.")


# ---------------------------------------------------------------------------------------------
# rotate (TF2 port)
# ---------------------------------------------------------------------------------------------

def _rotate_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float,
                   degrees: float) -> dict[str, Tensor]:
    n = shape[0]
    return {"rotated": _bernoulli(n, p, generator, device), "angle": _uniform(n, -degrees, degrees, generator, device)}


def _rotate_apply(x: Tensor, rotated: Tensor, angle: Tensor) -> Tensor:
    """Rotate each image counter-clockwise by angle (degrees) about its centre, bilinear, zeros
    outside (torchvision rotate with fill=None)."""
    n, _, h, w = x.shape
    theta = torch.deg2rad(torch.where(rotated, angle, torch.zeros_like(angle))).view(-1, 1, 1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    # Pixel-centred output coordinates, rotated back into the source, normalised per axis.
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, -1) - (w - 1) / 2
    ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, -1, 1) - (h - 1) / 2
    grid = torch.stack(((cos * xs - sin * ys) / (w / 2), (sin * xs + cos * ys) / (h / 2)), dim=-1)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.where(_per_sample(rotated), out, x)


rotate = Augmentation("rotate", _rotate_params, _rotate_apply, {
    "p": Param(0.5, unit, "probability of a rotation"),
    "degrees": Param(30.0, at_most(180.0), "angle uniform in [-degrees, degrees]"),
}, "Rotate by an angle uniform in [-degrees, degrees] with probability p; corners become black.")


# ---------------------------------------------------------------------------------------------
# brightness (ablation fork: tf.image.random_brightness, additive)
# ---------------------------------------------------------------------------------------------

def _brightness_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float,
                       max_delta: float) -> dict[str, Tensor]:
    n = shape[0]
    applied = _bernoulli(n, p, generator, device)
    delta = _uniform(n, -max_delta, max_delta, generator, device)
    return {"delta": torch.where(applied, delta, torch.zeros_like(delta))}


def _brightness_apply(x: Tensor, delta: Tensor) -> Tensor:
    return (x + delta.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


brightness = Augmentation("brightness", _brightness_params, _brightness_apply, {
    "p": Param(0.8, unit, "probability of an additive brightness change"),
    "max_delta": Param(0.4, unit, "delta uniform in [-max_delta, max_delta]"),
}, "Add a delta uniform in [-max_delta, max_delta] to every pixel with probability p, then clip.")


# ---------------------------------------------------------------------------------------------
# invert and solarize
# ---------------------------------------------------------------------------------------------

def _invert_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float) -> dict[str, Tensor]:
    n = shape[0]
    return {"inverted": _bernoulli(n, p, generator, device)}


def _invert_apply(x: Tensor, inverted: Tensor) -> Tensor:
    return torch.where(_per_sample(inverted), 1.0 - x, x)


invert = Augmentation("invert", _invert_params, _invert_apply, {
    "p": Param(0.5, unit, "probability of the negative 1 - x"),
}, "Photographic negative (1 - x) of each image with probability p.")


def _solarize_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float) -> dict[str, Tensor]:
    n = shape[0]
    return {"solarized": _bernoulli(n, p, generator, device)}


def _solarize_apply(x: Tensor, solarized: Tensor, *, threshold: float) -> Tensor:
    return torch.where(_per_sample(solarized) & (x >= threshold), 1.0 - x, x)


solarize = Augmentation("solarize", _solarize_params, _solarize_apply, {
    "p": Param(0.2, unit, "probability of solarizing (BYOL's 0.2)"),
    "threshold": Param(0.5, unit, "pixels >= threshold are inverted", drawn=False),
}, "Invert the pixels at or above threshold, with probability p per image.")


# ---------------------------------------------------------------------------------------------
# noise: gaussian_noise (TF2 port), salt_and_pepper (ablation fork)
# ---------------------------------------------------------------------------------------------

def _gaussian_noise_params(shape: Shape, generator: torch.Generator, device: torch.device, *,
                           p: float) -> dict[str, Tensor]:
    return {"noisy": _bernoulli(shape[0], p, generator, device),
            "noise": torch.randn(shape, generator=generator, device=device)}


def _gaussian_noise_apply(x: Tensor, noisy: Tensor, noise: Tensor, *, std: float) -> Tensor:
    return torch.where(_per_sample(noisy), (x + std * noise).clamp_(0.0, 1.0), x)


gaussian_noise = Augmentation("gaussian_noise", _gaussian_noise_params, _gaussian_noise_apply, {
    "p": Param(0.5, unit, "probability of adding Gaussian noise"),
    "std": Param(0.1, number(0.0, inclusive=True), "its standard deviation", drawn=False),
}, "Add N(0, std^2) noise to every value with probability p per image, then clip.")


def _salt_and_pepper_params(shape: Shape, generator: torch.Generator, device: torch.device, *,
                            p: float) -> dict[str, Tensor]:
    n, _, h, w = shape
    return {"noisy": _bernoulli(n, p, generator, device),
            "u": torch.rand(n, 1, h, w, generator=generator, device=device)}


def _salt_and_pepper_apply(x: Tensor, noisy: Tensor, u: Tensor, *, amount: float) -> Tensor:
    """Pixels (all channels) with u < amount/2 turn white, with u >= 1 - amount/2 black."""
    hit = _per_sample(noisy)
    salt = hit & (u < amount / 2)
    pepper = hit & (u >= 1.0 - amount / 2)
    return torch.where(salt, torch.ones_like(x), torch.where(pepper, torch.zeros_like(x), x))


salt_and_pepper = Augmentation("salt_and_pepper", _salt_and_pepper_params, _salt_and_pepper_apply, {
    "p": Param(0.5, unit, "probability of salt-and-pepper noise"),
    "amount": Param(0.05, unit, "fraction of pixels hit (half white, half black)", drawn=False),
}, "With probability p per image, set a fraction amount of its pixels to white or black (half each).")


# ---------------------------------------------------------------------------------------------
# cutout (TF2 port; DeVries & Taylor 2017)
# ---------------------------------------------------------------------------------------------

def _cutout_params(shape: Shape, generator: torch.Generator, device: torch.device, *,
                   p: float) -> dict[str, Tensor]:
    """Whether each image is cut, and the square's centre, uniform over the pixels."""
    n, _, height, width = shape
    return {"cut": _bernoulli(n, p, generator, device),
            "cy": (torch.rand(n, generator=generator, device=device) * height).long().clamp(max=height - 1),
            "cx": (torch.rand(n, generator=generator, device=device) * width).long().clamp(max=width - 1)}


def _cutout_apply(x: Tensor, cut: Tensor, cy: Tensor, cx: Tensor, *, size: float) -> Tensor:
    """Zero a square of side ``size`` x the shorter side centred at (cy, cx), clipped at the border."""
    h, w = x.shape[-2:]
    side = max(1, int(size * min(h, w)))
    top = (cy - side // 2).view(-1, 1, 1)
    left = (cx - side // 2).view(-1, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, -1, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, -1)
    hole = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    hole = hole.unsqueeze(1) & _per_sample(cut)
    return x.masked_fill(hole, 0.0)


cutout = Augmentation("cutout", _cutout_params, _cutout_apply, {
    "p": Param(0.5, unit, "probability of a cutout"),
    "size": Param(0.5, unit, "side of the black square / shorter image side", drawn=False),
}, "With probability p per image, black out a square of side size x the shorter side.")


# ---------------------------------------------------------------------------------------------
# standardize (ablation fork: tf.image.per_image_standardization)
# ---------------------------------------------------------------------------------------------

def _standardize_params(shape: Shape, generator: torch.Generator, device: torch.device) -> dict[str, Tensor]:
    return {}


def _standardize_apply(x: Tensor) -> Tensor:
    numel = x[0].numel()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True, correction=0)
    return (x - mean) / std.clamp(min=1.0 / math.sqrt(numel))


# The result is no longer in [0, 1], which is why it comes last in PAPER_ORDER.
standardize = Augmentation("standardize", _standardize_params, _standardize_apply, {},
                           "(x - mean) / max(std, 1 / sqrt(numel)) over each whole image; draws nothing.")


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------

AUGMENTATIONS: dict[str, Augmentation] = {augmentation.name: augmentation for augmentation in (
    crop, flip, color_jitter, grayscale, blur,
    rotate, brightness, invert, solarize, gaussian_noise, salt_and_pepper, cutout, standardize,
)}

# The order a pipeline applies them in: the paper's five (SimCLR Appendix A), then the ablation fork's
# and the TF2 port's extras; standardize last because it leaves [0, 1].
PAPER_ORDER: tuple[str, ...] = SIMCLR_AUGMENTATIONS + (
    "rotate", "brightness", "invert", "solarize", "gaussian_noise", "salt_and_pepper", "cutout", "standardize")
