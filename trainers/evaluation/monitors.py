"""Evaluation on frozen features: batched embedding, the weighted kNN monitor, the PCA baseline, and
``evaluate``, the monitors ``fit`` runs after an epoch."""
from __future__ import annotations

from typing import Callable

import torch

from trainers.config import TrainConfig
from trainers.data.datasets import DataSplits
from trainers.evaluation.probes import linear_r2, linear_top1
from trainers.model.networks import SimCLRModel
from trainers.training.device import AMP_DTYPES

Tensor = torch.Tensor


@torch.no_grad()
def embed(model_fn: Callable[[Tensor], Tensor], images_uint8: Tensor, *, batch_size: int = 512,
          device: str | torch.device = "cpu") -> Tensor:
    """Features of uint8 [N, C, H, W] images as float32 [N, D] on `device`.

    Each batch is moved to `device` and scaled to float [0, 1] before `model_fn`; any further
    normalisation is the caller's. An `nn.Module` is put in eval mode for the pass (so batch norm
    uses and keeps its running statistics) and given back in the mode it was in.
    """
    if batch_size <= 0:
        raise ValueError(f"embed: batch_size must be > 0 (got {batch_size})")
    module = model_fn if isinstance(model_fn, torch.nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    try:
        chunks = []
        for start in range(0, images_uint8.shape[0], batch_size):
            batch = images_uint8[start:start + batch_size].to(device, non_blocking=True)
            feats = model_fn(batch.float().div_(255.0))
            chunks.append(feats.reshape(feats.shape[0], -1).float())
        if not chunks:
            raise ValueError("embed: no images to embed (got an empty tensor)")
        return torch.cat(chunks)
    finally:
        if module is not None:
            module.train(was_training)


@torch.no_grad()
def knn_top1(bank: Tensor, bank_labels: Tensor, query: Tensor, query_labels: Tensor, *,
             num_classes: int, k: int = 200, temperature: float = 0.1,
             batch_size: int = 1024) -> float:
    """Top-1 accuracy of the weighted kNN classifier (InstDisc; the SimCLR kNN monitor).

    Features are L2-normalised; each query takes its k most cosine-similar bank rows, each voting
    for its label with weight exp(similarity / temperature); the class with the largest summed
    vote wins (ties go to the lower class index). Runs on the features' device, `batch_size`
    queries at a time, so memory stays at batch_size x len(bank).
    """
    if num_classes <= 0:
        raise ValueError(f"knn_top1: num_classes must be > 0 (got {num_classes})")
    if temperature <= 0:
        raise ValueError(f"knn_top1: temperature must be > 0 (got {temperature})")
    if bank.shape[0] == 0 or query.shape[0] == 0:
        raise ValueError(f"knn_top1: empty bank or query (got {bank.shape[0]} and {query.shape[0]} rows)")
    device = bank.device
    bank_n = torch.nn.functional.normalize(bank.float(), dim=1)
    bank_labels = bank_labels.to(device).long()
    query_labels = query_labels.to(device).long()
    k = min(k, bank.shape[0])
    correct = 0
    for start in range(0, query.shape[0], batch_size):
        q = torch.nn.functional.normalize(query[start:start + batch_size].to(device).float(), dim=1)
        sim, idx = (q @ bank_n.T).topk(k, dim=1)
        # Subtracting the row's top similarity keeps exp() finite for small temperatures.
        weights = torch.exp((sim - sim[:, :1]) / temperature)
        votes = torch.zeros(q.shape[0], num_classes, device=device)
        votes.scatter_add_(1, bank_labels[idx], weights)
        correct += int((votes.argmax(dim=1) == query_labels[start:start + batch_size]).sum())
    return correct / query.shape[0]


# Bytes the PCA fit may take as float64 (rows x pixels, or pixels x pixels for the covariance).
PCA_FIT_BYTES = 2 * 1024 ** 3


@torch.no_grad()
def pca_features(train_images: Tensor, test_images: Tensor, *, dim: int = 128, max_fit_rows: int = 10_000,
                 seed: int = 0, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """The raw-pixel baseline: projections of images (scaled to [0, 1], flattened) on the top `dim`
    principal components of the training images, as float32 [N, dim] on `device`.

    The components are fitted on at most `max_fit_rows` training images (a seeded sample): more
    rows barely move the top components and the Gram matrix costs rows x pixels^2.
    """
    pixels = train_images[0].numel()
    if not 0 < dim <= pixels:
        raise ValueError(f"pca_features: dim must be in [1, {pixels}] (got {dim})")
    n = train_images.shape[0]
    # Large images: fewer rows, so that the float64 fit stays within PCA_FIT_BYTES.
    max_fit_rows = min(max_fit_rows, max(2 * dim, PCA_FIT_BYTES // (8 * pixels)))
    rows = torch.arange(n)
    if n > max_fit_rows:
        rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_fit_rows]
    fit = train_images[rows].to(device).reshape(len(rows), -1).double() / 255
    mean = fit.mean(dim=0)
    centred = fit - mean
    if dim < len(rows) < pixels:
        # Fewer rows than pixels: eigenvectors of the smaller rows x rows Gram matrix, mapped back
        # through the data, are the same top components at a fraction of the cost and memory.
        evals, u = torch.linalg.eigh(centred @ centred.T)
        evecs = centred.T @ u / evals.clamp_min(1e-12).sqrt()
    else:
        evals, evecs = torch.linalg.eigh(centred.T @ centred)
    # eigh sorts ascending; the last `dim` columns are the top components, flipped to descending.
    components = evecs[:, -dim:].flip(1)
    # A fixed sign per component (largest entry positive) makes the features reproducible.
    signs = torch.sign(components.gather(0, components.abs().argmax(dim=0, keepdim=True)))
    components = (components * signs).float()
    mean = mean.float()

    def project(images: Tensor) -> Tensor:
        out = [(images[i:i + 4096].to(device).reshape(-1, pixels).float() / 255 - mean) @ components
               for i in range(0, images.shape[0], 4096)]
        return torch.cat(out)

    return project(train_images), project(test_images)


def feature_metrics(train_feats: Tensor, test_feats: Tensor, data: DataSplits, *, knn_k: int = 200,
                    knn_temperature: float = 0.1, linear: bool = True, seed: int = 0) -> dict[str, float]:
    """The trials' metrics for frozen features of `data.train_x` and `data.test_x`.

    Classification: `knn_top1`, and `linear_top1` when `linear`. Regression: `linear_r2` (the mean
    over targets; `linear_r2` itself gives each target) when `linear`, since kNN votes need classes.
    """
    if data.task == "classification":
        out = {"knn_top1": knn_top1(train_feats, data.train_y, test_feats, data.test_y,
                                    num_classes=data.num_classes, k=knn_k, temperature=knn_temperature)}
        if linear:
            out["linear_top1"] = linear_top1(train_feats, data.train_y, test_feats, data.test_y,
                                             num_classes=data.num_classes, seed=seed)
        return out
    if not linear:
        return {}
    scores = linear_r2(train_feats, data.train_y, test_feats, data.test_y,
                       target_names=data.target_names, seed=seed)
    return {"linear_r2": scores["mean"]}


def encoder_metrics(encoder: Callable[[Tensor], Tensor], data: DataSplits, *,
                    device: str | torch.device = "cpu", batch_size: int = 512, knn_k: int = 200,
                    knn_temperature: float = 0.1, linear: bool = True, seed: int = 0) -> dict[str, float]:
    """`feature_metrics` of an encoder's representation h (the random-init baseline is the same
    call on the encoder before training)."""
    train_feats = embed(encoder, data.train_x, batch_size=batch_size, device=device)
    test_feats = embed(encoder, data.test_x, batch_size=batch_size, device=device)
    return feature_metrics(train_feats, test_feats, data, knn_k=knn_k, knn_temperature=knn_temperature,
                           linear=linear, seed=seed)


def pca_metrics(data: DataSplits, *, dim: int = 128, device: str | torch.device = "cpu", knn_k: int = 200,
                knn_temperature: float = 0.1, linear: bool = True, seed: int = 0) -> dict[str, float]:
    """`feature_metrics` of the raw-pixel PCA baseline (as sthalles/SimCLR reports)."""
    train_feats, test_feats = pca_features(data.train_x, data.test_x, dim=dim, seed=seed, device=device)
    return feature_metrics(train_feats, test_feats, data, knn_k=knn_k, knn_temperature=knn_temperature,
                           linear=linear, seed=seed)


def evaluate(model: SimCLRModel, data: DataSplits, cfg: TrainConfig, device: torch.device, *,
             last: bool) -> dict[str, float]:
    """Monitors on the representation h, bank = the labelled train split, scored on the held-out split.

    Classification: weighted kNN top-1, and at the last epoch with ``linear_eval`` the linear probe's
    top-1. Regression (no classes, so no kNN): the ridge probe's mean R^2 at every evaluation.
    """
    amp_dtype = AMP_DTYPES[cfg.precision]
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        bank = embed(model.backbone, data.train_x, device=device)
        query = embed(model.backbone, data.test_x, device=device)
    if data.task == "regression":
        r2 = linear_r2(bank, data.train_y, query, data.test_y, target_names=data.target_names, seed=cfg.seed)
        return {"linear_r2": float(r2["mean"])}
    out = {"knn_top1": knn_top1(bank, data.train_y, query, data.test_y, num_classes=data.num_classes,
                                k=cfg.knn_k, temperature=cfg.knn_temperature)}
    if last and cfg.linear_eval:
        out["linear_top1"] = linear_top1(bank, data.train_y, query, data.test_y, num_classes=data.num_classes,
                                         seed=cfg.seed)
    return out
