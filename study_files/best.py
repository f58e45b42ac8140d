"""The one meaning of "best" in a study: the configuration with the best mean score over its seeds,
and, for what needs one trial (its checkpoint, its data), that configuration's best-scoring trial.

A trial's *score* is its best value of the study's metric over its epochs (``best.<metric>``);
*scored* trials are those with a finite score that did not fail. A configuration is a ``config_id``;
a trial without one is a configuration of its own. Status, the report, the baselines and embeddings
(`simclr_sweep.analysis`) and the live progress view all ask here, so they name the same trial.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from study_files.schema import best_column

_NO_CONFIG = "\x00"  # starts the key of a trial without a config_id; no config_id starts so


def scored_trials(trials: pd.DataFrame, metric: str, maximize: bool) -> pd.DataFrame:
    """Trials with a finite score that did not fail, best score first; ``score`` holds ``best.<metric>``."""
    column = best_column(metric)
    score = (pd.to_numeric(trials[column], errors="coerce").astype(float) if column in trials
             else pd.Series(math.nan, index=trials.index, dtype=float))
    frame = trials.assign(score=score)
    status = frame["status"] if "status" in frame else pd.Series(None, index=frame.index, dtype=object)
    frame = frame[np.isfinite(frame["score"]) & (status != "failed")]
    return frame.sort_values("score", ascending=not maximize, kind="stable")


def configuration_keys(scored: pd.DataFrame) -> pd.Series:
    """Each trial's configuration: its config_id, or a key of its own trial id when it has none."""
    ids = (scored["config_id"] if "config_id" in scored else pd.Series(None, index=scored.index)).astype(object)
    return ids.where(ids.notna(), _NO_CONFIG + scored["trial_id"].astype(str))


def configuration_name(key: str) -> str:
    """A configuration as a reader sees it: its config_id, or ``(no config_id: <trial>)``."""
    key = str(key)
    return f"(no config_id: {key[len(_NO_CONFIG):]})" if key.startswith(_NO_CONFIG) else key


def ranked_configurations(scored: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """One row per configuration of ``scored`` (see `scored_trials`): ``key``, ``n``, ``mean``, ``std``,
    ``trial_ids`` (best first), ``statuses``; best mean first, ties in order of their best trial."""
    if scored.empty:
        return pd.DataFrame(columns=["key", "n", "mean", "std", "trial_ids", "statuses"])
    groups = scored.groupby(configuration_keys(scored).rename("key"), sort=False)
    frame = groups["score"].agg(n="count", mean="mean", std="std")
    frame["trial_ids"] = groups["trial_id"].agg(list)
    frame["statuses"] = groups["status"].agg(list)
    frame = frame.reset_index()
    return frame.sort_values("mean", ascending=not maximize, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Best:
    """The study's best configuration and its best trial (the one whose checkpoint stands for it)."""

    config: str  # the configuration's key (see `configuration_keys`); `name` for a reader
    mean: float  # its mean score over its scored trials (seeds)
    seeds: int  # how many scored trials that mean is over
    trial: dict[str, Any]  # its best-scoring trial, as a trials-table row with ``score``

    @property
    def name(self) -> str:
        return configuration_name(self.config)

    @property
    def trial_id(self) -> str:
        return str(self.trial["trial_id"])

    @property
    def score(self) -> float:
        return float(self.trial["score"])


def best(trials: pd.DataFrame, metric: str, maximize: bool) -> Best | None:
    """The configuration with the best mean score over its seeds, with its best-scoring trial; None
    while no trial has a score. ``trials`` is the trials table (`StudyTables.read_trials`)."""
    scored = scored_trials(trials, metric, maximize)
    configs = ranked_configurations(scored, maximize)
    if configs.empty:
        return None
    top = configs.iloc[0]
    trial = scored[configuration_keys(scored) == top["key"]].iloc[0]  # scored is best first
    return Best(config=str(top["key"]), mean=float(top["mean"]), seeds=int(top["n"]), trial=trial.to_dict())
