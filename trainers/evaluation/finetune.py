"""Fine-tuning a pre-trained encoder: classification from a label fraction (the paper's
semi-supervised protocol) and segmentation from `image,labelmap` pairs, scored by mean IoU.

The encoder is copied, never changed in place. Both trainings are minibatch SGD (momentum 0.9,
Nesterov, cosine decay), seeded, on the given device.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from trainers.data.cache import take_rows
from trainers.data.image_files import read_image

Tensor = torch.Tensor
Augment = Callable[[Tensor, torch.Generator], Tensor]
IGNORE_INDEX = 255  # label-map value for pixels that count for nothing (borders, unlabelled)


def balanced_subset(labels: Tensor, fraction: float, *, seed: int) -> Tensor:
    """Seeded indices of about `fraction` of each class (at least one image per class), sorted."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label_fraction: must be in (0, 1] (got {fraction})")
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for cls in labels.cpu().unique(sorted=True):
        idx = (labels.cpu() == cls).nonzero(as_tuple=True)[0]
        keep = max(1, round(len(idx) * fraction))
        chosen.append(idx[torch.randperm(len(idx), generator=gen)[:keep]])
    return torch.cat(chosen).sort().values


@dataclass
class FinetuneConfig:
    """Optimisation of one fine-tuning run."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.05
    weight_decay: float = 0.0  # the paper fine-tunes without weight decay
    seed: int = 0


def _train(model: nn.Module, batches: Callable[[torch.Generator], Iterator[tuple[Tensor, Tensor]]],
           loss_fn: Callable[[Tensor, Tensor], Tensor], cfg: FinetuneConfig, steps_per_epoch: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs * steps_per_epoch))
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    with torch.enable_grad():
        for _ in range(cfg.epochs):
            for x, y in batches(gen):
                loss = loss_fn(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    model.eval()


def _to_float(batch: Tensor, augment: Optional[Augment], gen: torch.Generator) -> Tensor:
    return augment(batch, gen) if augment is not None else batch.float() / 255


def finetune_classifier(encoder: nn.Module, train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *,
                        num_classes: int, label_fraction: float = 1.0, cfg: FinetuneConfig = FinetuneConfig(),
                        augment: Optional[Augment] = None, device: str | torch.device = "cpu") -> float:
    """Test top-1 after fine-tuning a copy of `encoder` plus a linear layer on a class-balanced
    `label_fraction` of the training set (1%, 10%, 100% in the paper), chosen by `cfg.seed`.

    `augment(batch_uint8, generator) -> float [0, 1]` (e.g. crop + flip from `build_pipeline`)
    is applied to training batches; without it images are only scaled to [0, 1].
    """
    device = torch.device(device)
    subset = balanced_subset(train_y, label_fraction, seed=cfg.seed)
    # Images stay where they are (host memory or a mapped cache); each batch goes to the device.
    x_train, y_train = take_rows(train_x, subset), train_y[subset].to(device).long()
    backbone = copy.deepcopy(encoder).to(device)
    with torch.no_grad():
        backbone.eval()
        rep_dim = backbone(x_train[:2].to(device).float() / 255).shape[1]
    model = nn.Sequential(backbone, nn.Linear(rep_dim, num_classes)).to(device)
    batch_size = min(cfg.batch_size, len(subset))
    steps = max(1, len(subset) // batch_size)

    def batches(gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        perm = torch.randperm(len(subset), generator=gen)
        for idx in perm[:steps * batch_size].view(steps, batch_size):
            yield _to_float(x_train[idx].to(device), augment, gen), y_train[idx.to(device)]

    _train(model, batches, F.cross_entropy, cfg, steps)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(test_x), 512):
            logits = model(test_x[start:start + 512].to(device).float() / 255)
            correct += int((logits.argmax(1) == test_y[start:start + 512].to(device)).sum())
    return correct / len(test_x)


def spatial_trunk(encoder: nn.Module) -> nn.Sequential:
    """The encoder up to (not including) its global pooling: a feature map instead of h."""
    if not isinstance(encoder, nn.Sequential):
        raise ValueError(f"segmentation: the encoder must be an nn.Sequential ending in global pooling "
                         f"(got {type(encoder).__name__})")
    layers = []
    for layer in encoder:
        if isinstance(layer, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            return nn.Sequential(*layers)
        layers.append(layer)
    raise ValueError("segmentation: the encoder has no global pooling layer to cut at")


class SegmentationNet(nn.Module):
    """Encoder trunk, a 1x1 convolution to class scores, bilinear upsampling to the input size."""

    def __init__(self, trunk: nn.Module, channels: int, num_classes: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        scores = self.classifier(self.trunk(x))
        return F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)


def mean_iou(pred: Tensor, target: Tensor, *, num_classes: int, ignore_index: int = IGNORE_INDEX) -> float:
    """Mean over classes of |pred = c and target = c| / |pred = c or target = c|, summed over
    every pixel of the set; classes absent from both are skipped, ignored pixels count nowhere."""
    keep = target != ignore_index
    p, t = pred[keep].long(), target[keep].long()
    inter = torch.bincount(t[p == t], minlength=num_classes)[:num_classes].double()
    union = (torch.bincount(p, minlength=num_classes)[:num_classes]
             + torch.bincount(t, minlength=num_classes)[:num_classes]).double() - inter
    present = union > 0
    if not present.any():
        raise ValueError("mean_iou: no labelled pixels to score")
    return float((inter[present] / union[present]).mean())


def load_segmentation_pairs(list_file: str | Path, image_size: int, *,
                            num_classes: Optional[int] = None) -> tuple[Tensor, Tensor]:
    """`image,labelmap` lines (paths relative to the list) as uint8 images [N, 3, S, S] and int64
    label maps [N, S, S] (class ids as grey values, 255 = ignore). Each map must have its image's
    size; both are resized to `image_size` (nearest for maps)."""
    list_file = Path(list_file)
    name = "segmentation"
    if not list_file.is_file():
        raise ValueError(f"dataset {name}: no file list {list_file} (expected `image,labelmap` lines)")
    images, maps = [], []
    for lineno, line in enumerate(list_file.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"dataset {name}: {list_file}:{lineno}: expected `image,labelmap` (got {line!r})")
        image_path, map_path = (p if Path(p).is_absolute() else list_file.parent / p for p in map(Path, parts))
        image = read_image(image_path, image_size, dataset=name)
        label_map = read_image(map_path, image_size, dataset=name, mode="L")[0].long()
        with Image.open(image_path) as a, Image.open(map_path) as b:
            if a.size != b.size:
                raise ValueError(f"dataset {name}: label map {map_path} is {b.size[0]}x{b.size[1]} but its image "
                                 f"{image_path} is {a.size[0]}x{a.size[1]}")
        if num_classes is not None:
            bad = label_map[(label_map != IGNORE_INDEX) & (label_map >= num_classes)]
            if bad.numel():
                raise ValueError(f"dataset {name}: label map {map_path} holds class {int(bad[0])}, out of range "
                                 f"0..{num_classes - 1} (or {IGNORE_INDEX} to ignore)")
        images.append(image)
        maps.append(label_map)
    if not images:
        raise ValueError(f"dataset {name}: {list_file} holds no `image,labelmap` lines")
    return torch.stack(images), torch.stack(maps)


def finetune_segmentation(encoder: nn.Module, train_x: Tensor, train_masks: Tensor, test_x: Tensor,
                          test_masks: Tensor, *, num_classes: int, cfg: FinetuneConfig = FinetuneConfig(),
                          device: str | torch.device = "cpu") -> float:
    """Test mean IoU after fine-tuning a copy of the encoder's trunk plus a 1x1 classifier on
    uint8 images [N, 3, S, S] with int64 label maps [N, S, S] (255 = ignore)."""
    device = torch.device(device)
    trunk = spatial_trunk(copy.deepcopy(encoder)).to(device)
    x_train, m_train = train_x.to(device), train_masks.to(device).long()
    with torch.no_grad():
        trunk.eval()
        channels = trunk(x_train[:2].float() / 255).shape[1]
    model = SegmentationNet(trunk, channels, num_classes).to(device)
    batch_size = min(cfg.batch_size, len(x_train))
    steps = max(1, len(x_train) // batch_size)

    def batches(gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        perm = torch.randperm(len(x_train), generator=gen).to(device)
        for idx in perm[:steps * batch_size].view(steps, batch_size):
            yield x_train[idx].float() / 255, m_train[idx]

    _train(model, batches, lambda s, y: F.cross_entropy(s, y, ignore_index=IGNORE_INDEX), cfg, steps)
    preds = []
    with torch.no_grad():
        for start in range(0, len(test_x), 256):
            preds.append(model(test_x[start:start + 256].to(device).float() / 255).argmax(1))
    return mean_iou(torch.cat(preds), test_masks.to(device), num_classes=num_classes)
