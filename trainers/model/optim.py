"""Optimisers (the ``OPTIMIZERS`` registry, LARS as in the TF SimCLR code) and learning-rate schedules."""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import nn

LARS_TRUST_COEFFICIENT = 1e-3


class LARS(torch.optim.Optimizer):
    """LARS exactly as google-research/simclr's ``LARSOptimizer`` (classic momentum).

    Per parameter: ``g = grad + wd * w`` (unless the group excludes it), trust ratio
    ``eta * ||w|| / ||g||`` (1 where either norm is 0, or where the group excludes adaptation),
    ``v = momentum * v + lr * trust * g``, ``w = w - v`` (nesterov: ``w -= momentum * v + lr * trust * g``).
    Groups carry ``lars_exclude``: True for biases and BatchNorm parameters (no decay, no adaptation).
    A step runs group by group with ``torch._foreach_*`` ops (a few kernels per group, not per parameter).
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = LARS_TRUST_COEFFICIENT, nesterov: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, nesterov=nesterov,
                        lars_exclude=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable | None = None):  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            # One foreach kernel per operation over the group, not several small ones per parameter.
            grads = [p.grad for p in params]
            lr, momentum = group["lr"], group["momentum"]
            if group["lars_exclude"]:
                updates = torch._foreach_mul(grads, lr)
            else:
                if group["weight_decay"] != 0:
                    grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
                w_norm = torch.stack(torch._foreach_norm(params))
                g_norm = torch.stack(torch._foreach_norm(grads))
                trust = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm,
                                    torch.ones_like(w_norm))
                updates = torch._foreach_mul(grads, list((trust * lr).unbind()))
            buffers = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buffers.append(state["momentum_buffer"])
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, updates)
            if group["nesterov"]:
                torch._foreach_add_(updates, torch._foreach_mul(buffers, momentum))
            torch._foreach_sub_(params, updates if group["nesterov"] else buffers)
        return loss


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights (decayed, LARS-adapted) and 1-D parameters (biases, BN: neither)."""
    decay, plain = [], []
    for p in model.parameters():
        if p.requires_grad:
            (plain if p.ndim <= 1 else decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay, lars_exclude=False),
            dict(params=plain, weight_decay=0.0, lars_exclude=True)]


def _lars(groups: list[dict], *, lr: float, momentum: float) -> torch.optim.Optimizer:
    return LARS(groups, lr=lr, momentum=momentum)


def _sgd(groups: list[dict], *, lr: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


def _adam(groups: list[dict], *, lr: float, momentum: float) -> torch.optim.Optimizer:
    # Adam's weight decay is L2 added to the gradient (torch.optim.Adam's meaning).
    return torch.optim.Adam(groups, lr=lr)


def _adamw(groups: list[dict], *, lr: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=lr)


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "lars": _lars,
    "sgd": _sgd,
    "adam": _adam,
    "adamw": _adamw,
}


def build_optimizer(model: nn.Module, *, name: str, lr: float, momentum: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    """The optimiser ``name`` over ``model``'s parameters, biases and BN excluded from decay."""
    return OPTIMIZERS[name](param_groups(model, weight_decay), lr=lr, momentum=momentum)


LR_SCALINGS: dict[str, Callable[[float, int], float]] = {
    "linear": lambda lr, batch: lr * batch / 256,
    "sqrt": lambda lr, batch: lr * math.sqrt(batch),
    "none": lambda lr, batch: lr,
}

SCHEDULES = ("cosine", "constant")


def lr_at(step: int, *, peak_lr: float, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Learning rate of 0-based ``step``: linear warmup to ``peak_lr``, then cosine decay or constant.

    Warmup: ``peak * (step + 1) / warmup_steps`` for ``step < warmup_steps``. Cosine:
    ``peak * 0.5 * (1 + cos(pi * (step - warmup) / (total - warmup)))``, reaching 0 at ``total``.
    """
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return peak_lr
    if schedule == "cosine":
        progress = min(step - warmup_steps, total_steps - warmup_steps) / max(total_steps - warmup_steps, 1)
        return peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"schedule: must be one of {', '.join(SCHEDULES)} (got {schedule!r})")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every parameter group the learning rate ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr

