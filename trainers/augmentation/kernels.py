"""Batched image augmentations on the batch's device, and the SimCLR pipeline built from them.

Every augmentation is a pure function ``fn(batch, generator, **params) -> batch`` of an NCHW
batch, uint8 or floating point, and gives float32: a uint8 batch is first converted to float32 in
[0, 1] (x / 255), as ``build_pipeline`` does, a floating-point one is taken as it is (values in
[0, 1] expected) and only cast to float32, so the same images give the same output either way.
Random parameters are drawn per sample from ``generator``, which must live on
the batch's device; there is no per-image Python loop, no host-device copy and no synchronisation.
Each one is split into ``_<name>_params(shape, generator, device, ...)`` (draws the per-sample
parameters as tensors) and ``_<name>_apply(x, ...)`` (applies given parameters, deterministic), so
tests can compare the result with torchvision for the same draw, and a pipeline can draw everything
first and hand the deterministic rest to ``torch.compile`` (``build_pipeline(..., compile=True)``).

``build_pipeline(names, image_size=..., **params)`` applies the chosen augmentations in
``PAPER_ORDER`` (``SIMCLR_AUGMENTATIONS`` are the paper's five). Its parameters, all optional and
selectable from a study's YAML:

=========================  ===========  =================================================
parameter                  default      meaning
=========================  ===========  =================================================
color_jitter_strength      1.0          s: brightness/contrast/saturation 0.8s, hue 0.2s
color_jitter_p             0.8          probability that colour jitter is applied
crop_scale                 (0.08, 1.0)  area fraction range of the random resized crop
crop_ratio                 (3/4, 4/3)   aspect ratio range (drawn log-uniform; misfits redrawn)
crop_interpolation         "bilinear"   "bilinear" or "bicubic" (antialiased, as v2's)
flip_p                     0.5          probability of a horizontal flip
grayscale_p                0.2          probability of converting to grey
blur_p                     0.5          probability of a Gaussian blur
blur_sigma                 (0.1, 2.0)   sigma range (uniform)
blur_kernel_size           None         odd size; None: 10% of the side (SimCLR)
rotate_p                   0.5          probability of a rotation
rotate_degrees             30.0         angle uniform in [-degrees, degrees]
brightness_p               0.8          probability of an additive brightness change
brightness_max_delta       0.4          delta uniform in [-max_delta, max_delta]
invert_p                   0.5          probability of the negative 1 - x
solarize_p                 0.2          probability of solarizing
solarize_threshold         0.5          pixels >= threshold are inverted
gaussian_noise_p           0.5          probability of adding Gaussian noise
gaussian_noise_std         0.1          its standard deviation
salt_and_pepper_p          0.5          probability of salt-and-pepper noise
salt_and_pepper_amount     0.05         fraction of pixels hit (half white, half black)
cutout_p                   0.5          probability of a cutout
cutout_size                0.5          side of the black square / shorter image side
=========================  ===========  =================================================

``standardize`` (per image: zero mean, unit variance) has no parameter. ``AUGMENTATION_PARAMS``
holds the same table as a dict, for validating a configuration.
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
Shape = tuple[int, ...]  # (N, C, H, W) of the batch a draw is for
Pipeline = Callable[[Tensor, torch.Generator], Tensor]

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


def _to_unit_float(batch: Tensor) -> Tensor:
    """The input contract of every augmentation: uint8 as float32 / 255, floating point as float32."""
    if batch.dtype == torch.uint8:
        return batch.float().div_(255.0)
    if not batch.is_floating_point():
        raise TypeError(f"augmentations take a uint8 or floating-point batch (got {batch.dtype})")
    return batch.float()


def _unit_float_input(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Make a public augmentation take its batch through ``_to_unit_float`` (its signature is kept)."""
    @functools.wraps(fn)
    def augmentation(x: Tensor, generator: torch.Generator, **params) -> Tensor:
        return fn(_to_unit_float(x), generator, **params)
    return augmentation


