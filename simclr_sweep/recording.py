"""The Tune callback that records every trial event in the study's tables, as it happens.

The tables (written through `reports.tables.StudyTables`) are the study's source of truth: each
start, epoch, completion and error is written at once, atomically, keyed by trial id and epoch.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ray.tune import Callback

from reports.tables import StudyTables, flatten_params, summarize_metrics
from simclr_sweep.study import Study
from simclr_sweep.trainable import TRIAL_INDEX, TrialSetup, train_options, trial_seed


def config_id(config: dict[str, Any]) -> str:
    """A short stable id of a sampled configuration; repeats with other seeds share it."""
    sampled = {k: v for k, v in config.items() if k != TRIAL_INDEX}
    digest = hashlib.sha1(json.dumps(sampled, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:10]


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class TrialRecord:
    """What the driver knows about one trial, enough to write its row."""

    trial_id: str
    config: dict[str, Any]
    options: dict[str, Any]
    started_at: datetime
    status: str = "running"
    epochs: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    ended_at: datetime | None = None


class TableRecorder(Callback):
    """Writes `tables/trials.parquet` and `tables/epochs/` at each trial event."""

    def __init__(self, study: Study, study_dir: Path, setup: TrialSetup):
        self.study = study
        self.study_dir = Path(study_dir)
        self.trial_setup = setup
        self.records: dict[str, TrialRecord] = {}
        self.started = time.time()

    @property
    def tables(self) -> StudyTables:
        # Made on first use: Tune pickles its callbacks with the experiment, and the writer holds a lock.
        if self.__dict__.get("_tables") is None:
            self._tables = StudyTables(self.study_dir)
        return self._tables

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tables": None}

    # -- Tune's events --

    def on_trial_start(self, iteration, trials, trial, **info):
        record = self.records.get(trial.trial_id)
        if record is None:
            record = TrialRecord(
                trial_id=trial.trial_id,
                config=dict(trial.config),
                options=train_options(self.trial_setup, dict(trial.config)),
                started_at=_now(),
            )
            self.records[trial.trial_id] = record
        record.status = "running"
        self._write_trial(record)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        record = self.records.get(trial.trial_id)
        if record is None:
            self.on_trial_start(iteration, trials, trial)
            record = self.records[trial.trial_id]
        metrics = _epoch_metrics(result)
        if "epoch" not in metrics:
            return
        record.epochs = [e for e in record.epochs if e["epoch"] != metrics["epoch"]] + [metrics]
        self.tables.append_epochs([{"trial_id": record.trial_id, **metrics}])
        self._write_trial(record)

    def on_trial_complete(self, iteration, trials, trial, **info):
        record = self.records.get(trial.trial_id)
        if record is None:
            return
        record.ended_at = _now()
        record.status = self._final_status(record)
        self._write_trial(record)

    def on_trial_error(self, iteration, trials, trial, **info):
        record = self.records.get(trial.trial_id)
        if record is None:
            self.on_trial_start(iteration, trials, trial)
            record = self.records[trial.trial_id]
        record.ended_at = _now()
        record.status = "failed"
        record.error = _error_text(trial)
        self._write_trial(record)

    def on_experiment_end(self, trials, **info):
        self.tables.compact_epochs()

    # -- rows --

    def _final_status(self, record: TrialRecord) -> str:
        if record.epochs and not math.isfinite(record.epochs[-1].get("loss", 0.0)):
            return "diverged"
        if len(record.epochs) < int(record.options.get("epochs", self.study.epochs)):
            return "early_stopped"
        return "completed"

    def _write_trial(self, record: TrialRecord) -> None:
        self.tables.upsert_trials([self.trial_row(record)])

    def trial_row(self, record: TrialRecord) -> dict[str, Any]:
        end = record.ended_at or _now()
        wall = (end - record.started_at).total_seconds()
        return {
            "trial_id": record.trial_id,
            "config_id": config_id(record.config),
            "seed": trial_seed(self.trial_setup.fixed, record.config),
            "status": record.status,
            **flatten_params({k: v for k, v in record.options.items() if k != "seed"}),
            **summarize_metrics(record.epochs),
            "epochs_run": len(record.epochs),
            "wall_s": wall,
            "gpu_s": wall * self.study.gpu * self.study.workers_per_trial,
            "error": record.error,
            "started_at": record.started_at,
            "ended_at": record.ended_at,
        }

    # -- what the progress view asks --

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records.values():
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts

    def best(self) -> tuple[str, float] | None:
        """The best trial so far by the study's metric: (trial_id, value)."""
        metric, sign = self.study.metric, (1 if self.study.mode == "max" else -1)
        best = None
        for record in self.records.values():
            values = [e[metric] for e in record.epochs if metric in e and math.isfinite(e[metric])]
            if values:
                value = max(values, key=lambda v: sign * v)
                if best is None or sign * value > sign * best[1]:
                    best = (record.trial_id, value)
        return best


def _epoch_metrics(result: dict[str, Any]) -> dict[str, float]:
    from reports.schema import METRICS

    return {
        name: float(result[name])
        for name in METRICS
        if name in result and isinstance(result[name], (int, float)) and not isinstance(result[name], bool)
    }


def _error_text(trial) -> str:
    """The exception line of a failed trial (the full traceback stays in Tune's error file)."""
    path = getattr(trial, "error_file", None)
    text = ""
    if path and Path(path).exists():
        text = Path(path).read_text(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Ray wraps the trainable's exception; its last line names the original error.
    return lines[-1] if lines else "trial failed (no error text recorded)"
