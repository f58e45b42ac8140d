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
from trainers.checks import ConfigError
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


# --- crop -----------------------------------------------------------------------------------

def _lrint(x):
    return int(np.rint(x))  # to nearest, ties to even, as lrintf


def _tf_generate_random_crop(W, H, min_rel, max_rel, aspect, u_h, u_y, u_x):
    """GenerateRandomCrop of TF's sample_distorted_bounding_box_op.cc, its Uniform(n) fed floor(u n)."""
    min_area, max_area = min_rel * W * H, max_rel * W * H
    height = _lrint(np.sqrt(min_area / aspect))
    max_height = _lrint(np.sqrt(max_area / aspect))
    if _lrint(max_height * aspect) > W:
        max_height = int((W + 0.5 - 0.0000001) / aspect)
        if _lrint(max_height * aspect) > W:
            max_height -= 1
    if max_height > H:
        max_height = H
    if height >= max_height:
        height = max_height
    if height < max_height:
        height += int(u_h * (max_height - height + 1))
    width = _lrint(height * aspect)
    area = width * height
    if area < min_area:
        height += 1
        width = _lrint(height * aspect)
        area = width * height
    if area > max_area:
        height -= 1
        width = _lrint(height * aspect)
        area = width * height
    if area < min_area or area > max_area or width > W or height > H or width <= 0 or height <= 0:
        return None
    y = int(u_y * (H - height)) if height < H else 0
    x = int(u_x * (W - width)) if width < W else 0
    return y, x, height, width


def _tf_sample_box(W, H, u, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), covered=0.1):
    u_aspect, u_h, u_y, u_x = u
    for k in range(len(u_aspect)):
        aspect = u_aspect[k] * (ratio[1] - ratio[0]) + ratio[0]
        box = _tf_generate_random_crop(W, H, scale[0], scale[1], aspect, u_h[k], u_y[k], u_x[k])
        # SatisfiesOverlapConstraints with the whole image as the one box.
        if box is not None and box[2] * box[3] >= 1.0 and box[2] * box[3] / (W * H) >= covered:
            return box
    return 0, 0, H, W


