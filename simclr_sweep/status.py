"""`simclr-sweep status`: what a study has done so far, from its tables alone (also while it runs)."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pandas as pd

from simclr_sweep.study import declared_trials
from simclr_sweep.terminal import safe
from study_files.best import best
from study_files.declaration import read_declaration, study_name
from study_files.locations import Location, as_location, storage_errors
from study_files.schema import PARAM_PREFIX, best_column, last_column
from study_files.tables import StudyTables
from study_files.vocabulary import STATUSES


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def study_status(study_dir: Location) -> str:
    """A few lines: trials by status, the best configuration so far and its best trial, what is running.

    ``study_dir`` is a folder or a remote study's URI (``s3://...``, see `study_files.locations`).
    """
    study_dir = as_location(study_dir)
    declaration = read_declaration(study_dir)
    raw = declaration.raw
    metric = declaration.metric
    declared = declared_trials(raw)
    what = "study.yaml is empty" if not raw else (
        f"{raw.get('method', 'tpe')}, {'trials not declared' if declared is None else f'{declared} trials declared'}")

    with storage_errors(study_dir, "STUDY_DIR"):
        trials = StudyTables(study_dir).read_trials()
    lines = [f"study {safe(study_name(study_dir, declaration))} ({safe(what)}) in {study_dir}"]
    if trials.empty:
        lines.append("no trial recorded yet")
        return "\n".join(lines)

    started = pd.to_datetime(trials["started_at"], utc=True).min()
    ended = pd.to_datetime(trials["ended_at"], utc=True)
    running = trials[trials["status"] == "running"]
    last = datetime.now(timezone.utc) if len(running) or ended.isna().all() else ended.max().to_pydatetime()
    lines.append(f"started {started:%Y-%m-%d %H:%M:%S} UTC, elapsed {_duration((last - started).total_seconds())}, "
                 f"GPU-hours {trials['gpu_s'].fillna(0).sum() / 3600:.2f}")

    counts = trials["status"].value_counts()
    parts = [f"{int(counts[s])} {s}" for s in STATUSES if s in counts]
    to_go = max((declared or 0) - len(trials), 0)
    lines.append("trials: " + ", ".join(parts) + (f", {to_go} not started" if to_go else ""))

    top = best(trials, metric, declaration.maximize)
    if top is not None:
        trial = top.trial
        params = ", ".join(f"{safe(c[len(PARAM_PREFIX):])}={safe(trial[c])}" for c in trials.columns
                           if c.startswith(PARAM_PREFIX) and trials[c].nunique(dropna=False) > 1)
        over = f", mean of {top.seeds} seeds {top.mean:.4f}" if top.seeds > 1 else ""
        lines.append(f"best {metric}: {trial[best_column(metric)]:.4f} (trial {trial['trial_id']}, seed {trial['seed']}"
                     f", the best configuration {top.name}{over})" + (f": {params}" if params else ""))
    else:
        lines.append(f"best {metric}: none measured yet")

    epochs = int(raw.get("fixed", {}).get("epochs", 0) or 0)
    for _, row in running.iterrows():
        of = f"/{epochs}" if epochs else ""
        value = row.get(last_column(metric))
        shown = f", {metric} {value:.4f}" if value is not None and not (isinstance(value, float) and math.isnan(value)) else ""
        lines.append(f"running: {safe(row['trial_id'])} (epoch {int(row['epochs_run'])}{of}{shown})")
    return "\n".join(lines)
