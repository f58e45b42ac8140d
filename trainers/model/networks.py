"""Encoders f (the ``BACKBONES`` registry) and projection heads g (the ``HEADS`` registry).

A backbone maps float images to the representation h (the pooled output, N x dim); a head maps h
to the projection z that the loss sees. ``SimCLRModel`` returns both.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

STEMS = ("cifar", "stl", "imagenet")


class SimCLRModel(nn.Module):
    """f followed by g: ``forward(x) -> (h, z)``."""

    def __init__(self, backbone: nn.Module, head: nn.Module, rep_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.rep_dim = rep_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.backbone(x)
        return h, self.head(h)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


def convnet(*, stem: str, width: int) -> tuple[nn.Module, int]:
    """The small CPU encoder: a stride-2 conv stem, then conv-BN-ReLU blocks of 32, 64, 128 (x width)
    channels with 2x2 max pools between them and a global max pool; h of 128 x width.

    Sized so that a quickstart trial trains in seconds on one CPU thread; the global max pool learns
    shape detectors faster than an average does on the quickstart's shapes. The stride-2 first block is the stem, so ``stem`` does not apply.
    """
    c = 16 * width
    layers = (_conv_bn_relu(3, c, stride=2)                         # 16x16
              + _conv_bn_relu(c, 2 * c) + [nn.MaxPool2d(2)]         # 8x8
              + _conv_bn_relu(2 * c, 4 * c) + [nn.MaxPool2d(2)]     # 4x4
              + _conv_bn_relu(4 * c, 8 * c)
              + [nn.AdaptiveMaxPool2d(1), nn.Flatten()])
    return nn.Sequential(*layers), 8 * c


def _stem(kind: str, out: int) -> list[nn.Module]:
    if kind == "cifar":
        return [nn.Conv2d(3, out, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
    if kind == "stl":
        return [nn.Conv2d(3, out, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1)]
    if kind == "imagenet":
        return [nn.Conv2d(3, out, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1)]
    raise ValueError(f"stem: must be one of {', '.join(STEMS)} (got {kind!r})")


def _resnet(block_name: str, blocks: list[int], *, stem: str, width: int) -> tuple[nn.Module, int]:
    """torchvision's ResNet with a chosen stem and every channel count times ``width`` (the paper's 2x/4x)."""
    # Lazy: torchvision takes seconds to import, and validating a study (TrainConfig) needs none of it.
    from torchvision.models import resnet as tv_resnet

    block = getattr(tv_resnet, block_name)
    base = 64 * width
    layers = _stem(stem, base)
    inplanes = base
    for stage, count in enumerate(blocks):
        planes = base * 2 ** stage
        stride = 1 if stage == 0 else 2
        for i in range(count):
            downsample = None
            if i == 0 and (stride != 1 or inplanes != planes * block.expansion):
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion))
            layers.append(block(inplanes, planes, stride if i == 0 else 1, downsample))
            inplanes = planes * block.expansion
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    net = nn.Sequential(*layers)
    # torchvision's initialisation.
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return net, inplanes


def resnet18(*, stem: str, width: int) -> tuple[nn.Module, int]:
    """ResNet-18 (BasicBlock [2, 2, 2, 2]); h of 512 x width."""
    return _resnet("BasicBlock", [2, 2, 2, 2], stem=stem, width=width)


def resnet34(*, stem: str, width: int) -> tuple[nn.Module, int]:
    """ResNet-34 (BasicBlock [3, 4, 6, 3]); h of 512 x width."""
    return _resnet("BasicBlock", [3, 4, 6, 3], stem=stem, width=width)


def resnet50(*, stem: str, width: int) -> tuple[nn.Module, int]:
    """ResNet-50 (Bottleneck [3, 4, 6, 3]); h of 2048 x width."""
    return _resnet("Bottleneck", [3, 4, 6, 3], stem=stem, width=width)


BackboneFn = Callable[..., tuple[nn.Module, int]]

BACKBONES: dict[str, BackboneFn] = {
    "convnet": convnet,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
}


def _bn_without_bias(dim: int) -> nn.BatchNorm1d:
    # The TF code's last projection layer: BN with a scale but no centre (beta fixed at 0).
    bn = nn.BatchNorm1d(dim)
    bn.bias.requires_grad_(False)
    return bn


def nonlinear_head(rep_dim: int, *, hidden_dim: int, out_dim: int, layers: int) -> nn.Module:
    """The paper's MLP: (layers - 1) x [Linear, BN, ReLU], then Linear and BN (no centre), as in TF."""
    mods: list[nn.Module] = []
    dim = rep_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        dim = hidden_dim
    mods += [nn.Linear(dim, out_dim, bias=False), _bn_without_bias(out_dim)]
    return nn.Sequential(*mods)