# ---------------------------------------------------------------------------------------------
# crop: random resized crop
# ---------------------------------------------------------------------------------------------

def _crop_params(shape: Shape, generator: torch.Generator, device: torch.device, *,
                 scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> dict[str, Tensor]:
    """Crop boxes (top, left, height, width), int64 of shape (N,), drawn as torchvision's
    RandomResizedCrop.get_params does: ten tries of area and log-aspect, the first box that fits,
    else a centre crop with the aspect ratio clamped into ``ratio``."""
    n, _, height, width = shape
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


def _crop_apply(x: Tensor, top: Tensor, left: Tensor, height: Tensor, width: Tensor, *,
                image_size: int, interpolation: str = "bilinear") -> Tensor:
    """Resample each box to image_size x image_size: two batched matmuls with per-sample weights."""
    n, c, h, w = x.shape
    wy = _resample_matrix(top, height, h, image_size, interpolation).to(x.dtype)
    wx = _resample_matrix(left, width, w, image_size, interpolation).to(x.dtype)
    # Two plain bmm's, channels folded into the rows, instead of matmuls that broadcast the weights
    # over channels (which materialises them C times): ~1.7x faster on the CPU.
    s = image_size
    cols = torch.bmm(x.reshape(n, c * h, w), wx.transpose(1, 2))                    # (N, C*H, S)
    rows = torch.bmm(wy, cols.view(n, c, h, s).transpose(1, 2).reshape(n, h, c * s))  # (N, S, C*S)
    out = rows.view(n, s, c, s).transpose(1, 2).contiguous()
    return out.clamp_(0.0, 1.0) if interpolation == "bicubic" else out


@_unit_float_input
def crop(x: Tensor, generator: torch.Generator, *, image_size: int,
         scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
         interpolation: str = "bilinear") -> Tensor:
    """Random resized crop to image_size x image_size (torchvision RandomResizedCrop semantics)."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"crop interpolation must be one of {', '.join(INTERPOLATIONS)} (got {interpolation!r})")
    params = _crop_params(x.shape, generator, x.device, scale=scale, ratio=ratio)
    return _crop_apply(x, **params, image_size=image_size, interpolation=interpolation)


def _resize_full(x: Tensor, image_size: int) -> Tensor:
    """Deterministic resize of whole images (used when no crop is chosen but sizes differ)."""
    n, device = x.shape[0], x.device
    zeros = torch.zeros(n, dtype=torch.long, device=device)
    h = torch.full((n,), x.shape[-2], dtype=torch.long, device=device)
    w = torch.full((n,), x.shape[-1], dtype=torch.long, device=device)
    return _crop_apply(x, zeros, zeros, h, w, image_size=image_size)


# ---------------------------------------------------------------------------------------------
# flip
# ---------------------------------------------------------------------------------------------

def _flip_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float = 0.5) -> dict[str, Tensor]:
    n = shape[0]
    return {"flipped": _bernoulli(n, p, generator, device)}


def _flip_apply(x: Tensor, flipped: Tensor) -> Tensor:
    return torch.where(_per_sample(flipped), x.flip(-1), x)


@_unit_float_input
def flip(x: Tensor, generator: torch.Generator, *, p: float = 0.5) -> Tensor:
    """Horizontal flip of each image with probability p."""
    return _flip_apply(x, **_flip_params(x.shape, generator, x.device, p=p))


# ---------------------------------------------------------------------------------------------
# color_jitter
# ---------------------------------------------------------------------------------------------

# Operation indices in the per-sample order; hue is last because it is the one that is not a blend.
_BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = 0, 1, 2, 3


def _color_jitter_params(shape: Shape, generator: torch.Generator, device: torch.device, *,
                         strength: float = 1.0, p: float = 0.8) -> dict[str, Tensor]:
    """Per sample: whether jitter applies, the factors of brightness/contrast/saturation (uniform in
    [max(0, 1 - 0.8s), 1 + 0.8s]), the hue shift (uniform in [-0.2s, 0.2s]) and a random order of
    the four operations (SimCLR Appendix A, torchvision ColorJitter ranges).

    Each sample's order is a uniform random permutation. Across the batch the position of hue is
    dealt like cards (sample ``hue_deal[j]`` has hue at position j % 4), so the samples that take
    hue at a given position are a fixed-size slice: hue, the costly operation, is then computed once
    per image instead of at all four positions, with no data-dependent shapes (no device sync).
    """
    n = shape[0]
    b = 0.8 * strength
    h = min(0.2 * strength, 0.5)
    applied = _bernoulli(n, p, generator, device)
    factors = torch.stack([_uniform(n, max(0.0, 1.0 - b), 1.0 + b, generator, device) for _ in range(3)], dim=1)
    hue = _uniform(n, -h, h, generator, device)
    hue_deal = torch.randperm(n, generator=generator, device=device)
    hue_position = torch.empty(n, dtype=torch.long, device=device).scatter_(
        0, hue_deal, torch.arange(n, device=device) % 4).view(-1, 1)
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


def _blend_toward(x: Tensor, op: Tensor, factor: Tensor) -> Tensor:
    """One of brightness/contrast/saturation per sample, all three being clamp(f x + (1 - f) ref)
    with ref = 0, the image's mean luma, or the pixel's luma respectively."""
    gray = _luma(x)
    op = op.view(-1, 1, 1, 1)
    mean_or_zero = gray.mean(dim=(1, 2, 3), keepdim=True) * (op == _CONTRAST)
    ref = torch.where(op == _SATURATION, gray, mean_or_zero)
    if x.shape[1] != 3:
        # Saturation leaves a single-channel image unchanged, as torchvision does.
        factor = torch.where(op.view(-1) == _SATURATION, torch.ones_like(factor), factor)
    return torch.lerp(ref, x, factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def _color_jitter_apply(x: Tensor, applied: Tensor, factors: Tensor, hue: Tensor, order: Tensor,
                        hue_deal: Tensor) -> Tensor:
    out = x
    for position in range(4):
        op = order[:, position]
        blend_factor = factors.gather(1, op.clamp(max=_SATURATION).unsqueeze(1)).squeeze(1)
        blended = _blend_toward(out, op, blend_factor)
        rows = hue_deal[position::4]  # the samples whose operation at this position is hue
        out = blended.index_copy_(0, rows, _adjust_hue(out.index_select(0, rows), hue.index_select(0, rows)))
    return torch.where(_per_sample(applied), out, x)


@_unit_float_input
def color_jitter(x: Tensor, generator: torch.Generator, *, strength: float = 1.0, p: float = 0.8) -> Tensor:
    """SimCLR colour distortion: brightness, contrast, saturation, hue in a random order per sample,
    applied to each image with probability p."""
    return _color_jitter_apply(x, **_color_jitter_params(x.shape, generator, x.device, strength=strength, p=p))


# ---------------------------------------------------------------------------------------------
# grayscale
# ---------------------------------------------------------------------------------------------

def _grayscale_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float = 0.2) -> dict[str, Tensor]:
    n = shape[0]
    return {"grey": _bernoulli(n, p, generator, device)}


def _grayscale_apply(x: Tensor, grey: Tensor) -> Tensor:
    return torch.where(_per_sample(grey), _luma(x).expand_as(x), x)


@_unit_float_input
def grayscale(x: Tensor, generator: torch.Generator, *, p: float = 0.2) -> Tensor:
    """Replace each image by its luma in every channel with probability p."""
    return _grayscale_apply(x, **_grayscale_params(x.shape, generator, x.device, p=p))


# ---------------------------------------------------------------------------------------------
# blur
# ---------------------------------------------------------------------------------------------

def blur_kernel_size_for(side: int) -> int:
    """SimCLR's kernel: 10% of the image side, made odd (32 -> 3, 96 -> 9, 224 -> 23)."""
    return (side // 10) // 2 * 2 + 1


def _blur_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float = 0.5,
                 sigma: tuple[float, float] = (0.1, 2.0)) -> dict[str, Tensor]:
    n = shape[0]
    return {"blurred": _bernoulli(n, p, generator, device), "sigma": _uniform(n, sigma[0], sigma[1], generator, device)}


def _blur_apply(x: Tensor, blurred: Tensor, sigma: Tensor, *, kernel_size: int | None = None) -> Tensor:
    """Separable Gaussian blur with a per-sample sigma: grouped convolutions, one group per channel
    of each image, reflect padding (torchvision gaussian_blur). kernel_size None: 10% of the side."""
    kernel_size = blur_kernel_size_for(min(x.shape[-2:])) if kernel_size is None else kernel_size
    if kernel_size % 2 == 0 or kernel_size < 1:
        raise ValueError(f"blur kernel_size must be a positive odd integer (got {kernel_size})")
    if kernel_size == 1:
        return x
    n, c, h, w = x.shape
    half = (kernel_size - 1) / 2
    taps = torch.linspace(-half, half, kernel_size, device=x.device)
    kernel = torch.softmax(-0.5 * (taps.view(1, -1) / sigma.view(-1, 1)) ** 2, dim=1)  # (N, k), sums to 1
    kernel = kernel.repeat_interleave(c, dim=0)  # (N*C, k)
    pad = kernel_size // 2
    flat = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, kernel_size), groups=n * c)
    flat = F.conv2d(flat, kernel.view(n * c, 1, kernel_size, 1), groups=n * c)
    return torch.where(_per_sample(blurred), flat.view(n, c, h, w), x)


