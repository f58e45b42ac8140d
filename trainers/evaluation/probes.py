"""Linear probes on frozen features: the paper's linear evaluation and its regression twin.

Both standardise the features with the training set's statistics, hold out a seeded validation
part of the training set to choose the L2 strength from a small grid (as Foster et al. 2021), then
refit on the whole training set with the chosen strength and score the test set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

L2_GRID: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
RIDGE_GRID: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
VAL_FRACTION = 0.2
# Above this many feature values (n x d) the L-BFGS full-batch fit gives way to minibatch SGD.
LBFGS_MAX_ELEMENTS = 50_000_000


@dataclass
class Standardizer:
    """Per-feature mean and scale from one set, applied to others."""

    mean: Tensor
    scale: Tensor

    @classmethod
    def fit(cls, x: Tensor) -> "Standardizer":
        mean = x.mean(dim=0)
        std = x.std(dim=0, unbiased=False)
        # A constant feature carries nothing; dividing it by 1 keeps it at 0 instead of nan.
        return cls(mean=mean, scale=torch.where(std > 1e-12, std, torch.ones_like(std)))

    def __call__(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.scale


@dataclass
class LogisticFit:
    """A multinomial logistic regression: logits = x @ weight + bias."""

    weight: Tensor  # [D, K]
    bias: Tensor  # [K]

    def predict(self, x: Tensor) -> Tensor:
        return (x @ self.weight + self.bias).argmax(dim=1)


def _split(n: int, val_fraction: float, seed: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Seeded (fit, validation) index split of range(n); both parts non-empty."""
    if n < 2:
        raise ValueError(f"linear probe: need at least 2 training rows for a validation split (got {n})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(device)
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    return perm[n_val:], perm[:n_val]


def _start(x: Tensor, num_classes: int, init: Optional[LogisticFit]) -> tuple[Tensor, Tensor]:
    """Trainable weight and bias: zeros, or a copy of `init` (a warm start along the L2 path)."""
    weight = torch.zeros(x.shape[1], num_classes, dtype=x.dtype, device=x.device)
    bias = torch.zeros(num_classes, dtype=x.dtype, device=x.device)
    if init is not None:
        weight.copy_(init.weight)
        bias.copy_(init.bias)
    return weight.requires_grad_(True), bias.requires_grad_(True)


def fit_logistic_lbfgs(x: Tensor, y: Tensor, *, num_classes: int, l2: float, max_iter: int = 500,
                       init: Optional[LogisticFit] = None) -> LogisticFit:
    """Minimise mean cross-entropy + l2/2 * ||W||^2 (bias unpenalised) with full-batch L-BFGS.

    The same optimum as scikit-learn's LogisticRegression(C=1 / (len(x) * l2)).
    """
    weight, bias = _start(x, num_classes, init)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + 0.5 * l2 * (weight * weight).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return LogisticFit(weight=weight.detach(), bias=bias.detach())


def fit_logistic_sgd(x: Tensor, y: Tensor, *, num_classes: int, l2: float, epochs: int = 30,
                     batch_size: int = 1024, lr: float = 0.1, seed: int = 0,
                     init: Optional[LogisticFit] = None) -> LogisticFit:
    """The same objective as `fit_logistic_lbfgs` by minibatch SGD (momentum 0.9, cosine decay),
    for sets too large for a full-batch fit."""
    weight, bias = _start(x, num_classes, init)
    opt = torch.optim.SGD([weight, bias], lr=lr, momentum=0.9)
    steps_per_epoch = (x.shape[0] + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for _ in range(epochs):
            perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
            for start in range(0, x.shape[0], batch_size):
                idx = perm[start:start + batch_size]
                loss = F.cross_entropy(x[idx] @ weight + bias, y[idx]) + 0.5 * l2 * (weight * weight).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    return LogisticFit(weight=weight.detach(), bias=bias.detach())


def _accuracy(fit: LogisticFit, x: Tensor, y: Tensor) -> float:
    return float((fit.predict(x) == y).float().mean())


def linear_top1(train_feats: Tensor, train_y: Tensor, test_feats: Tensor, test_y: Tensor, *,
                num_classes: int, l2_grid: Sequence[float] = L2_GRID, val_fraction: float = VAL_FRACTION,
                method: str = "auto", seed: int = 0, dtype: torch.dtype = torch.float64) -> float:
    """Test top-1 accuracy of a multinomial logistic regression on standardised frozen features.

    The L2 strength is the grid value with the best accuracy on a seeded validation part of the
    training set (ties go to the stronger penalty); the probe is then refit on the whole
    training set. `method` is `lbfgs` (full batch), `sgd` (minibatches, for large sets) or `auto`
    (L-BFGS up to 5e7 feature values). Runs on the features' device.
    """
    if method not in ("auto", "lbfgs", "sgd"):
        raise ValueError(f"linear_top1: method must be one of auto, lbfgs, sgd (got {method!r})")
    if num_classes <= 0:
        raise ValueError(f"linear_top1: num_classes must be > 0 (got {num_classes})")
    if not l2_grid:
        raise ValueError("linear_top1: l2_grid must hold at least one value (got none)")
    if method == "auto":
        method = "lbfgs" if train_feats.numel() <= LBFGS_MAX_ELEMENTS else "sgd"
    device = train_feats.device
    train_y = train_y.to(device).long()
    test_y = test_y.to(device).long()
    if int(train_y.min()) < 0 or int(train_y.max()) >= num_classes:
        raise ValueError(f"linear_top1: labels must lie in [0, {num_classes}) "
                         f"(got {int(train_y.min())}..{int(train_y.max())})")

    def fit(x: Tensor, y: Tensor, l2: float, init: Optional[LogisticFit]) -> LogisticFit:
        if method == "lbfgs":
            return fit_logistic_lbfgs(x, y, num_classes=num_classes, l2=l2, init=init)
        return fit_logistic_sgd(x, y, num_classes=num_classes, l2=l2, seed=seed, init=init)

    x_train = train_feats.to(dtype)
    fit_idx, val_idx = _split(x_train.shape[0], val_fraction, seed, device)
    scaler = Standardizer.fit(x_train[fit_idx])
    x_fit, x_val = scaler(x_train[fit_idx]), scaler(x_train[val_idx])
    best_l2, best_acc, previous = None, -1.0, None
    # From strong to weak penalty, each fit warm-started from the last: the path is smooth.
    for l2 in sorted(l2_grid, reverse=True):
        previous = fit(x_fit, train_y[fit_idx], l2, previous)
        acc = _accuracy(previous, x_val, train_y[val_idx])
        if acc > best_acc:
            best_l2, best_acc = l2, acc
    scaler = Standardizer.fit(x_train)
    final = fit(scaler(x_train), train_y, best_l2, None)
    return _accuracy(final, scaler(test_feats.to(device, dtype)), test_y)


def _ridge_path(x: Tensor, y: Tensor, l2_grid: Sequence[float]) -> list[tuple[Tensor, Tensor]]:
    """Ridge solutions (weight [D, T], bias [T]) of mean squared error + l2 * ||W||^2, per grid value.

    One eigendecomposition of the centred Gram matrix serves every grid value.
    """
    x_mean, y_mean = x.mean(dim=0), y.mean(dim=0)
    xc, yc = x - x_mean, y - y_mean
    evals, evecs = torch.linalg.eigh(xc.T @ xc)
    proj = evecs.T @ (xc.T @ yc)
    n = x.shape[0]
    out = []
    for l2 in l2_grid:
        weight = evecs @ (proj / (evals.clamp_min(0) + n * l2)[:, None])
        out.append((weight, y_mean - x_mean @ weight))
    return out


def r2_scores(pred: Tensor, y: Tensor) -> Tensor:
    """Coefficient of determination per target column: 1 - SS_res / SS_tot (scikit-learn's r2_score)."""
    ss_res = ((y - pred) ** 2).sum(dim=0)
    ss_tot = ((y - y.mean(dim=0)) ** 2).sum(dim=0)
    return 1 - ss_res / ss_tot


def linear_r2(train_feats: Tensor, train_y: Tensor, test_feats: Tensor, test_y: Tensor, *,
              target_names: Optional[Sequence[str]] = None, l2_grid: Sequence[float] = RIDGE_GRID,
              val_fraction: float = VAL_FRACTION, seed: int = 0,
              dtype: torch.dtype = torch.float64) -> dict[str, float]:
    """Test R^2 of ridge regression on standardised frozen features, per target and their mean.

    Each target gets its own L2 strength (the grid value with the best validation R^2), then the
    ridge is refit on the whole training set. Returns `{name: r2, ..., "mean": average}`, names
    from `target_names` (default `target0`, `target1`, ...).
    """
    if not l2_grid:
        raise ValueError("linear_r2: l2_grid must hold at least one value (got none)")
    device = train_feats.device
    y_train = train_y.to(device, dtype)
    y_test = test_y.to(device, dtype)
    if y_train.dim() == 1:
        y_train, y_test = y_train[:, None], y_test[:, None]
    names = list(target_names) if target_names is not None else [f"target{i}" for i in range(y_train.shape[1])]
    if len(names) != y_train.shape[1]:
        raise ValueError(f"linear_r2: target_names has {len(names)} names for {y_train.shape[1]} targets")
    if "mean" in names:
        raise ValueError("linear_r2: a target cannot be named 'mean' (the key of the average)")
    x_train = train_feats.to(dtype)
    fit_idx, val_idx = _split(x_train.shape[0], val_fraction, seed, device)
    scaler = Standardizer.fit(x_train[fit_idx])
    path = _ridge_path(scaler(x_train[fit_idx]), y_train[fit_idx], l2_grid)
    x_val = scaler(x_train[val_idx])
    val_r2 = torch.stack([r2_scores(x_val @ w + b, y_train[val_idx]) for w, b in path])  # [grid, T]
    # max() keeps the first of equals and the grid is walked from strong to weak penalty.
    order = sorted(range(len(l2_grid)), key=lambda i: -l2_grid[i])
    best = [max(order, key=lambda i: float(val_r2[i, t])) for t in range(y_train.shape[1])]
    scaler = Standardizer.fit(x_train)
    full = _ridge_path(scaler(x_train), y_train, [l2_grid[i] for i in sorted(set(best))])
    by_grid = dict(zip(sorted(set(best)), full))
    x_test = scaler(test_feats.to(device, dtype))
    scores = {}
    for t, name in enumerate(names):
        w, b = by_grid[best[t]]
        scores[name] = float(r2_scores(x_test @ w[:, t:t + 1] + b[t:t + 1], y_test[:, t:t + 1])[0])
    scores["mean"] = sum(scores[n] for n in names) / len(names)
    return scores