def linear_head(rep_dim: int, *, hidden_dim: int, out_dim: int, layers: int) -> nn.Module:
    """One linear map and BN (no centre), as the TF code's ``linear`` projection."""
    return nn.Sequential(nn.Linear(rep_dim, out_dim, bias=False), _bn_without_bias(out_dim))


def no_head(rep_dim: int, *, hidden_dim: int, out_dim: int, layers: int) -> nn.Module:
    """z = h: the loss sees the representation itself."""
    return nn.Identity()


HEADS: dict[str, Callable[..., nn.Module]] = {
    "nonlinear": nonlinear_head,
    "linear": linear_head,
    "none": no_head,
}


# Total downsampling before the global pool: the smallest image side each encoder takes.
_STEM_STRIDE = {"cifar": 8, "stl": 16, "imagenet": 32}
_CONVNET_STRIDE = 8


def min_image_size(backbone: str, stem: str) -> int:
    """The smallest image side ``backbone`` with ``stem`` reduces to at least one pixel."""
    return _CONVNET_STRIDE if backbone == "convnet" else _STEM_STRIDE[stem]


def zero_init_residual(backbone: nn.Module) -> None:
    """TF's ResNet: the last BN of each residual branch starts with gamma 0 (init_zero), so that
    every block starts as its shortcut; the shortcut's own BN keeps gamma 1."""
    # Lazy: as in _resnet (torchvision is slow to import).
    from torchvision.models.resnet import BasicBlock, Bottleneck

    for m in backbone.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)
        elif isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)


def _tf_dense_init(head: nn.Module) -> None:
    # TF SimCLR's linear_layer: tf.layers.dense with random_normal_initializer(stddev=0.01).
    for m in head.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.01)


# How the head's dense layers start: PyTorch's default (Kaiming uniform) or TF SimCLR's N(0, 0.01).
HEAD_INITS: dict[str, Callable[[nn.Module], None]] = {
    "torch": lambda head: None,
    "tf": _tf_dense_init,
}


def build_model(cfg, num_classes: int = 0) -> SimCLRModel:
    """The encoder and head a ``TrainConfig`` describes, freshly initialised from the global RNG.

    With ``objective: supervised`` the head is a linear classifier of h into ``num_classes`` logits
    (the projection head's options do not apply; ``head_init`` does).
    """
    backbone, rep_dim = BACKBONES[cfg.backbone](stem=cfg.stem, width=cfg.width)
    if cfg.objective == "supervised":
        if num_classes < 1:
            raise ValueError(f"objective: supervised needs a classification data set (got {num_classes} classes)")
        head: nn.Module = nn.Linear(rep_dim, num_classes)
    else:
        head = HEADS[cfg.head](rep_dim, hidden_dim=cfg.projection_hidden_dim or rep_dim,
                               out_dim=cfg.projection_dim, layers=cfg.head_layers)
    if cfg.zero_init_residual:
        zero_init_residual(backbone)
    HEAD_INITS[cfg.head_init](head)
    return SimCLRModel(backbone, head, rep_dim)
