"""Reading and writing a study's tables: ``tables/trials.parquet`` and ``tables/epochs/``.

Every write goes to a temporary file beside its target and is renamed into place, so a reader (or
a crash) sees either the old file or the new one, never half of one. Rows are keyed: a trial by
``trial_id``, an epoch by ``(trial_id, epoch)``; writing a key again replaces the earlier row, so a
resume that replays results never duplicates them.

Reading the epochs from outside: ``tables/epochs/`` holds part files that are merged (compacted) at
the end of each session, and until then a replayed epoch is in two parts. ``read_epochs(study_dir)``
(or ``StudyTables(study_dir).read_epochs()``) gives one row per (trial_id, epoch), the latest written.
Reading the parts directly (pandas, polars, duckdb) sees every copy; keep the row of the last part,
by file name (names sort in write order), as in ``DEDUPED_EPOCHS_SQL`` for duckdb.

A study folder may also be a URI (``s3://bucket/prefix/study``): the same files then go through a
``pyarrow.fs`` filesystem (``StudyFiles``). An object store replaces an object whole at each PUT,
so there a file is written directly, in one request, from bytes already complete in memory.
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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from reports.schema import (
    AUGMENTATIONS_COLUMN,
    BASELINES_SCHEMA,
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
_TRIALS = "tables/trials.parquet"
_EPOCHS = "tables/epochs"
_RUN_TIME = "tables/run_time.json"
_BASELINES = "tables/baselines.parquet"
_EMBEDDINGS = "tables/embeddings.npz"


# -- where a study's files live: a local folder or a URI ---------------------------------------


def is_remote(location: str | os.PathLike[str]) -> bool:
    """Whether a study location is a URI of a remote filesystem (``s3://...``), not a local path.

    A ``pathlib.Path`` is always local (``Path("s3://b")`` has already lost the URI); ``file://``
    URIs are local too.
    """
    if isinstance(location, os.PathLike):
        return False
    scheme, sep, _ = str(location).partition("://")
    return bool(sep) and scheme.lower() != "file" and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) is not None


def remote_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The ``pyarrow.fs`` filesystem of a remote URI and the path on it (no scheme, no end slash).

    ``s3://`` follows the standard AWS environment: ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``
    (an S3-compatible server such as MinIO or moto), ``AWS_REGION`` or ``AWS_DEFAULT_REGION``;
    credentials come from AWS's own chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
    ``AWS_PROFILE`` and ``~/.aws``, an instance role). Other schemes go to
    ``pyarrow.fs.FileSystem.from_uri`` as they are. Raises ``ValueError`` for a URI it cannot use.
    """
    scheme, _, rest = uri.partition("://")
    if scheme.lower() == "s3" and "?" not in rest:
        path = rest.strip("/")
        if not path or rest.startswith("/"):
            raise ValueError(f"{uri}: an s3 URI names a bucket, as in s3://bucket/prefix")
        options: dict[str, Any] = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if endpoint:
            options["endpoint_override"] = endpoint
            options["region"] = region or "us-east-1"
        elif region:
            options["region"] = region
        if options:
            return pafs.S3FileSystem(**options), path
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as err:
        raise ValueError(f"{uri}: not a URI pyarrow can open ({str(err).splitlines()[0]})") from None
    return fs, path.rstrip("/")


class StudyFiles:
    """The files of one study folder, by path relative to it: a local folder or a remote URI.

    Local writes go to a temporary file beside the target and are renamed into place; remote
    writes are one PUT of the whole content (an object store never shows half an object).
    """

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.remote = is_remote(location)
        if self.remote:
            self.uri = str(location).rstrip("/")
            self._fs: tuple[pafs.FileSystem, str] | None = None
        else:
            self.root = Path(location)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fs": None}

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self._remote()[0]

    def _remote(self) -> tuple[pafs.FileSystem, str]:
        if self._fs is None:
            self._fs = remote_filesystem(self.uri)
        return self._fs

    def fs_path(self, rel: str = "") -> str:
        """The path of ``rel`` on the remote filesystem (``bucket/prefix/study/rel``)."""
        base = self._remote()[1]
        return f"{base}/{rel}" if rel else base

    def location(self, rel: str = "") -> Path | str:
        """What names ``rel`` for a user: a local Path, or the remote URI."""
        if self.remote:
            return f"{self.uri}/{rel}" if rel else self.uri
        return self.root / rel if rel else self.root

    def exists(self, rel: str) -> bool:
        if not self.remote:
            return (self.root / rel).exists()
        return self.filesystem.get_file_info(self.fs_path(rel)).type != pafs.FileType.NotFound

    def is_file(self, rel: str) -> bool:
        if not self.remote:
            return (self.root / rel).is_file()
        return self.filesystem.get_file_info(self.fs_path(rel)).type == pafs.FileType.File

    def read_bytes(self, rel: str) -> bytes:
        """The whole file, read through one open; FileNotFoundError when it is not there."""
        if not self.remote:
            return (self.root / rel).read_bytes()
        with self.filesystem.open_input_file(self.fs_path(rel)) as handle:
            return handle.readall()

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def write_bytes(self, rel: str, data: bytes) -> Path | str:
        """Replace ``rel`` with ``data`` whole; returns its location."""
        if not self.remote:
            target = self.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            return target
        with self.filesystem.open_output_stream(self.fs_path(rel)) as out:
            out.write(data)
        return self.location(rel)

    def write_text(self, rel: str, text: str) -> Path | str:
        return self.write_bytes(rel, text.encode("utf-8"))

    def list(self, rel: str = "") -> list[str]:
        """Names directly under folder ``rel`` ([] when there is no such folder)."""
        if not self.remote:
            folder = self.root / rel
            return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        infos = self.filesystem.get_file_info(pafs.FileSelector(self.fs_path(rel), allow_not_found=True))
        return sorted(info.base_name for info in infos)

    def delete(self, rel: str) -> None:
        """Remove one file; a file already gone is fine."""
        if not self.remote:
            (self.root / rel).unlink(missing_ok=True)
            return
        try:
            self.filesystem.delete_file(self.fs_path(rel))
        except FileNotFoundError:
            pass

    def stamp(self, rel: str) -> tuple[int, int] | None:
        """What identifies one version of a file: its modification time and size (None: absent)."""
        if not self.remote:
            return _stamp(self.root / rel)
        info = self.filesystem.get_file_info(self.fs_path(rel))
        if info.type == pafs.FileType.NotFound:
            return None
        return info.mtime_ns or 0, info.size or 0

    def write_table(self, rel: str, table: pa.Table) -> None:
        if not self.remote:
            _write_atomic(table, self.root / rel)
            return
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.write_bytes(rel, sink.getvalue().to_pybytes())

    def read_table(self, rel: str, schema: pa.Schema | None = None) -> pa.Table:
        if not self.remote:
            return pq.read_table(self.root / rel, schema=schema)
        return pq.read_table(pa.BufferReader(self.read_bytes(rel)), schema=schema)


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

    def __init__(self, study_dir: str | os.PathLike[str], *, auto_compact_parts: int = 256) -> None:
        self.files = StudyFiles(study_dir)
        if self.files.remote:
            self.study_dir = self.files.uri
            self.tables_dir = self.files.location("tables")
            self.trials_path = self.files.location(_TRIALS)
            self.epochs_dir = self.files.location(_EPOCHS)
            self.run_time_path = self.files.location(_RUN_TIME)
        else:
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
        if not self.files.remote:
            return _read_whole(self.trials_path) if self.trials_path.exists() else None
        try:
            return pq.read_table(pa.BufferReader(self.files.read_bytes(_TRIALS)))
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
        if self.files.remote:
            self.files.write_text(_RUN_TIME, json.dumps({"run_s": float(seconds)}))
            return
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_time_path.with_name(f".{self.run_time_path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(json.dumps({"run_s": float(seconds)}))
            os.replace(tmp, self.run_time_path)
        finally:
            tmp.unlink(missing_ok=True)

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

    def write_embeddings(self, npz: bytes) -> None:
        """Replace ``tables/embeddings.npz`` (``trainers.embeddings``' arrays, plus ``trial_id``)."""
        self.files.write_bytes(_EMBEDDINGS, npz)

    def read_embeddings(self) -> dict[str, Any] | None:
        """The best trial's embeddings as {name: numpy array}, or None when none were exported."""
        if not self.files.exists(_EMBEDDINGS):
            return None
        with np.load(io.BytesIO(self.files.read_bytes(_EMBEDDINGS)), allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}

    # -- epochs ---------------------------------------------------------------------------

    def append_epochs(self, rows: Iterable[Mapping[str, Any]]) -> Path | str | None:
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


def _part_key(path: str) -> tuple[int, int]:
    match = _PART_NAME.match(path.rsplit("/", 1)[-1])
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
