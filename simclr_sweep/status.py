"""`simclr-sweep status`: what a study has done so far, from its tables alone (also while it runs)."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from reports.tables import StudyTables
from trainers.checks import ConfigError

STATUS_ORDER = ("running", "completed", "early_stopped", "diverged", "failed")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def study_status(study_dir: Path | str) -> str:
    """A few lines: trials by status, the best so far with its configuration, what is running.

    ``study_dir`` is a folder or a remote study's URI (``s3://...``, see `simclr_sweep.storage`).
    """
    from simclr_sweep import storage

    study_dir = storage.as_location(study_dir)
    if not isinstance(study_dir, Path):
        with storage.storage_errors(study_dir, "STUDY_DIR"):
            return _status(study_dir, yaml.safe_load(storage.read_declaration(study_dir)) or {},
                           storage.name_of(study_dir))
    declaration_path = study_dir / "study.yaml"
    if not declaration_path.is_file():
        raise ConfigError(str(study_dir), "not a study directory (no study.yaml); give the folder `simclr-sweep run` created")
    return _status(study_dir, yaml.safe_load(declaration_path.read_text()) or {}, study_dir.name)


def _status(study_dir: Path | str, declaration: dict, dir_name: str) -> str:
    metric_spec = declaration.get("metric", {})
    metric = metric_spec["name"] if isinstance(metric_spec, dict) else str(metric_spec)
    goal = metric_spec.get("goal", "maximize") if isinstance(metric_spec, dict) else "maximize"
    declared = int(declaration.get("trials", 0)) * int(declaration.get("seeds", 1))

    tables = StudyTables(study_dir)
    trials = tables.read_trials()
    lines = [f"study {declaration.get('name', dir_name)} ({declaration.get('method', 'tpe')}, "
             f"{declared} trials declared) in {study_dir}"]
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
    parts = [f"{int(counts[s])} {s}" for s in STATUS_ORDER if s in counts]
    to_go = max(declared - len(trials), 0)
    lines.append("trials: " + ", ".join(parts) + (f", {to_go} not started" if to_go else ""))

    column = f"best.{metric}"
    scored = trials[trials[column].notna()] if column in trials else trials.iloc[0:0]
    if len(scored):
        best = scored.loc[scored[column].idxmax() if goal == "maximize" else scored[column].idxmin()]
        params = ", ".join(f"{c[len('param.'):]}={best[c]}" for c in trials.columns
                           if c.startswith("param.") and trials[c].nunique(dropna=False) > 1)
        lines.append(f"best {metric}: {best[column]:.4f} (trial {best['trial_id']}, seed {best['seed']})"
                     + (f": {params}" if params else ""))
    else:
        lines.append(f"best {metric}: none measured yet")

    epochs = int(declaration.get("fixed", {}).get("epochs", 0) or 0)
    for _, row in running.iterrows():
        of = f"/{epochs}" if epochs else ""
        value = row.get(f"last.{metric}")
        shown = f", {metric} {value:.4f}" if value is not None and not (isinstance(value, float) and math.isnan(value)) else ""
        lines.append(f"running: {row['trial_id']} (epoch {int(row['epochs_run'])}{of}{shown})")
    return "\n".join(lines)
