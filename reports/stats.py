"""The statistics behind the report's findings, in numpy alone (no scipy at run time).

Confidence intervals over seeds use Student's t; differences between groups use bootstrap
intervals and permutation tests, with Holm's correction when several are tested together.
Every random draw comes from a generator the caller seeds, so a report is reproducible.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Two-sided 95% quantiles of Student's t, df = 1..30 (beyond, an expansion is exact enough).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


@dataclass(frozen=True)
class MeanCI:
    """Mean, sample standard deviation and 95% t-interval of a handful of values."""

    n: int
    mean: float
    std: float
    lo: float
    hi: float


@dataclass(frozen=True)
class Difference:
    """Mean of group a minus mean of group b, its bootstrap 95% CI and a permutation p-value."""

    diff: float
    lo: float
    hi: float
    p_value: float
    n_a: int
    n_b: int


def t_critical(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"df must be >= 1 (got {df})")
    if df <= len(_T975):
        return _T975[df - 1]
    # Cornish-Fisher expansion around the normal quantile; within 1e-4 of exact for df > 30
    z = 1.959963985
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def mean_ci(values: Sequence[float] | np.ndarray) -> MeanCI:
    """Mean with its 95% confidence interval; std and interval are NaN for a single value."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return MeanCI(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return MeanCI(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = t_critical(n - 1) * std / math.sqrt(n)
    return MeanCI(n, mean, std, mean - half, mean + half)


def compare_means(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                  rng: np.random.Generator, *, resamples: int = 2000) -> Difference:
    """mean(a) - mean(b) with a percentile-bootstrap 95% CI and a two-sided permutation p-value."""
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    diff = float(xa.mean() - xb.mean())
    boot_a = rng.choice(xa, size=(resamples, len(xa))).mean(axis=1)
    boot_b = rng.choice(xb, size=(resamples, len(xb))).mean(axis=1)
    lo, hi = np.percentile(boot_a - boot_b, [2.5, 97.5])
    return Difference(diff, float(lo), float(hi), permutation_p_value(xa, xb, rng, resamples=resamples),
                      len(xa), len(xb))


def permutation_p_value(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, *,
                        resamples: int = 2000) -> float:
    """Two-sided permutation test of equal means; (1 + extreme) / (1 + resamples), never 0."""
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    shuffled = rng.permuted(np.tile(pooled, (resamples, 1)), axis=1)
    diffs = np.abs(shuffled[:, : len(a)].mean(axis=1) - shuffled[:, len(a):].mean(axis=1))
    extreme = int(np.count_nonzero(diffs >= observed - 1e-12))
    return (1 + extreme) / (1 + resamples)


def groups_p_value(groups: Sequence[np.ndarray], rng: np.random.Generator, *, resamples: int = 2000) -> float:
    """Permutation test that k groups share one mean (statistic: between-group sum of squares)."""
    sizes = np.array([len(g) for g in groups])
    labels = np.repeat(np.arange(len(groups)), sizes)
    pooled = np.concatenate(groups)
    grand = pooled.mean()

    def between(values: np.ndarray) -> np.ndarray:
        sums = np.zeros(values.shape[:-1] + (len(groups),))
        for k in range(len(groups)):
            sums[..., k] = values[..., labels == k].sum(axis=-1)
        return (((sums / sizes) - grand) ** 2 * sizes).sum(axis=-1)

    observed = between(pooled)
    shuffled = rng.permuted(np.tile(pooled, (resamples, 1)), axis=1)
    extreme = int(np.count_nonzero(between(shuffled) >= observed - 1e-12))
    return (1 + extreme) / (1 + resamples)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def spans_decades(values: Sequence[float] | np.ndarray, ratio: float = 10.0) -> bool:
    """Whether finite positive values span at least ``ratio`` (then a log scale reads better)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return len(x) > 0 and x.min() > 0 and x.max() / x.min() >= ratio


def pareto_front(cost: np.ndarray, score: np.ndarray, *, maximize: bool) -> np.ndarray:
    """Boolean mask of the points no other point beats on both lower cost and better score."""
    cost = np.asarray(cost, dtype=float)
    goodness = np.asarray(score, dtype=float) * (1.0 if maximize else -1.0)
    order = np.lexsort((-goodness, cost))  # cheapest first, best first among equal costs
    mask = np.zeros(len(cost), dtype=bool)
    best = -math.inf
    for index in order:
        if goodness[index] > best:
            mask[index] = True
            best = goodness[index]
    return mask