@_unit_float_input
def blur(x: Tensor, generator: torch.Generator, *, p: float = 0.5, sigma: tuple[float, float] = (0.1, 2.0),
         kernel_size: int | None = None) -> Tensor:
    """Gaussian blur with sigma uniform in ``sigma``, with probability p; kernel 10% of the side."""
    return _blur_apply(x, **_blur_params(x.shape, generator, x.device, p=p, sigma=sigma), kernel_size=kernel_size)


# ---------------------------------------------------------------------------------------------
# rotate (TF2 port)
# ---------------------------------------------------------------------------------------------

def _rotate_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float = 0.5,
                   degrees: float = 30.0) -> dict[str, Tensor]:
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


@_unit_float_input
def rotate(x: Tensor, generator: torch.Generator, *, p: float = 0.5, degrees: float = 30.0) -> Tensor:
    """Rotate by an angle uniform in [-degrees, degrees] with probability p; corners become black."""
    return _rotate_apply(x, **_rotate_params(x.shape, generator, x.device, p=p, degrees=degrees))


# ---------------------------------------------------------------------------------------------
# brightness (ablation fork: tf.image.random_brightness, additive)
# ---------------------------------------------------------------------------------------------

def _brightness_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float = 0.8,
                       max_delta: float = 0.4) -> dict[str, Tensor]:
    n = shape[0]
    applied = _bernoulli(n, p, generator, device)
    delta = _uniform(n, -max_delta, max_delta, generator, device)
    return {"delta": torch.where(applied, delta, torch.zeros_like(delta))}


def _brightness_apply(x: Tensor, delta: Tensor) -> Tensor:
    return (x + delta.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


@_unit_float_input
def brightness(x: Tensor, generator: torch.Generator, *, p: float = 0.8, max_delta: float = 0.4) -> Tensor:
    """Add a delta uniform in [-max_delta, max_delta] to every pixel with probability p, then clip."""
    return _brightness_apply(x, **_brightness_params(x.shape, generator, x.device, p=p, max_delta=max_delta))


# ---------------------------------------------------------------------------------------------
# invert and solarize
# ---------------------------------------------------------------------------------------------

def _invert_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float = 0.5) -> dict[str, Tensor]:
    n = shape[0]
    return {"inverted": _bernoulli(n, p, generator, device)}


def _invert_apply(x: Tensor, inverted: Tensor) -> Tensor:
    return torch.where(_per_sample(inverted), 1.0 - x, x)


@_unit_float_input
def invert(x: Tensor, generator: torch.Generator, *, p: float = 0.5) -> Tensor:
    """Photographic negative (1 - x) of each image with probability p."""
    return _invert_apply(x, **_invert_params(x.shape, generator, x.device, p=p))


def _solarize_params(shape: Shape, generator: torch.Generator, device: torch.device, *, p: float = 0.2) -> dict[str, Tensor]:
    n = shape[0]
    return {"solarized": _bernoulli(n, p, generator, device)}


