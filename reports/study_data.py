"""A study as the report sees it: its declaration, its tables and the derived views they share.

A trial's *score* is its best value of the study's metric over its epochs (``best.<metric>``).
Statistics use *scored* trials: those with a finite score that did not fail. "Best" means what
`study_files.best` says: the best configuration by mean over seeds, and its best-scoring trial.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.stats import t_critical
from study_files.best import Best, best, configuration_keys, configuration_name, ranked_configurations, scored_trials
from study_files.declaration import Declaration
from study_files.locations import Location, StudyFiles
from study_files.schema import AUGMENTATIONS_COLUMN, PARAM_PREFIX, best_column
from study_files.tables import StudyTables
from study_files.vocabulary import STATUSES, STUDY_FILE

MAX_LEVELS = 8


@dataclass
class StudyData:
    """Everything a report section may read; derived views are computed once, on first use."""

    study_dir: Location  # a URI for a remote study
    declaration: dict[str, Any]
    trials: pd.DataFrame
    epochs: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    baselines: pd.DataFrame | None = None  # tables/baselines.parquet: one row per baseline
    embeddings: dict[str, Any] | None = None  # tables/embeddings.npz of the best trial
    finetune: pd.DataFrame | None = None  # tables/finetune.parquet: the best trial's encoder fine-tuned

    @property
    def name(self) -> str:
        return str(self.declaration.get("name") or Path(str(self.study_dir)).name)  # also for a URI

    @cached_property
    def _declared(self) -> Declaration:
        return Declaration(self.declaration)

    @property
    def metric(self) -> str:
        return self._declared.metric

    @property
    def maximize(self) -> bool:
        return self._declared.maximize

    @property
    def method(self) -> str:
        return self._declared.method

    @cached_property
    def scored(self) -> pd.DataFrame:
        """Trials with a finite score that did not fail, best first."""
        return scored_trials(self.trials, self.metric, self.maximize)

    @cached_property
    def varying(self) -> list[str]:
        """``param.*`` columns (augmentations excepted) with more than one value among scored trials."""
        columns = [c for c in self.trials.columns if c.startswith(PARAM_PREFIX) and c != AUGMENTATIONS_COLUMN]
        return [c for c in columns if self.scored[c].nunique(dropna=True) > 1]

    @cached_property
    def categorical(self) -> list[str]:
        """Varying parameters compared as categories: text, booleans, integers with few values."""
        return [c for c in self.varying if is_categorical(self.scored[c])]

    @cached_property
    def numeric(self) -> list[str]:
        """Varying parameters on a numeric scale (everything not in ``categorical``)."""
        return [c for c in self.varying if c not in self.categorical]

    @cached_property
    def augmentations(self) -> list[str]:
        """Every augmentation named in a varying ``param.augmentations``; [] when it does not vary."""
        if AUGMENTATIONS_COLUMN not in self.trials or self.scored[AUGMENTATIONS_COLUMN].nunique() < 2:
            return []
        names = {a for value in self.scored[AUGMENTATIONS_COLUMN].dropna() for a in split_augmentations(value)}
        return sorted(names)

    @cached_property
    def features(self) -> pd.DataFrame:
        """Scored trials' varying parameters by label, plus ``+<augmentation>`` yes/no columns."""
        frame = pd.DataFrame({self.label(c): self.scored[c] for c in self.varying}, index=self.scored.index)
        for name in self.augmentations:
            frame[f"+{name}"] = self.scored[AUGMENTATIONS_COLUMN].map(
                lambda v, n=name: "yes" if n in split_augmentations(v) else "no")
        return frame

    @cached_property
    def config_keys(self) -> pd.Series:
        """Each scored trial's configuration: its config_id, or its own trial id when it has none
        (a trial without a config_id is a configuration of its own, never pooled with others)."""
        return configuration_keys(self.scored)

    @cached_property
    def configs(self) -> pd.DataFrame:
        """One row per configuration over scored trials: ``key`` (see ``config_keys``), ``name``
        (its config_id, or a label naming its trial), n, mean, std, 95% CI, trial ids; best first."""
        params = [c for c in self.trials.columns if c.startswith(PARAM_PREFIX)]
        if self.scored.empty:
            return pd.DataFrame(columns=["key", "name", "config_id", "n", "mean", "std", "ci_lo", "ci_hi", *params])
        frame = ranked_configurations(self.scored, self.maximize)
        half = frame["n"].map(lambda n: t_critical(n - 1) if n > 1 else math.nan) * frame["std"] / np.sqrt(frame["n"])
        frame["ci_lo"], frame["ci_hi"] = frame["mean"] - half, frame["mean"] + half
        firsts = self.scored.groupby(self.config_keys.rename("key"), sort=False)[["config_id", *params]].first()
        frame = frame.join(firsts, on="key")
        frame.insert(1, "name", frame["key"].map(configuration_name))
        return frame

    @cached_property
    def best(self) -> Best | None:
        """The best configuration and its best trial (`study_files.best`); None while none is scored."""
        return best(self.trials, self.metric, self.maximize)

    def label(self, column: str) -> str:
        """A parameter column's name without its ``param.`` prefix."""
        return column[len(PARAM_PREFIX):] if column.startswith(PARAM_PREFIX) else column

    def fmt(self, value: float) -> str:
        """A metric value as the report prints it."""
        if value is None or not math.isfinite(value):
            return "n/a"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"


def is_categorical(column: pd.Series) -> bool:
    """Text, booleans and integers with at most MAX_LEVELS distinct values are categories."""
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return True
    return pd.api.types.is_integer_dtype(column) and column.nunique() <= MAX_LEVELS


def split_augmentations(value: object) -> list[str]:
    """``"color_jitter,crop"`` -> ``["color_jitter", "crop"]`` ("" or None -> [])."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [part for part in str(value).split(",") if part]


def load_study(study_dir: Location) -> StudyData:
    """Read ``study.yaml`` (when present) and the tables of a study directory (or study URI)."""
    files = StudyFiles(study_dir)
    study_dir = files.location()
    notes: list[str] = []
    declaration = Declaration()
    if files.exists(STUDY_FILE):
        declaration = Declaration.parse(files.read_text(STUDY_FILE), files.location(STUDY_FILE))
    else:
        notes.append(f"{STUDY_FILE} is missing: the study's name, metric and method are guessed.")
    tables = StudyTables(study_dir)
    trials = tables.read_trials()
    epochs = tables.read_epochs()
    data = StudyData(study_dir, declaration.raw, trials, epochs, notes,
                     baselines=tables.read_baselines(), embeddings=tables.read_embeddings(),
                     finetune=tables.read_finetune())
    score_column = best_column(data.metric)
    if score_column in trials:
        trials["score"] = pd.to_numeric(trials[score_column], errors="coerce").astype(float)
    else:
        trials["score"] = math.nan
        notes.append(f"The tables have no column {score_column}: no trial has a score.")
    trials["status"] = trials["status"].where(trials["status"].isin(STATUSES), "running")
    return data
