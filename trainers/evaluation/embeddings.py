"""Embedding export: h and g(h) for a sample of the test set, with a 2-D t-SNE of each.

The paper observes that h separates classes better than z = g(h); the report shows the two
projections side by side. The export is a NumPy `.npz` so that `reports` reads it without torch.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainers.evaluation.monitors import embed

Tensor = torch.Tensor


def _conditional_p(sq_dist: Tensor, perplexity: float, tol: float = 1e-5, steps: int = 64) -> Tensor:
    """Row-stochastic P[i, j] = exp(-beta_i d_ij) / sum_k, with beta_i found by bisection so that
    each row's perplexity 2^H is `perplexity` (every row at once)."""
    n = sq_dist.shape[0]
    target = math.log(perplexity)  # entropy in nats
    beta = torch.ones(n, dtype=sq_dist.dtype)
    lo = torch.full_like(beta, 0.0)
    hi = torch.full_like(beta, math.inf)
    eye = torch.eye(n, dtype=torch.bool)
    d = sq_dist.masked_fill(eye, math.inf)
    for _ in range(steps):
        # Shifting by the row minimum keeps exp() in range for large beta.
        logits = -(d - d.min(dim=1, keepdim=True).values) * beta[:, None]
        p = torch.softmax(logits, dim=1)
        entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(dim=1)
        too_flat = entropy > target  # entropy too high: sharpen (raise beta)
        lo = torch.where(too_flat, beta, lo)
        hi = torch.where(too_flat, hi, beta)
        beta = torch.where(torch.isinf(hi), beta * 2, (lo + hi) / 2)
        if (entropy - target).abs().max() < tol:
            break
    return p


def tsne(x: Tensor, *, perplexity: float = 30.0, iterations: int = 750, seed: int = 0,
         learning_rate: float | None = None) -> Tensor:
    """Exact t-SNE (van der Maaten & Hinton 2008) of rows of `x` to 2-D, in float64 on the CPU.

    Gradient descent with momentum 0.5 then 0.8, per-parameter gains, and early exaggeration 12
    for the first 250 iterations; learning rate max(n / 12 / 4, 50) unless given (as
    scikit-learn's "auto"). O(n^2) memory: meant for a sample of a few thousand points.
    """
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"tsne: need at least 4 points (got {n})")
    if not 0 < perplexity < n - 1:
        raise ValueError(f"tsne: perplexity must be in (0, {n - 1}) for {n} points (got {perplexity})")
    x = x.detach().double().cpu()
    p = _conditional_p(torch.cdist(x, x) ** 2, perplexity)
    p = (p + p.T) / (2 * n)
    p = p.clamp_min(1e-12)
    lr = learning_rate if learning_rate is not None else max(n / 12.0 / 4.0, 50.0)
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(n, 2, generator=gen, dtype=torch.float64) * 1e-4
    velocity = torch.zeros_like(y)
    gains = torch.ones_like(y)
    eye = torch.eye(n, dtype=torch.bool)
    for it in range(iterations):
        exaggeration = 12.0 if it < 250 else 1.0
        momentum = 0.5 if it < 250 else 0.8
        num = (1.0 / (1.0 + torch.cdist(y, y) ** 2)).masked_fill(eye, 0.0)
        q = (num / num.sum()).clamp_min(1e-12)
        # dC/dy_i = 4 sum_j (p_ij - q_ij) (y_i - y_j) / (1 + |y_i - y_j|^2)
        w = (exaggeration * p - q) * num
        grad = 4.0 * (w.sum(dim=1, keepdim=True) * y - w @ y)
        same_sign = (grad > 0) == (velocity > 0)
        gains = torch.where(same_sign, gains * 0.8, gains + 0.2).clamp_min(0.01)
        velocity = momentum * velocity - lr * gains * grad
        y = y + velocity
    return (y - y.mean(dim=0)).float()


def export_embeddings(model: nn.Module, images: Tensor, labels: Tensor, path: str | Path, *,
                      sample: int = 1000, seed: int = 0, perplexity: float = 30.0,
                      device: str | torch.device = "cpu", batch_size: int = 512) -> Path:
    """Write h, z = g(h), the labels and a 2-D t-SNE of h and of z for a seeded sample of `images`
    to `path` (`.npz`: arrays `index`, `h`, `z`, `labels`, `tsne_h`, `tsne_z`).

    `model(x)` returns `(h, z)` (a `SimCLRModel`); images are uint8 [N, C, H, W].
    """
    n = images.shape[0]
    index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:min(sample, n)].sort().values
    chosen = images[index]
    was_training = model.training
    model.eval()  # `embed` only switches modes for a module, and these are lambdas
    try:
        h = embed(lambda x: model(x)[0], chosen, batch_size=batch_size, device=device).cpu()
        # A second pass keeps `embed`'s single-output contract; h is recomputed, which is cheap.
        z = embed(lambda x: model(x)[1], chosen, batch_size=batch_size, device=device).cpu()
    finally:
        model.train(was_training)
    perplexity = min(perplexity, (len(index) - 2) / 3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # an open file keeps numpy from appending `.npz` to the name
        np.savez_compressed(f, index=index.numpy(), h=h.numpy(), z=z.numpy(), labels=labels[index].cpu().numpy(),
                            tsne_h=tsne(h, perplexity=perplexity, seed=seed).numpy(),
                            tsne_z=tsne(z, perplexity=perplexity, seed=seed).numpy())
    return path
