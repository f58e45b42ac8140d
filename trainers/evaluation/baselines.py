"""What a study's trials are measured against, and a trained model's embeddings.

- ``baseline_metrics(cfg, names)``: the baselines of sthalles/SimCLR and the paper, on the data and
  with the probes of ``cfg``: ``random_init`` (the same encoder with its initial weights) and
  ``pca`` (the raw pixels projected on their top principal components).
- ``checkpoint_embeddings(checkpoint, path)``: h and g(h) of a checkpoint's model for a sample of its
  test set, with a t-SNE of each (``trainers.evaluation.embeddings.export_embeddings``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from study_files.vocabulary import BASELINES
from trainers.config import TrainConfig
from trainers.data.datasets import DataSplits, load_configured
from trainers.evaluation.embeddings import export_embeddings
from trainers.evaluation.monitors import encoder_metrics, pca_metrics
from trainers.model.networks import build_model
from trainers.training.device import resolve_device
from trainers.training.state import load_checkpoint

PCA_DIM = 128


def _data(cfg: TrainConfig) -> DataSplits:
    return load_configured(cfg)


def _random_init(cfg: TrainConfig, data: DataSplits, device: torch.device, probe: dict) -> dict[str, float]:
    """The encoder of trial ``cfg`` with the weights it starts from."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, num_classes=data.num_classes).to(device)
    return encoder_metrics(model.backbone, data, device=device, **probe)


def _pca(cfg: TrainConfig, data: DataSplits, device: torch.device, probe: dict) -> dict[str, float]:
    """The raw pixels projected on their top principal components."""
    dim = min(PCA_DIM, data.train_x[0].numel(), len(data.train_x))
    return pca_metrics(data, dim=dim, device=device, **probe)


# One scorer per name of study_files.vocabulary.BASELINES (a test holds the two together).
SCORERS: dict[str, Callable[[TrainConfig, DataSplits, torch.device, dict], dict[str, float]]] = {
    "random_init": _random_init,
    "pca": _pca,
}


def baseline_metrics(cfg: TrainConfig, names: tuple[str, ...] | list[str] = BASELINES) -> dict[str, dict[str, float]]:
    """{baseline: metrics} under the trials' metric names: ``knn_top1`` and ``linear_top1`` on a
    classification set, ``linear_r2`` on a regression set. The linear probe is always fitted."""
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise ValueError(f"unknown baseline {unknown[0]!r}; valid: {', '.join(BASELINES)}")
    device = resolve_device(cfg.device)
    data = _data(cfg)
    probe = {"knn_k": cfg.knn_k, "knn_temperature": cfg.knn_temperature, "linear": True, "seed": cfg.seed}
    return {name: SCORERS[name](cfg, data, device, probe) for name in names}


def checkpoint_embeddings(checkpoint: str | Path, path: str | Path, *, sample: int = 500,
                          device: str | None = None) -> Path:
    """Export h, z = g(h) and their t-SNE for `sample` test images of the checkpoint's run to `path`."""
    state = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_dict(state["config"])
    target = resolve_device(device or cfg.device)
    data = _data(cfg)
    model = build_model(cfg, num_classes=data.num_classes)  # a supervised run's classifier is in the state
    model.load_state_dict(state["model"])
    model.to(target)
    path = export_embeddings(model, data.test_x, data.test_y, path, sample=sample, seed=cfg.seed, device=target)
    if data.target_names:  # the class names, or the regression targets (the columns of `labels`)
        arrays = dict(np.load(path))
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays, target_names=np.array(list(data.target_names)))
    return path
