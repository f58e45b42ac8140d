"""Which parameters explain the score: Optuna's fANOVA when optuna is installed (from 20 trials on;
above 300, on a seeded random sample of 300 of them), else the share of variance each parameter
explains on its own (eta squared, numeric parameters binned by quantile)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

# fANOVA's forest grows with the number of trials; above this many it is fitted on a random sample
# of this size (seeded), so that a report of a huge study still builds in seconds.
FANOVA_MAX_TRIALS = 300
FANOVA_SAMPLE_SEED = 0
FANOVA = "fANOVA (optuna.importance)"
# Below this many, a random forest over the trials says no more than the variance shares, and
# importing optuna + scikit-learn would double a small report's build time.
FANOVA_MIN_TRIALS = 20
_BINS = 5


@dataclass(frozen=True)
class Importance:
    """Importance per feature (summing to 1) and how it was estimated; ``sampled_from`` is the
    number of scored trials when fANOVA saw only a random FANOVA_MAX_TRIALS of them."""

    values: dict[str, float]
    method: str
    sampled_from: int | None = None


def parameter_importance(features: pd.DataFrame, score: pd.Series) -> Importance | None:
    """Importance of each column of ``features`` (one row per trial) for ``score``.

    Columns may be numeric, boolean or strings; constant columns are left out. None when fewer
    than two columns vary or fewer than four trials have a score.
    """
    varying = [c for c in features.columns if features[c].nunique(dropna=True) > 1]
    if len(varying) < 2 or len(score) < 4 or float(np.var(score)) == 0.0:
        return None
    features = features[varying]
    if len(score) < FANOVA_MIN_TRIALS:
        return _eta_squared(features, score)
    if len(score) <= FANOVA_MAX_TRIALS:
        values = _fanova(features, score)
        return _eta_squared(features, score) if values is None else Importance(values, FANOVA)
    rng = np.random.default_rng(FANOVA_SAMPLE_SEED)
    rows = np.sort(rng.choice(len(score), FANOVA_MAX_TRIALS, replace=False))
    values = _fanova(features.iloc[rows], score.iloc[rows])
    if values is None:
        return _eta_squared(features, score)
    return Importance(values, f"{FANOVA} on a seeded random sample of {FANOVA_MAX_TRIALS} of the {len(score)} "
                              "scored trials", sampled_from=len(score))


def _fanova(features: pd.DataFrame, score: pd.Series) -> dict[str, float] | None:
    try:
        import optuna
        from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    except Exception:  # optional: a missing or broken optuna/scikit-learn means the fast estimate
        return None
    distributions = {c: _distribution(optuna, features[c]) for c in features.columns}
    trials = []
    for (_, row), value in zip(features.iterrows(), score):
        params = {c: _param(row[c], distributions[c]) for c in features.columns}
        if any(v is None for v in params.values()):
            continue  # a trial without this parameter cannot go into one search space
        trials.append(optuna.trial.create_trial(params=params, distributions=distributions, value=float(value)))
    if len(trials) < 4:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    try:
        values = get_param_importances(study, evaluator=FanovaImportanceEvaluator(n_trees=32, seed=0))
    except Exception:  # optional refinement: whatever fANOVA trips on, the fast estimate stands in
        return None
    return _normalised(values)


def _distribution(optuna_module, column: pd.Series):
    distributions = optuna_module.distributions
    values = column.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return distributions.CategoricalDistribution(sorted({str(v) for v in values}))
    low, high = float(values.min()), float(values.max())
    if pd.api.types.is_integer_dtype(values):
        return distributions.IntDistribution(int(low), int(high))
    return distributions.FloatDistribution(low, high, log=low > 0 and high / low >= 10)


def _param(value: object, distribution) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(distribution, "choices"):
        return str(value)
    return int(value) if type(distribution).__name__ == "IntDistribution" else float(value)


def _eta_squared(features: pd.DataFrame, score: pd.Series) -> Importance:
    y = score.to_numpy(dtype=float)
    total = float(((y - y.mean()) ** 2).sum())
    values = {}
    for column in features.columns:
        groups = _groups(features[column])
        frame = pd.DataFrame({"g": groups.to_numpy(), "y": y})
        stats = frame.groupby("g", dropna=False)["y"].agg(["mean", "count"])
        between = float((stats["count"] * (stats["mean"] - y.mean()) ** 2).sum())
        values[column] = between / total
    return Importance(_normalised(values), "share of variance explained by each parameter alone")


def _groups(column: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column) or column.nunique() <= _BINS:
        return column.astype(str)
    return pd.qcut(column.rank(method="first"), _BINS, labels=False).astype(str)


def _normalised(values: dict[str, float]) -> dict[str, float]:
    total = sum(max(0.0, v) for v in values.values())
    if total <= 0:
        return {k: 0.0 for k in values}
    ranked = sorted(values.items(), key=lambda kv: -kv[1])
    return {k: float(max(0.0, v) / total) for k, v in ranked}
