"""Scoring a trained encoder by one protocol (``simclr-sweep evaluate`` and a study's ``finetune:``).

- ``knn``: the weighted kNN monitor on frozen h (``knn_top1``);
- ``linear``: the linear probe on frozen h (``linear_top1``; ``linear_r2`` on a regression set);
- ``finetune``: the encoder and a linear layer fine-tuned on a class-balanced fraction of the labels,
  with crop and flip (the paper's semi-supervised protocol; ``finetune_top1`` per fraction);
- ``segmentation``: the encoder's trunk and a 1x1 classifier fine-tuned on ``image,labelmap`` pairs
  (``mean_iou``).

Each returns rows ``{protocol, labels, metric, value, epochs, train_images, test_images}``;
``checkpoint_finetune`` (a study's ``finetune:``) adds ``encoder``, and the study the ``trial_id``: the
columns of ``tables/finetune.parquet`` (``study_files.schema.FINETUNE_SCHEMA``).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from study_files.vocabulary import PROTOCOLS
from trainers.augmentation.pipeline import build_pipeline
from trainers.data.datasets import DataSplits, load_dataset
from trainers.evaluation.finetune import (
    IGNORE_INDEX, FinetuneConfig, balanced_subset, finetune_classifier, finetune_segmentation,
    load_segmentation_pairs,
)
from trainers.evaluation.export import checkpoint_encoder
from trainers.evaluation.monitors import embed, knn_top1
from trainers.evaluation.probes import linear_r2, linear_top1
from trainers.model.networks import build_model
from trainers.training.device import resolve_device

FINETUNE_AUGMENTATIONS = ("crop", "flip")  # the paper fine-tunes with random crops and flips only
SEGMENTATION_TEST_SHARE = 0.2  # held out of a single file list when no test list is given
SEGMENTATION_IMAGE_SIZE = 64  # pairs are resized to this square size unless told

Row = dict[str, Any]


def _row(protocol: str, metric: str, value: float, *, labels: float | None = None, epochs: int | None = None,
         train_images: int, test_images: int) -> Row:
    return {"protocol": protocol, "labels": labels, "metric": metric, "value": float(value), "epochs": epochs,
            "train_images": train_images, "test_images": test_images}


def score_knn(encoder: nn.Module, data: DataSplits, *, k: int, temperature: float,
              device: torch.device) -> list[Row]:
    """The weighted kNN top-1 of frozen h (bank: the labelled train split)."""
    if data.task != "classification":
        raise ValueError("knn: needs a data set with classes; use linear on a regression set")
    bank = embed(encoder, data.train_x, device=device)
    query = embed(encoder, data.test_x, device=device)
    top1 = knn_top1(bank, data.train_y, query, data.test_y, num_classes=data.num_classes, k=k, temperature=temperature)
    return [_row("knn", "knn_top1", top1, labels=1.0, train_images=len(data.train_x), test_images=len(data.test_x))]


def score_linear(encoder: nn.Module, data: DataSplits, *, seed: int, device: torch.device) -> list[Row]:
    """The linear probe on frozen h: top-1, or the mean R^2 over the targets of a regression set."""
    train = embed(encoder, data.train_x, device=device)
    test = embed(encoder, data.test_x, device=device)
    sizes = {"labels": 1.0, "train_images": len(data.train_x), "test_images": len(data.test_x)}
    if data.task == "classification":
        top1 = linear_top1(train, data.train_y, test, data.test_y, num_classes=data.num_classes, seed=seed)
        return [_row("linear", "linear_top1", top1, **sizes)]
    r2 = linear_r2(train, data.train_y, test, data.test_y, target_names=data.target_names, seed=seed)
    return [_row("linear", "linear_r2", r2["mean"], **sizes)]


def score_finetune(encoder: nn.Module, data: DataSplits, *, labels: Sequence[float], cfg: FinetuneConfig,
                   device: torch.device) -> list[Row]:
    """Top-1 after fine-tuning a copy of the encoder on each fraction of the labels (1.0: all)."""
    if data.task != "classification":
        raise ValueError("finetune: needs a data set with classes (got a regression set)")
    augment = build_pipeline(FINETUNE_AUGMENTATIONS, image_size=int(data.train_x.shape[-1]))
    rows = []
    for fraction in labels:
        top1 = finetune_classifier(encoder, data.train_x, data.train_y, data.test_x, data.test_y,
                                   num_classes=data.num_classes, label_fraction=fraction, cfg=cfg, augment=augment,
                                   device=device)
        used = len(balanced_subset(data.train_y, fraction, seed=cfg.seed))
        rows.append(_row("finetune", "finetune_top1", top1, labels=fraction, epochs=cfg.epochs, train_images=used,
                         test_images=len(data.test_x)))
    return rows


def segmentation_data(file_list: str | Path, test_list: Optional[str | Path], *, image_size: int,
                      num_classes: Optional[int], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                     torch.Tensor, int]:
    """(train images, train maps, test images, test maps, classes) from ``image,labelmap`` lists.

    Without a test list, a seeded ``SEGMENTATION_TEST_SHARE`` of the pairs (at least one) is held out.
    The classes are ``num_classes``, else one more than the largest class id in any map."""
    images, maps = load_segmentation_pairs(file_list, image_size, num_classes=num_classes)
    if test_list is not None:
        test_images, test_maps = load_segmentation_pairs(test_list, image_size, num_classes=num_classes)
    else:
        if len(images) < 2:
            raise ValueError(f"segmentation: {file_list} holds {len(images)} pair; give at least 2, or a test list")
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
        held = max(1, round(len(images) * SEGMENTATION_TEST_SHARE))
        test_images, test_maps = images[order[:held]], maps[order[:held]]
        images, maps = images[order[held:]], maps[order[held:]]
    if num_classes is None:
        labelled = torch.cat([maps[maps != IGNORE_INDEX], test_maps[test_maps != IGNORE_INDEX]])
        if not labelled.numel():
            raise ValueError(f"segmentation: the label maps of {file_list} hold no class ids (every pixel is "
                             f"{IGNORE_INDEX}, ignored)")
        num_classes = int(labelled.max()) + 1
    return images, maps, test_images, test_maps, num_classes


def score_segmentation(encoder: nn.Module, file_list: str | Path, test_list: Optional[str | Path] = None, *,
                       image_size: int, num_classes: Optional[int], cfg: FinetuneConfig,
                       device: torch.device) -> list[Row]:
    """Mean IoU on the test pairs after fine-tuning the encoder's trunk and a 1x1 classifier."""
    train_x, train_m, test_x, test_m, classes = segmentation_data(file_list, test_list, image_size=image_size,
                                                                  num_classes=num_classes, seed=cfg.seed)
    miou = finetune_segmentation(encoder, train_x, train_m, test_x, test_m, num_classes=classes, cfg=cfg, device=device)
    return [_row("segmentation", "mean_iou", miou, labels=1.0, epochs=cfg.epochs, train_images=len(train_x),
                 test_images=len(test_x))]