def _solarize_apply(x: Tensor, solarized: Tensor, *, threshold: float = 0.5) -> Tensor:
    return torch.where(_per_sample(solarized) & (x >= threshold), 1.0 - x, x)


@_unit_float_input
def solarize(x: Tensor, generator: torch.Generator, *, p: float = 0.2, threshold: float = 0.5) -> Tensor:
    """Invert the pixels at or above threshold, with probability p per image (BYOL's p = 0.2)."""
    return _solarize_apply(x, **_solarize_params(x.shape, generator, x.device, p=p), threshold=threshold)


# ---------------------------------------------------------------------------------------------
# noise: gaussian_noise (TF2 port), salt_and_pepper (ablation fork)
# ---------------------------------------------------------------------------------------------

def _gaussian_noise_params(shape: Shape, generator: torch.Generator, device: torch.device, *,
                           p: float = 0.5) -> dict[str, Tensor]:
    return {"noisy": _bernoulli(shape[0], p, generator, device),
            "noise": torch.randn(shape, generator=generator, device=device)}


def _gaussian_noise_apply(x: Tensor, noisy: Tensor, noise: Tensor, *, std: float = 0.1) -> Tensor:
    return torch.where(_per_sample(noisy), (x + std * noise).clamp_(0.0, 1.0), x)


@_unit_float_input
def gaussian_noise(x: Tensor, generator: torch.Generator, *, p: float = 0.5, std: float = 0.1) -> Tensor:
    """Add N(0, std^2) noise to every value with probability p per image, then clip."""
    return _gaussian_noise_apply(x, **_gaussian_noise_params(x.shape, generator, x.device, p=p), std=std)


def _salt_and_pepper_params(shape: Shape, generator: torch.Generator, device: torch.device, *,
                            p: float = 0.5) -> dict[str, Tensor]:
    n, _, h, w = shape
    return {"noisy": _bernoulli(n, p, generator, device),
            "u": torch.rand(n, 1, h, w, generator=generator, device=device)}


def _salt_and_pepper_apply(x: Tensor, noisy: Tensor, u: Tensor, *, amount: float = 0.05) -> Tensor:
    """Pixels (all channels) with u < amount/2 turn white, with u >= 1 - amount/2 black."""
    hit = _per_sample(noisy)
    salt = hit & (u < amount / 2)
    pepper = hit & (u >= 1.0 - amount / 2)
    return torch.where(salt, torch.ones_like(x), torch.where(pepper, torch.zeros_like(x), x))


@_unit_float_input
def salt_and_pepper(x: Tensor, generator: torch.Generator, *, p: float = 0.5, amount: float = 0.05) -> Tensor:
    """With probability p per image, set a fraction ``amount`` of its pixels to white or black
    (half each)."""
    return _salt_and_pepper_apply(x, **_salt_and_pepper_params(x.shape, generator, x.device, p=p), amount=amount)


# ---------------------------------------------------------------------------------------------
# cutout (TF2 port; DeVries & Taylor 2017)
# ---------------------------------------------------------------------------------------------

