"""The Tune callback that records every trial event in the study's tables, as it happens.

The tables (written through `study_files.tables.StudyTables`) are the study's source of truth: each
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
from typing import Any, Callable

import pandas as pd
from ray.tune import Callback

from simclr_sweep.study import Study
from simclr_sweep.trainable import TrialSetup, sampled_params, table_trial_id, train_options, trial_seed
from study_files.best import Best, best
from study_files.summary import flatten_params, summarize_metrics
from study_files.tables import StudyTables
from study_files.vocabulary import METRICS


def config_id(config: dict[str, Any]) -> str:
    """A short stable id of a sampled configuration; repeats with other seeds share it."""
    digest = hashlib.sha1(json.dumps(sampled_params(config), sort_keys=True, default=str).encode()).hexdigest()
    return digest[:10]


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class TrialRecord:
    """What the driver knows about one trial, enough to write its row."""

    trial_id: str
    config_id: str
    seed: int
    options: dict[str, Any]
    started_at: datetime
    status: str = "running"
    epochs: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    ended_at: datetime | None = None
    wall_before: float = 0.0  # seconds run in earlier sessions (before a resume)
    session_start: datetime | None = None  # when it started running in this driver session


class TableRecorder(Callback):
    """Writes `tables/trials.parquet` and `tables/epochs/` at each trial event.

    Epoch rows, starts, completions and errors are written at once. A trial's row is also refreshed
    after its epochs, at most every `refresh_s` seconds: the epochs table already holds each epoch, and
    rewriting the trials table after every epoch of every trial would cost more than short trials do.

    `after_event()`, when given, is called after each Tune event the recorder handles (a remote study
    copies its Optuna journal there: `simclr_sweep.journal.JournalMirror.sync`); it must be cheap
    when nothing changed, and picklable.
    """

    def __init__(self, study: Study, study_dir: Path | str, setup: TrialSetup, refresh_s: float = 1.0,
                 after_event: Callable[[], Any] | None = None):
        self.study = study
        self.study_dir = study_dir if isinstance(study_dir, str) and "://" in study_dir else Path(study_dir)
        self.after_event = after_event
        self.trial_setup = setup
        self.refresh_s = refresh_s
        self.records: dict[str, TrialRecord] = {}
        self._stale: set[str] = set()  # trials whose row lags behind their epochs
        self._last_write = 0.0
        self._run_before = 0.0  # seconds earlier sessions ran the study
        self._session_t0: float | None = None

    @property
    def tables(self) -> StudyTables:
        # Made on first use: Tune pickles its callbacks with the experiment, and the writer holds a lock.
        if self.__dict__.get("_tables") is None:
            self._tables = StudyTables(self.study_dir)
        return self._tables

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tables": None}

    # -- Tune's events --

    def setup(self, **info):
        """Start from what the tables already hold (a resumed study)."""
        self.loaded()
        self._run_before = self.tables.read_run_time()
        self._session_t0 = time.monotonic()

    def run_time(self) -> float:
        """Seconds the study has run, this session and every earlier one."""
        session = time.monotonic() - self._session_t0 if self._session_t0 is not None else 0.0
        return self._run_before + session

    def loaded(self) -> "TableRecorder":
        """Load every trial the tables already hold; returns self."""
        self.records.update(load_records(self.tables, self.trial_setup))
        return self

    def on_trial_start(self, iteration, trials, trial, **info):
        record = self._record(trial)
        if record.session_start is None or record.ended_at is not None:  # continued by resume or retried
            record.wall_before = self._wall(record)
            record.session_start = _now()
        record.status, record.ended_at, record.error = "running", None, None
        self._write(record)
        self._after_event()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        record = self._record(trial)
        metrics = _epoch_metrics(result)
        if "epoch" not in metrics:
            return
        record.epochs = [e for e in record.epochs if e["epoch"] != metrics["epoch"]] + [metrics]
        record.epochs.sort(key=lambda e: e["epoch"])
        self.tables.append_epochs([{"trial_id": record.trial_id, **metrics}])
        self._stale.add(record.trial_id)
        self._refresh()
        self._after_event()

    def on_trial_complete(self, iteration, trials, trial, **info):
        record = self._record(trial)
        record.ended_at = _now()
        record.status = self._final_status(record)
        self._write(record)
        self._after_event()

    def on_trial_error(self, iteration, trials, trial, **info):
        record = self._record(trial)
        record.ended_at = _now()
        record.status = "failed"
        record.error = _error_text(trial)
        self._write(record)
        self._after_event()

    def _record(self, trial) -> TrialRecord:
        trial_id = table_trial_id(trial)
        record = self.records.get(trial_id)
        if record is None:
            config = dict(trial.config)
            now = _now()
            record = TrialRecord(
                trial_id=trial_id,
                config_id=config_id(config),
                seed=trial_seed(self.trial_setup.fixed, config),
                options=train_options(self.trial_setup, config),
                started_at=now,
                session_start=now,
            )
            self.records[trial_id] = record
        return record

    def on_step_end(self, iteration, trials, **info):
        self._refresh()
        self._after_event()  # the journal also changes between events (Optuna's suggestions)

    def on_experiment_end(self, trials, **info):
        self._refresh(force=True)
        if self._session_t0 is not None:
            self.tables.write_run_time(self.run_time())
        self.tables.compact_epochs()
        self._after_event()

    def _after_event(self) -> None:
        if self.after_event is not None:
            self.after_event()

    # -- rows --

    def _final_status(self, record: TrialRecord) -> str:
        if record.epochs and not math.isfinite(record.epochs[-1].get("loss", 0.0)):
            return "diverged"
        if len(record.epochs) < int(record.options.get("epochs", self.study.epochs)):
            return "early_stopped"
        return "completed"

    def _write(self, record: TrialRecord) -> None:
        """Write this trial's row now, with any rows that lag behind their epochs."""
        self._stale.add(record.trial_id)
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        if not self._stale or (not force and time.monotonic() - self._last_write < self.refresh_s):
            return
        self.tables.upsert_trials([self.trial_row(self.records[t]) for t in sorted(self._stale)])
        if self._session_t0 is not None:
            self.tables.write_run_time(self.run_time())
        self._stale.clear()
        self._last_write = time.monotonic()

    @staticmethod
    def _wall(record: TrialRecord) -> float:
        if record.session_start is None:
            return record.wall_before
        end = record.ended_at or _now()
        return record.wall_before + max((end - record.session_start).total_seconds(), 0.0)

    def trial_row(self, record: TrialRecord) -> dict[str, Any]:
        wall = self._wall(record)
        return {
            "trial_id": record.trial_id,
            "config_id": record.config_id,
            "seed": record.seed,
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

    def best(self) -> Best | None:
        """The study's best so far, as status and the report name it (`study_files.best`)."""
        rows = [self.trial_row(record) for record in self.records.values()]
        return best(pd.DataFrame(rows), self.study.metric, self.study.mode == "max") if rows else None


def load_records(tables: StudyTables, setup: TrialSetup) -> dict[str, TrialRecord]:
    """Rebuild the driver's view of every recorded trial from the tables."""
    trials = tables.read_trials()
    if trials.empty:
        return {}
    epochs = tables.read_epochs()
    by_trial = {tid: group for tid, group in epochs.groupby("trial_id")} if len(epochs) else {}
    records = {}
    for row in trials.to_dict("records"):
        history = by_trial.get(row["trial_id"])
        epoch_rows = []
        if history is not None:
            for e in history.sort_values("epoch").to_dict("records"):
                epoch_rows.append({m: float(e[m]) for m in METRICS if m in e and _present(e[m])})
        ended = row.get("ended_at")
        records[row["trial_id"]] = TrialRecord(
            trial_id=row["trial_id"],
            config_id=row["config_id"],
            seed=int(row["seed"]),
            options={**setup.fixed, **params_from_row(row), "seed": int(row["seed"])},
            started_at=row["started_at"].to_pydatetime(),
            status=row["status"],
            epochs=epoch_rows,
            error=row.get("error") if _present(row.get("error")) else None,
            ended_at=ended.to_pydatetime() if _present(ended) else None,
            wall_before=float(row["wall_s"]) if _present(row.get("wall_s")) else 0.0,
        )
    return records


def params_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The trainer options recorded in a trials row (`param.<name>` columns), as plain Python values."""
    params = {}
    for column, value in row.items():
        if column.startswith("param.") and _present(value):
            params[column[len("param."):]] = value.item() if hasattr(value, "item") else value
    return params


def _present(value: Any) -> bool:
    if value is None:
        return False
    try:
        return not bool(value != value)  # NaN and NaT are not equal to themselves
    except (TypeError, ValueError):
        return True


def _epoch_metrics(result: dict[str, Any]) -> dict[str, float]:
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