def finetune_config(*, epochs: Optional[int] = None, lr: Optional[float] = None, batch_size: Optional[int] = None,
                    seed: int = 0) -> FinetuneConfig:
    """``FinetuneConfig``'s defaults with the given values in their place."""
    given = {"epochs": epochs, "lr": lr, "batch_size": batch_size}
    return replace(FinetuneConfig(seed=seed), **{k: v for k, v in given.items() if v is not None})


def score(encoder: nn.Module, protocol: str, *, data: Optional[DataSplits] = None, labels: Sequence[float] = (1.0,),
          cfg: FinetuneConfig = FinetuneConfig(), knn_k: int = 200, knn_temperature: float = 0.1,
          file_list: Optional[str | Path] = None, test_list: Optional[str | Path] = None,
          image_size: int = SEGMENTATION_IMAGE_SIZE, num_classes: Optional[int] = None,
          device: torch.device = torch.device("cpu")) -> list[Row]:
    """The rows of one protocol: ``data`` for knn, linear and finetune; ``file_list`` for segmentation."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: must be one of {', '.join(PROTOCOLS)} (got {protocol!r})")
    if protocol == "segmentation":
        if file_list is None:
            raise ValueError("segmentation: needs a file list of `image,labelmap` lines")
        return score_segmentation(encoder, file_list, test_list, image_size=image_size, num_classes=num_classes,
                                  cfg=cfg, device=device)
    if data is None:
        raise ValueError(f"{protocol}: needs a labelled data set")
    if protocol == "knn":
        return score_knn(encoder, data, k=knn_k, temperature=knn_temperature, device=device)
    if protocol == "linear":
        return score_linear(encoder, data, seed=cfg.seed, device=device)
    return score_finetune(encoder, data, labels=labels, cfg=cfg, device=device)


def checkpoint_finetune(checkpoint: str | Path, *, labels: Sequence[float] = (), epochs: Optional[int] = None,
                        lr: Optional[float] = None, batch_size: Optional[int] = None,
                        segmentation: Optional[dict[str, Any]] = None, random_init: bool = False) -> list[Row]:
    """A study's ``finetune:`` for one trial's checkpoint, on that trial's data: ``finetune`` at each label
    fraction, then ``segmentation`` (``file_list``, ``test_list``, ``num_classes``, ``image_size``) when
    given. Rows carry ``encoder``: ``trial``, or ``random_init`` for the same encoder with its initial
    weights (supervised training from scratch on the same labels), scored too when ``random_init``."""
    trained, train_cfg, _ = checkpoint_encoder(checkpoint)
    device = resolve_device(train_cfg.device)
    cfg = finetune_config(epochs=epochs, lr=lr, batch_size=batch_size, seed=train_cfg.seed)
    encoders = [("trial", trained)]
    if random_init:
        torch.manual_seed(train_cfg.seed)
        encoders.append(("random_init", build_model(train_cfg).backbone))
    data = None
    if labels:
        data = load_dataset(train_cfg.dataset, root=train_cfg.data_root, download=train_cfg.download,
                            size=train_cfg.dataset_size or None, seed=train_cfg.seed)
    rows = []
    for name, encoder in encoders:
        if labels:
            rows += [{"encoder": name, **row} for row in score_finetune(encoder, data, labels=labels, cfg=cfg,
                                                                         device=device)]
        if segmentation:
            seg = {**segmentation, "image_size": segmentation.get("image_size") or SEGMENTATION_IMAGE_SIZE}
            rows += [{"encoder": name, **row} for row in score_segmentation(encoder, cfg=cfg, device=device, **seg)]
    return rows