def _cutout_params(shape: Shape, generator: torch.Generator, device: torch.device, *,
                   p: float = 0.5) -> dict[str, Tensor]:
    """Whether each image is cut, and the square's centre, uniform over the pixels."""
    n, _, height, width = shape
    return {"cut": _bernoulli(n, p, generator, device),
            "cy": (torch.rand(n, generator=generator, device=device) * height).long().clamp(max=height - 1),
            "cx": (torch.rand(n, generator=generator, device=device) * width).long().clamp(max=width - 1)}


def _cutout_apply(x: Tensor, cut: Tensor, cy: Tensor, cx: Tensor, *, size: float = 0.5) -> Tensor:
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


@_unit_float_input
def cutout(x: Tensor, generator: torch.Generator, *, p: float = 0.5, size: float = 0.5) -> Tensor:
    """With probability p per image, black out a square of side size x the shorter side."""
    params = _cutout_params(x.shape, generator, x.device, p=p)
    return _cutout_apply(x, **params, size=size)


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


@_unit_float_input
def standardize(x: Tensor, generator: torch.Generator) -> Tensor:
    """(x - mean) / max(std, 1 / sqrt(numel)) over each whole image; draws nothing from generator.
    The result is no longer in [0, 1], which is why it comes last in PAPER_ORDER."""
    return _standardize_apply(x)


# ---------------------------------------------------------------------------------------------
# registry and pipeline
# ---------------------------------------------------------------------------------------------

AUGMENTATIONS: dict[str, Callable[..., Tensor]] = {
    "crop": crop,
    "flip": flip,
    "color_jitter": color_jitter,
    "grayscale": grayscale,
    "blur": blur,
    "rotate": rotate,
    "brightness": brightness,
    "invert": invert,
    "solarize": solarize,
    "gaussian_noise": gaussian_noise,
    "salt_and_pepper": salt_and_pepper,
    "cutout": cutout,
    "standardize": standardize,
}

# The paper's augmentations (SimCLR Appendix A), the default of a study.
SIMCLR_AUGMENTATIONS: tuple[str, ...] = ("crop", "flip", "color_jitter", "grayscale", "blur")

# The order a pipeline applies them in: SimCLR's first, then the ablation fork's and the TF2
# port's extras; standardize last because it leaves [0, 1].
PAPER_ORDER: tuple[str, ...] = SIMCLR_AUGMENTATIONS + (
    "rotate", "brightness", "invert", "solarize", "gaussian_noise", "salt_and_pepper", "cutout", "standardize")


def _tunable(name: str) -> dict[str, object]:
    """The keyword parameters (and defaults) of an augmentation that a study may set."""
    sig = inspect.signature(AUGMENTATIONS[name])
    return {p.name: p.default for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY and p.name != "image_size"}


# augmentation -> {parameter: default}, what a study may set per augmentation (`color_jitter.strength`).
TUNABLE: dict[str, dict[str, object]] = {name: _tunable(name) for name in PAPER_ORDER}

# "<augmentation>_<parameter>" -> default, every parameter build_pipeline accepts.
AUGMENTATION_PARAMS: dict[str, object] = {
    f"{name}_{field}": default for name in PAPER_ORDER for field, default in _tunable(name).items()}

# Each augmentation as its two halves: draw (random, eager) and apply (pure tensor code, compilable).
_PARTS: dict[str, tuple[Callable[..., dict[str, Tensor]], Callable[..., Tensor]]] = {
    name: (globals()[f"_{name}_params"], globals()[f"_{name}_apply"]) for name in PAPER_ORDER}


