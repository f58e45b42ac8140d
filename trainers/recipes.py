"""RECIPES: the option sets that the one key ``recipe`` sets at once, each still overridable by its own key.

``torch`` is the defaults: the paper's recipe as PyTorch reimplementations run it (torchvision's crop,
colour ops and blur, PyTorch initialisation, the loss as the mean over the 2N rows). ``tf`` is
google-research/simclr's SimCLRv1 (the TF1 code the paper's tables and the ablation fork ran):
crop.resize is tf1, TF1's resize_bicubic, not tf (TF2's tf.image.resize, SimCLRv2's), because the
studies here reproduce v1's tables. Hyperparameters (lr, weight decay, batch) are not part of a recipe.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

RECIPES: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "torch": MappingProxyType({}),
    "tf": MappingProxyType({
        "loss_reduction": "sum_of_views",  # the scale TF's LARS lr and weight decay were tuned at
        "zero_init_residual": True,        # TF ResNet's init_zero on each block's last BN gamma
        "head_init": "tf",                 # the head's dense layers N(0, 0.01)
        "crop.sampler": "tf",              # sample_distorted_bounding_box
        "crop.resize": "tf1",              # TF1's resize_bicubic (SimCLRv1)
        "color_jitter.ops": "tf",          # per-channel contrast mean, HSV saturation
        "blur.sigma_per": "batch",         # one sigma per batch
        "blur.padding": "zero",            # depthwise conv, padding SAME
    }),
})
