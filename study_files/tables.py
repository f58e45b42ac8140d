"""Reading and writing a study's tables: ``tables/trials.parquet`` and ``tables/epochs/``.

Every write replaces a file whole (`StudyFiles.write_table`), so a reader (or a crash) sees either
the old file or the new one, never half of one. Rows are keyed: a trial by
``trial_id``, an epoch by ``(trial_id, epoch)``; writing a key again replaces the earlier row, so a
resume that replays results never duplicates them.

Reading the epochs from outside: ``tables/epochs/`` holds part files that are merged (compacted) at
the end of each session, and until then a replayed epoch is in two parts. ``read_epochs(study_dir)``
(or ``StudyTables(study_dir).read_epochs()``) gives one row per (trial_id, epoch), the latest written.
Reading the parts directly (pandas, polars, duckdb) sees every copy; keep the row of the last part,
by file name (names sort in write order), as in ``DEDUPED_EPOCHS_SQL`` for duckdb.

A study folder may also be a URI (``s3://bucket/prefix/study``): every file goes through
`study_files.locations.StudyFiles`, which writes it whole either way.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from study_files.locations import Location, StudyFiles
from study_files.schema import (
    BASELINES_SCHEMA,
    EPOCH_COLUMNS,
    EPOCHS_SCHEMA,
    FINETUNE_SCHEMA,
    PARAM_PREFIX,
    TRIAL_FIXED_COLUMNS,
    param_type,
    trials_schema,
)
from study_files.summary import param_value
from study_files.vocabulary import METRICS, STATUSES

_PART_NAME = re.compile(r"^part-(\d{20})-(compacted|[0-9a-f]{8})\.parquet$")
_TIMESTAMP_COLUMNS = ("started_at", "ended_at")
_INT_COLUMNS = ("seed", "epochs_run")
_READ_RETRIES = 20
_TABLES = "tables"
_TRIALS = "tables/trials.parquet"
_EPOCHS = "tables/epochs"
_RUN_TIME = "tables/run_time.json"
_BASELINES = "tables/baselines.parquet"
_EMBEDDINGS = "tables/embeddings.npz"
_FINETUNE = "tables/finetune.parquet"


# duckdb over the raw part files, giving what read_epochs gives: format with the epochs folder.
DEDUPED_EPOCHS_SQL = (
    "select * exclude (filename, file_row_number) "
    "from read_parquet('{epochs_dir}/*.parquet', filename = true, file_row_number = true) "
    "qualify row_number() over (partition by trial_id, epoch order by filename desc, file_row_number desc) = 1 "
    "order by trial_id, epoch")


def read_epochs(study_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """A study's epoch rows, one per (trial_id, epoch), whether or not its parts were compacted:
    the way for other code to read ``tables/epochs/`` without seeing a replayed epoch twice."""
    return StudyTables(study_dir).read_epochs()


class StudyTables:
    """The tables of one study directory (``<study_dir>/tables``), or of a study URI (``s3://...``).

    One process writes (the Tune callback); any number may read, also while it writes.
    ``read_epochs()`` gives one row per (trial_id, epoch); the part files under ``tables/epochs/``
    may hold a replayed epoch twice until they are compacted (see the module's docstring).
    ``auto_compact_parts``: when ``append_epochs`` leaves more part files than this, it
    compacts them, so a long study never leaves readers thousands of small files.
    The ``*_path``/``*_dir`` attributes are Paths for a local study and URIs for a remote one.
    """

    def __init__(self, study_dir: Location | os.PathLike[str], *, auto_compact_parts: int = 256) -> None:
        self.files = StudyFiles(study_dir)
        self.study_dir = self.files.location()
        self.tables_dir = self.files.location(_TABLES)
        self.trials_path = self.files.location(_TRIALS)
        self.epochs_dir = self.files.location(_EPOCHS)
        self.run_time_path = self.files.location(_RUN_TIME)
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
            if self._rows is None or self._written != self.files.stamp(_TRIALS):
                self._rows = {row["trial_id"]: row for row in self._existing_trial_rows()}
            merged = dict(self._rows)
            for row in new_rows:
                merged.pop(row["trial_id"], None)  # a replaced trial moves to the end
                merged[row["trial_id"]] = row
            self.files.write_table(_TRIALS, _trials_table(list(merged.values())))
            self._rows, self._written = merged, self.files.stamp(_TRIALS)

    def read_trials(self) -> pd.DataFrame:
        """All trials as a DataFrame (an empty one with the fixed columns before any write)."""
        table = self._read_trials_table()
        if table is None:
            return trials_schema({}).empty_table().to_pandas()
        return table.to_pandas()

    def _existing_trial_rows(self) -> list[dict[str, Any]]:
        table = self._read_trials_table()
        return [] if table is None else table.to_pylist()

    def _read_trials_table(self) -> pa.Table | None:
        try:
            return self.files.read_table(_TRIALS)
        except FileNotFoundError:
            return None

    # -- the study's running time ---------------------------------------------------------

    def read_run_time(self) -> float:
        """Seconds the study's drivers have run it, over all its sessions (0 before the first)."""
        try:
            return float(json.loads(self.files.read_text(_RUN_TIME))["run_s"])
        except FileNotFoundError:
            return 0.0

    def write_run_time(self, seconds: float) -> None:
        """Record the study's running time so far (what a resume takes off its `time_budget`)."""
        self.files.write_text(_RUN_TIME, json.dumps({"run_s": float(seconds)}))

    # -- what the study computed after its trials ----------------------------------------

    def write_baselines(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Replace ``tables/baselines.parquet``: one row per baseline (``baseline`` and its metrics)."""
        normalised = []
        for row in rows:
            unknown = set(row) - set(BASELINES_SCHEMA.names)
            if unknown:
                raise ValueError(f"baselines row: unknown column(s) {sorted(unknown)}; expected {BASELINES_SCHEMA.names}")
            normalised.append({name: row.get(name) for name in BASELINES_SCHEMA.names})
        self.files.write_table(_BASELINES, pa.Table.from_pylist(normalised, schema=BASELINES_SCHEMA))

    def read_baselines(self) -> pd.DataFrame:
        """The baselines' rows (an empty frame when the study declared none)."""
        if not self.files.exists(_BASELINES):
            return BASELINES_SCHEMA.empty_table().to_pandas()
        return self.files.read_table(_BASELINES, schema=BASELINES_SCHEMA).to_pandas()

    def write_finetune(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Replace ``tables/finetune.parquet``: one row per fine-tuned (encoder, protocol, label fraction)."""
        normalised = []
        for row in rows:
            unknown = set(row) - set(FINETUNE_SCHEMA.names)
            if unknown:
                raise ValueError(f"finetune row: unknown column(s) {sorted(unknown)}; expected {FINETUNE_SCHEMA.names}")
            normalised.append({name: row.get(name) for name in FINETUNE_SCHEMA.names})
        self.files.write_table(_FINETUNE, pa.Table.from_pylist(normalised, schema=FINETUNE_SCHEMA))

    def read_finetune(self) -> pd.DataFrame:
        """The fine-tuning rows (an empty frame when the study declared no `finetune`)."""
        if not self.files.exists(_FINETUNE):
            return FINETUNE_SCHEMA.empty_table().to_pandas()
        return self.files.read_table(_FINETUNE, schema=FINETUNE_SCHEMA).to_pandas()

    def write_embeddings(self, npz: bytes) -> None:
        """Replace ``tables/embeddings.npz`` (``trainers.evaluation.embeddings``' arrays, plus ``trial_id``)."""
        self.files.write_bytes(_EMBEDDINGS, npz)

    def read_embeddings(self) -> dict[str, Any] | None:
        """The best trial's embeddings as {name: numpy array}, or None when none were exported."""
        if not self.files.exists(_EMBEDDINGS):
            return None
        with np.load(io.BytesIO(self.files.read_bytes(_EMBEDDINGS)), allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}

    # -- epochs ---------------------------------------------------------------------------

    def append_epochs(self, rows: Iterable[Mapping[str, Any]]) -> Location | None:
        """Write these epoch rows as one new part file; returns its path or URI (None for no rows).

        A row repeating an earlier (trial_id, epoch) wins over it on read and on compaction.
        """
        normalised = [_normalise_epoch_row(row) for row in rows]
        if not normalised:
            return None
        table = pa.Table.from_pylist(normalised, schema=EPOCHS_SCHEMA)
        with self._lock:
            part = f"{_EPOCHS}/part-{self._next_seq():020d}-{uuid.uuid4().hex[:8]}.parquet"
            self.files.write_table(part, table)
        if len(self._parts()) > self.auto_compact_parts:
            self.compact_epochs()
        return self.files.location(part)

    def compact_epochs(self) -> int:
        """Merge every epoch part into one file; returns how many parts were merged.

        The merged file is renamed into place before any merged part is removed, and it sorts
        after them, so a reader at any moment sees every row once the duplicates are dropped.
        """
        with self._lock:
            parts = self._parts()
            if len(parts) < 2:
                return 0
            frame = _dedupe_epochs(pa.concat_tables(self.files.read_table(p, schema=EPOCHS_SCHEMA) for p in parts))
            last_seq = _part_key(parts[-1])[0]
            target = f"{_EPOCHS}/part-{last_seq:020d}-compacted.parquet"
            self.files.write_table(target, pa.Table.from_pandas(frame, schema=EPOCHS_SCHEMA, preserve_index=False))
            for part in parts:
                if part != target:
                    self.files.delete(part)
            return len(parts)

    def read_epochs(self) -> pd.DataFrame:
        """All epoch rows, one per (trial_id, epoch), sorted by trial then epoch; of a key written
        more than once (a resume's replay), the latest write.

        Safe while a study writes: temporary files are never listed, and a part that a
        compaction removes between listing and reading triggers a fresh listing.
        """
        for _ in range(_READ_RETRIES):
            parts = self._parts()
            try:
                tables = [self.files.read_table(p, schema=EPOCHS_SCHEMA) for p in parts]
            except FileNotFoundError:
                continue
            if not tables:
                return EPOCHS_SCHEMA.empty_table().to_pandas()
            return _dedupe_epochs(pa.concat_tables(tables))
        raise RuntimeError(f"epoch parts in {self.epochs_dir} kept vanishing while being read")

    def _parts(self) -> list[str]:
        """The epoch part files, as paths relative to the study folder, oldest first."""
        parts = [f"{_EPOCHS}/{name}" for name in self.files.list(_EPOCHS) if _PART_NAME.match(name)]
        return sorted(parts, key=_part_key)

    def _next_seq(self) -> int:
        # time-based so that parts written by a later process (a resume) sort after earlier ones
        self._last_seq = max(time.time_ns(), self._last_seq + 1)
        return self._last_seq


# -- row normalisation ----------------------------------------------------------------------


def _normalise_trial_row(row: Mapping[str, Any]) -> dict[str, Any]:
    unknown = [k for k in row if k not in TRIAL_FIXED_COLUMNS and not k.startswith(PARAM_PREFIX)]
    if unknown:
        raise ValueError(f"trials row: unknown column(s) {sorted(unknown)}; expected the columns of "
                         f"study_files.schema (trial_id, config_id, seed, status, param.<name>, ...)")
    if not row.get("trial_id"):
        raise ValueError("trials row: trial_id is required")
    status = row.get("status")
    if status is not None and status not in STATUSES:
        raise ValueError(f"trials row {row['trial_id']}: status must be one of {', '.join(STATUSES)} "
                         f"(got {status!r})")
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.startswith(PARAM_PREFIX):
            out[key] = param_value(key, value)
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


def _dedupe_epochs(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    frame = frame.drop_duplicates(subset=["trial_id", "epoch"], keep="last")
    return frame.sort_values(["trial_id", "epoch"], kind="stable").reset_index(drop=True)


def _part_key(path: str) -> tuple[int, int]:
    match = _PART_NAME.match(path.rsplit("/", 1)[-1])
    assert match is not None  # _parts() lists only matching names
    return int(match.group(1)), int(match.group(2) == "compacted")
