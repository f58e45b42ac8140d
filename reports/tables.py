"""Reading and writing a study's tables: ``tables/trials.parquet`` and ``tables/epochs/``.

Every write goes to a temporary file beside its target and is renamed into place, so a reader (or
a crash) sees either the old file or the new one, never half of one. Rows are keyed: a trial by
``trial_id``, an epoch by ``(trial_id, epoch)``; writing a key again replaces the earlier row, so a
resume that replays results never duplicates them.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reports.schema import (
    AUGMENTATIONS_COLUMN,
    EPOCH_COLUMNS,
    EPOCHS_SCHEMA,
    METRIC_GOALS,
    METRICS,
    PARAM_PREFIX,
    STATUSES,
    TRIAL_FIXED_COLUMNS,
    best_column,
    last_column,
    param_type,
    trials_schema,
)

_PART_NAME = re.compile(r"^part-(\d{20})-(compacted|[0-9a-f]{8})\.parquet$")
_TIMESTAMP_COLUMNS = ("started_at", "ended_at")
_INT_COLUMNS = ("seed", "epochs_run")
_READ_RETRIES = 20


class StudyTables:
    """The tables of one study directory (``<study_dir>/tables``).

    One process writes (the Tune callback); any number may read, also while it writes.
    ``auto_compact_parts``: when ``append_epochs`` leaves more part files than this, it
    compacts them, so a long study never leaves readers thousands of small files.
    """

    def __init__(self, study_dir: str | os.PathLike[str], *, auto_compact_parts: int = 256) -> None:
        self.study_dir = Path(study_dir)
        self.tables_dir = self.study_dir / "tables"
        self.trials_path = self.tables_dir / "trials.parquet"
        self.epochs_dir = self.tables_dir / "epochs"
        self.run_time_path = self.tables_dir / "run_time.json"
        self.auto_compact_parts = auto_compact_parts
        self._lock = threading.Lock()
        self._last_seq = 0
        # The writer's own copy of the trials it last wrote, valid while the file is the one it wrote.
        self._rows: dict[str, dict[str, Any]] | None = None
        self._written: tuple[int, int] | None = None

    # -- trials ---------------------------------------------------------------------------

    def upsert_trials(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert or replace trials by ``trial_id``; a later row for a trial replaces it whole."""
        new_rows = [_normalise_trial_row(row) for row in rows]
        if not new_rows:
            return
        with self._lock:
            if self._rows is None or self._written != _stamp(self.trials_path):
                self._rows = {row["trial_id"]: row for row in self._existing_trial_rows()}
            merged = dict(self._rows)
            for row in new_rows:
                merged.pop(row["trial_id"], None)  # a replaced trial moves to the end
                merged[row["trial_id"]] = row
            _write_atomic(_trials_table(list(merged.values())), self.trials_path)
            self._rows, self._written = merged, _stamp(self.trials_path)

    def read_trials(self) -> pd.DataFrame:
        """All trials as a DataFrame (an empty one with the fixed columns before any write)."""
        if not self.trials_path.exists():
            return trials_schema({}).empty_table().to_pandas()
        return _read_whole(self.trials_path).to_pandas()

    def _existing_trial_rows(self) -> list[dict[str, Any]]:
        if not self.trials_path.exists():
            return []
        return _read_whole(self.trials_path).to_pylist()

    # -- the study's running time ---------------------------------------------------------

    def read_run_time(self) -> float:
        """Seconds the study's drivers have run it, over all its sessions (0 before the first)."""
        try:
            return float(json.loads(self.run_time_path.read_text())["run_s"])
        except FileNotFoundError:
            return 0.0

    def write_run_time(self, seconds: float) -> None:
        """Record the study's running time so far (what a resume takes off its `time_budget`)."""
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_time_path.with_name(f".{self.run_time_path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(json.dumps({"run_s": float(seconds)}))
            os.replace(tmp, self.run_time_path)
        finally:
            tmp.unlink(missing_ok=True)

    # -- epochs ---------------------------------------------------------------------------

    def append_epochs(self, rows: Iterable[Mapping[str, Any]]) -> Path | None:
        """Write these epoch rows as one new part file; returns its path (None for no rows).

        A row repeating an earlier (trial_id, epoch) wins over it on read and on compaction.
        """
        normalised = [_normalise_epoch_row(row) for row in rows]
        if not normalised:
            return None
        table = pa.Table.from_pylist(normalised, schema=EPOCHS_SCHEMA)
        with self._lock:
            path = self.epochs_dir / f"part-{self._next_seq():020d}-{uuid.uuid4().hex[:8]}.parquet"
            _write_atomic(table, path)
        if len(self._parts()) > self.auto_compact_parts:
            self.compact_epochs()
        return path

    def compact_epochs(self) -> int:
        """Merge every epoch part into one file; returns how many parts were merged.

        The merged file is renamed into place before any merged part is removed, and it sorts
        after them, so a reader at any moment sees every row once the duplicates are dropped.
        """
        with self._lock:
            parts = self._parts()
            if len(parts) < 2:
                return 0
            frame = _dedupe_epochs(pa.concat_tables(pq.read_table(p, schema=EPOCHS_SCHEMA) for p in parts))
            last_seq = _part_key(parts[-1])[0]
            target = self.epochs_dir / f"part-{last_seq:020d}-compacted.parquet"
            _write_atomic(pa.Table.from_pandas(frame, schema=EPOCHS_SCHEMA, preserve_index=False), target)
            for part in parts:
                if part != target:
                    part.unlink(missing_ok=True)
            return len(parts)

    def read_epochs(self) -> pd.DataFrame:
        """All epoch rows, one per (trial_id, epoch), sorted by trial then epoch.

        Safe while a study writes: temporary files are never listed, and a part that a
        compaction removes between listing and reading triggers a fresh listing.
        """
        for _ in range(_READ_RETRIES):
            parts = self._parts()
            try:
                tables = [pq.read_table(p, schema=EPOCHS_SCHEMA) for p in parts]
            except FileNotFoundError:
                continue
            if not tables:
                return EPOCHS_SCHEMA.empty_table().to_pandas()
            return _dedupe_epochs(pa.concat_tables(tables))
        raise RuntimeError(f"epoch parts in {self.epochs_dir} kept vanishing while being read")

    def _parts(self) -> list[Path]:
        if not self.epochs_dir.is_dir():
            return []
        parts = [p for p in self.epochs_dir.iterdir() if _PART_NAME.match(p.name)]
        return sorted(parts, key=_part_key)

    def _next_seq(self) -> int:
        # time-based so that parts written by a later process (a resume) sort after earlier ones
        self._last_seq = max(time.time_ns(), self._last_seq + 1)
        return self._last_seq


def summarize_metrics(epoch_rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> dict[str, float | None]:
    """``best.<m>`` and ``last.<m>`` for every metric in METRICS from one trial's epoch rows.

    best follows METRIC_GOALS over finite values; last is the value of the latest epoch that
    reported the metric (a diverged trial's NaN loss counts as reported when given as dicts;
    in a DataFrame NaN cannot be told from "not reported" and is skipped). None when never seen.
    """
    rows = _rows_from(epoch_rows)
    rows.sort(key=lambda r: (r.get("epoch") is None, r.get("epoch") or 0))
    summary: dict[str, float | None] = {}
    for metric in METRICS:
        seen = [float(r[metric]) for r in rows if r.get(metric) is not None]
        finite = [v for v in seen if math.isfinite(v)]
        pick = max if METRIC_GOALS[metric] == "max" else min
        summary[best_column(metric)] = pick(finite) if finite else None
        summary[last_column(metric)] = seen[-1] if seen else None
    return summary


def flatten_params(config: Mapping[str, Any], prefix: str = PARAM_PREFIX) -> dict[str, Any]:
    """A trial's configuration as ``param.<name>`` columns: nested keys joined with dots,
    augmentations as a sorted comma-joined string, other lists comma-joined in order."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = _param_value(name, value)
    return flat


# -- row normalisation ----------------------------------------------------------------------


def _normalise_trial_row(row: Mapping[str, Any]) -> dict[str, Any]:
    unknown = [k for k in row if k not in TRIAL_FIXED_COLUMNS and not k.startswith(PARAM_PREFIX)]
    if unknown:
        raise ValueError(f"trials row: unknown column(s) {sorted(unknown)}; expected the columns of "
                         f"reports.schema (trial_id, config_id, seed, status, param.<name>, ...)")
    if not row.get("trial_id"):
        raise ValueError("trials row: trial_id is required")
    status = row.get("status")
    if status is not None and status not in STATUSES:
        raise ValueError(f"trials row {row['trial_id']}: status must be one of {', '.join(STATUSES)} "
                         f"(got {status!r})")
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.startswith(PARAM_PREFIX):
            out[key] = _param_value(key, value)
        elif key in _TIMESTAMP_COLUMNS:
            out[key] = _utc(value)
        elif key in _INT_COLUMNS:
            out[key] = None if _missing(value) else int(value)
        elif key in ("trial_id", "config_id", "status", "error"):
            out[key] = None if value is None else str(value)
        else:
            out[key] = None if _missing(value) else float(value)
    return out


def _normalise_epoch_row(row: Mapping[str, Any]) -> dict[str, Any]:
    unknown = [k for k in row if k not in EPOCH_COLUMNS]
    if unknown:
        raise ValueError(f"epochs row: unknown column(s) {sorted(unknown)}; metrics are {', '.join(METRICS)}")
    if not row.get("trial_id") or row.get("epoch") is None:
        raise ValueError("epochs row: trial_id and epoch are required")
    out: dict[str, Any] = {"trial_id": str(row["trial_id"]), "epoch": int(row["epoch"])}
    for metric in EPOCH_COLUMNS[2:]:
        value = row.get(metric)
        out[metric] = None if value is None else float(value)
    return out


def _param_value(name: str, value: Any) -> Any:
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [str(v) for v in value]
        if name == AUGMENTATIONS_COLUMN or isinstance(value, (set, frozenset)):
            items.sort()
        return ",".join(items)
    if name == AUGMENTATIONS_COLUMN and isinstance(value, str):
        return ",".join(sorted(p.strip() for p in value.split(",") if p.strip()))
    item = getattr(value, "item", None)  # numpy scalar -> Python scalar
    if callable(item) and not isinstance(value, (str, bytes)):
        return item()
    return value


def _utc(value: Any) -> dt.datetime | None:
    if _missing(value):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc)
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT


def _trials_table(rows: list[dict[str, Any]]) -> pa.Table:
    param_names = sorted({k for row in rows for k in row if k.startswith(PARAM_PREFIX)})
    types = {name: param_type(row.get(name) for row in rows) for name in param_names}
    schema = trials_schema(types)
    columns = {}
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if field.name in types and types[field.name] == pa.string():
            values = [None if v is None else str(v) for v in values]
        elif field.name in types and types[field.name] == pa.float64():
            values = [None if v is None else float(v) for v in values]
        columns[field.name] = pa.array(values, type=field.type)
    return pa.Table.from_pydict(columns, schema=schema)


def _rows_from(epoch_rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> list[dict[str, Any]]:
    if isinstance(epoch_rows, pd.DataFrame):
        frame = epoch_rows.astype(object)
        return frame.where(frame.notna(), None).to_dict("records")
    return [dict(r) for r in epoch_rows]


def _dedupe_epochs(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    frame = frame.drop_duplicates(subset=["trial_id", "epoch"], keep="last")
    return frame.sort_values(["trial_id", "epoch"], kind="stable").reset_index(drop=True)


def _part_key(path: Path) -> tuple[int, int]:
    match = _PART_NAME.match(path.name)
    assert match is not None  # _parts() lists only matching names
    return int(match.group(1)), int(match.group(2) == "compacted")


def _read_whole(path: Path) -> pa.Table:
    """Read a Parquet file through one open: a writer renaming a new version into place meanwhile
    cannot mix the old footer with the new pages (parquet readers may open a path more than once)."""
    return pq.read_table(pa.BufferReader(path.read_bytes()))


def _stamp(path: Path) -> tuple[int, int] | None:
    """What identifies one version of a file: its modification time and size."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def _write_atomic(table: pa.Table, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name ends in .tmp so that readers globbing *.parquet never see it
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