def _pipeline_params(params: dict[str, object]) -> dict[str, dict[str, object]]:
    """Split ``<augmentation>_<parameter>`` keys by augmentation, refusing unknown ones."""
    by_name: dict[str, dict[str, object]] = {name: {} for name in AUGMENTATIONS}
    # Longest names first so that "color_jitter_p" is not read as an augmentation "color".
    names = sorted(AUGMENTATIONS, key=len, reverse=True)
    for key, value in params.items():
        if key not in AUGMENTATION_PARAMS:
            raise ValueError(f"unknown augmentation parameter {key!r}; valid: {', '.join(AUGMENTATION_PARAMS)}")
        name = next(n for n in names if key.startswith(n + "_") and key[len(n) + 1:] in _tunable(n))
        by_name[name][key[len(name) + 1:]] = value
    return by_name


def _split(name: str, kwargs: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """An augmentation's keyword arguments as (those its draw takes, those its apply takes)."""
    draw_names = inspect.signature(_PARTS[name][0]).parameters
    return ({k: v for k, v in kwargs.items() if k in draw_names},
            {k: v for k, v in kwargs.items() if k not in draw_names})


def build_pipeline(names, *, image_size: int, color_jitter_strength: float = 1.0,
                   compile: bool | str = False, **params) -> Pipeline:
    """Build ``fn(batch, generator) -> float32 NCHW in [0, 1]`` (standardize excepted) applying the
    chosen augmentations in PAPER_ORDER to a uint8 (or float in [0, 1]) NCHW batch, with per-sample
    randomness drawn from ``generator`` (on the batch's device). The output is always
    image_size x image_size. For the same generator state it equals calling the chosen public
    functions one after the other.

    ``names``: an iterable of augmentation names (order does not matter) or a comma-joined string.
    ``params``: ``<augmentation>_<parameter>`` values, listed in this module's docstring.
    ``compile``: run the deterministic half (everything but the random draws, which come first)
    through ``torch.compile``: on a GPU its dozens of small elementwise kernels fuse into a few.
    True uses the default backend (inductor); a string names the backend. Meant for GPUs: on a CPU
    the inductor build took ~30 s and ran slower than eager (53 vs 42 ms per 256-image view).
    """
    if isinstance(names, str):
        names = [n for n in (part.strip() for part in names.split(",")) if n]
    chosen = set(names)
    unknown = sorted(chosen - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(PAPER_ORDER)}")
    by_name = _pipeline_params(dict(params, color_jitter_strength=color_jitter_strength))
    by_name["crop"]["image_size"] = image_size
    if by_name["crop"].get("interpolation", "bilinear") not in INTERPOLATIONS:
        raise ValueError(f"crop_interpolation must be one of {', '.join(INTERPOLATIONS)} "
                         f"(got {by_name['crop']['interpolation']!r})")
    kernel = by_name["blur"].get("kernel_size")
    if kernel is not None and (kernel % 2 == 0 or kernel < 1):
        raise ValueError(f"blur_kernel_size must be a positive odd integer (got {kernel})")
    steps = [(name, *_split(name, by_name[name])) for name in PAPER_ORDER if name in chosen]

    def transform(batch: Tensor, drawn: list[dict[str, Tensor]]) -> Tensor:
        x = _to_unit_float(batch)
        if "crop" not in chosen and x.shape[-2:] != (image_size, image_size):
            x = _resize_full(x, image_size)
        for (name, _, apply_kw), values in zip(steps, drawn):
            x = _PARTS[name][1](x, **values, **apply_kw)
        return x

    if compile:
        backend = "inductor" if compile is True else compile
        run = torch.compile(transform, dynamic=False, backend=backend)
    else:
        run = transform

    def pipeline(batch: Tensor, generator: torch.Generator) -> Tensor:
        n, c = batch.shape[:2]
        # The draws need the shape each augmentation will see: image_size from the crop (or the
        # resize that replaces it) on.
        shape = (n, c, *batch.shape[-2:]) if "crop" in chosen else (n, c, image_size, image_size)
        drawn = []
        for name, draw_kw, _ in steps:
            drawn.append(_PARTS[name][0](shape, generator, batch.device, **draw_kw))
            if name == "crop":
                shape = (n, c, image_size, image_size)
        return run(batch, drawn)

    return pipeline