@pytest.mark.parametrize("height, width", [(32, 32), (24, 40)])
def test_tf_crop_boxes_match_sample_distorted_bounding_box(height, width):
    n, attempts = 200, 100
    u = torch.rand(4, n, attempts, generator=_gen(3), dtype=torch.float64)
    ours = A.tf_crop_boxes(*u, height=height, width=width, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    for i in range(n):
        ref = _tf_sample_box(width, height, [u[j, i].tolist() for j in range(4)])
        assert tuple(int(ours[k][i]) for k in ("top", "left", "height", "width")) == ref


def test_tf_crop_falls_back_to_the_whole_image_and_covers_a_tenth():
    # Attempts that all fail (an area range the coverage test refuses) give the whole image.
    u = torch.rand(4, 8, 100, generator=_gen(4), dtype=torch.float64)
    boxes = A.tf_crop_boxes(*u, height=32, width=32, scale=(0.01, 0.05), ratio=(3 / 4, 4 / 3))
    assert (boxes["top"] == 0).all() and (boxes["height"] == 32).all() and (boxes["width"] == 32).all()
    drawn = A.crop.draw((500, 3, 32, 32), _gen(), torch.device("cpu"), sampler="tf")
    area = (drawn["height"] * drawn["width"]).double() / 1024
    assert area.min() >= 0.1 and area.max() <= 1.0
    assert (drawn["top"] + drawn["height"] <= 32).all() and (drawn["left"] + drawn["width"] <= 32).all()


def _tf_resize_bicubic_axis(line, out_size, legacy):
    """TF's ResizeBicubic along one axis of a 1-D float64 signal (resize_bicubic_op.cc)."""
    a = -0.75 if legacy else -0.5
    n = len(line)
    scale = n / out_size
    near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # noqa: E731
    far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # noqa: E731
    out = np.empty(out_size)
    for o in range(out_size):
        loc = o * scale if legacy else (o + 0.5) * scale - 0.5
        base = int(np.floor(loc))
        off = _lrint((loc - base) * 1024)
        w = [far(off / 1024 + 1), near(off / 1024), near((1024 - off) / 1024), far((1024 - off) / 1024 + 1)]
        idx = [base - 1, base, base + 1, base + 2]
        bounded = [min(max(i, 0), n - 1) for i in idx]
        if not legacy:
            w = [wk if b == i else 0.0 for wk, b, i in zip(w, bounded, idx)]
            total = sum(w)
            w = [wk / total for wk in w]
        out[o] = sum(wk * line[b] for wk, b in zip(w, bounded))
    return out


@pytest.mark.parametrize("resize", ["tf", "tf1"])
@pytest.mark.parametrize("side, size", [(32, 32), (40, 24)])
def test_tf_bicubic_resize_matches_tf_resize_bicubic(resize, side, size):
    x = torch.rand(4, 3, side, side, generator=_gen(5))
    p = A.crop.draw(x.shape, _gen(6), x.device, sampler="tf")
    out = A._crop_apply(x, **p, image_size=size, interpolation="bilinear", resize=resize)
    legacy = resize == "tf1"
    for i in range(4):
        t, l, h, w = (int(p[k][i]) for k in ("top", "left", "height", "width"))
        box = x[i, :, t:t + h, l:l + w].double().numpy()
        rows = np.stack([[_tf_resize_bicubic_axis(box[c, :, j], size, legacy) for j in range(w)]
                         for c in range(3)]).transpose(0, 2, 1)  # (3, size, w)
        ref = np.stack([[_tf_resize_bicubic_axis(rows[c, r], size, legacy) for r in range(size)] for c in range(3)])
        np.testing.assert_allclose(out[i].double().numpy(), np.clip(ref, 0, 1), atol=TOL, rtol=0)


TF_RECIPE = {"loss_reduction": "sum_of_views", "zero_init_residual": True, "head_init": "tf", "crop.sampler": "tf",
             "crop.resize": "tf1", "color_jitter.ops": "tf", "blur.sigma_per": "batch", "blur.padding": "zero"}


def test_the_tf_recipe_options_make_one_config_and_one_pipeline():
    from trainers.augmentation.pipeline import build_pipeline

    cfg = TrainConfig.from_dict({**TF_RECIPE, "augmentations": "crop,flip,color_jitter,grayscale,blur"})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    pipeline = build_pipeline(cfg.augmentations, image_size=32, params=cfg.augmentation_params)
    views = pipeline(torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8), _gen())
    assert views.shape == (6, 3, 32, 32) and 0.0 <= views.min() and views.max() <= 1.0


# --- recipe: tf, the one switch -------------------------------------------------------------

def _default(key):
    """The value a key has when neither it nor a recipe is given."""
    if "." in key:
        name, param = key.split(".")
        return A.AUGMENTATIONS[name].params[param].default
    return getattr(TrainConfig(), key)


def test_recipe_tf_sets_every_detail_of_the_tf_recipe():
    options = TrainConfig.from_dict({"recipe": "tf"}).to_dict()
    assert {key: options[key] for key in TF_RECIPE} == TF_RECIPE
    assert all(_default(key) != value for key, value in TF_RECIPE.items())  # each is a change


def test_recipe_torch_is_the_defaults():
    assert TrainConfig.from_dict({"recipe": "torch"}) == TrainConfig(recipe="torch") == TrainConfig()


@pytest.mark.parametrize("key", sorted(TF_RECIPE))
def test_an_explicit_key_wins_over_the_recipe(key):
    own = _default(key)
    cfg = TrainConfig.from_dict({"recipe": "tf", key: own})
    options = cfg.to_dict()
    assert options[key] == own
    assert {k: options[k] for k in TF_RECIPE if k != key} == {k: v for k, v in TF_RECIPE.items() if k != key}
    assert TrainConfig.from_dict(options) == cfg


def test_an_unknown_recipe_is_one_line_naming_recipe_and_the_choices():
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"recipe": "tf2", "head_init": "torch"})
    assert str(info.value) == "recipe: must be one of torch, tf (got 'tf2')"
