"""StudyTables: atomic, idempotent writes and readers that pandas, polars and duckdb agree on."""
import datetime as dt
import math
import os
import threading

import duckdb
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from study_files.vocabulary import STATUSES
from study_files.summary import flatten_params, summarize_metrics
from study_files.tables import DEDUPED_EPOCHS_SQL, StudyTables, read_epochs

T0 = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)

# Copied from the README ("What a study leaves behind"), not from study_files.schema: the schema is
# checked against what users are promised, never against itself.
DESIGN_METRICS = ["epoch", "loss", "knn_top1", "linear_top1", "linear_r2", "lr", "images_per_s", "epoch_time_s",
                  "gpu_mem_gb"]
DESIGN_TRIAL_COLUMNS = ["trial_id", "config_id", "seed", "status",
                        *[f"{kind}.{m}" for m in DESIGN_METRICS for kind in ("best", "last")],
                        "epochs_run", "wall_s", "gpu_s", "error", "started_at", "ended_at"]
DESIGN_EPOCH_COLUMNS = ["trial_id", "epoch", "loss", "knn_top1", "linear_top1", "linear_r2", "lr", "images_per_s",
                        "epoch_time_s", "gpu_mem_gb"]


def _trial(trial_id, **extra):
    row = {"trial_id": trial_id, "config_id": "c1", "seed": 0, "status": "completed",
           "param.temperature": 0.5, "param.augmentations": ["crop", "color_jitter"],
           "best.knn_top1": 0.7, "epochs_run": 3, "wall_s": 12.5, "gpu_s": 10.0,
           "error": None, "started_at": T0, "ended_at": T0 + dt.timedelta(seconds=12)}
    row.update(extra)
    return row


def test_trials_table_has_every_fixed_column_and_param_columns(tmp_path):
    tables = StudyTables(tmp_path)
    tables.upsert_trials([_trial("t1")])
    frame = tables.read_trials()
    names = pq.read_schema(tmp_path / "tables" / "trials.parquet").names
    assert list(frame.columns) == names
    assert sorted(names) == sorted(DESIGN_TRIAL_COLUMNS + ["param.augmentations", "param.temperature"])
    assert frame.loc[0, "param.augmentations"] == "color_jitter,crop"
    assert frame.loc[0, "started_at"] == T0
    assert math.isnan(frame.loc[0, "last.knn_top1"])


def test_upsert_is_idempotent_and_later_row_replaces_earlier(tmp_path):
    tables = StudyTables(tmp_path)
    tables.upsert_trials([_trial("t1", status="running"), _trial("t2")])
    tables.upsert_trials([_trial("t1", status="completed", **{"best.knn_top1": 0.9})])
    tables.upsert_trials([_trial("t1", status="completed", **{"best.knn_top1": 0.9})])
    frame = tables.read_trials().set_index("trial_id")
    assert sorted(frame.index) == ["t1", "t2"]
    assert frame.loc["t1", "status"] == "completed"
    assert frame.loc["t1", "best.knn_top1"] == 0.9


def test_param_column_keeps_one_type_across_rows(tmp_path):
    tables = StudyTables(tmp_path)
    tables.upsert_trials([_trial("t1", **{"param.batch_size": 128, "param.hidden_norm": True})])
    tables.upsert_trials([_trial("t2", **{"param.batch_size": 256, "param.hidden_norm": False,
                                          "param.temperature": 1})])
    schema = pq.read_schema(tmp_path / "tables" / "trials.parquet")
    assert str(schema.field("param.batch_size").type) == "int64"
    assert str(schema.field("param.hidden_norm").type) == "bool"
    assert str(schema.field("param.temperature").type) == "double"  # 0.5 and 1 -> float


def test_unknown_trial_column_and_status_are_refused(tmp_path):
    tables = StudyTables(tmp_path)
    with pytest.raises(ValueError, match="best.acc"):
        tables.upsert_trials([_trial("t1", **{"best.acc": 1.0})])
    with pytest.raises(ValueError, match="status must be one of"):
        tables.upsert_trials([_trial("t1", status="done")])
    assert not (tmp_path / "tables" / "trials.parquet").exists()


def test_failed_write_leaves_previous_file_intact_and_no_temp_files(tmp_path, monkeypatch):
    tables = StudyTables(tmp_path)
    tables.upsert_trials([_trial("t1")])
    written = []

    def crash_on_rename(src, dst):  # the new file is complete beside the old one; the rename fails
        written.append((src, os.path.getsize(src)))
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", crash_on_rename)
    with pytest.raises(OSError, match="rename failed"):
        tables.upsert_trials([_trial("t2")])
    monkeypatch.undo()
    (temp, size), = written
    assert size > 0 and not os.path.exists(temp)
    assert list(tables.read_trials()["trial_id"]) == ["t1"]
    assert [p.name for p in (tmp_path / "tables").iterdir()] == ["trials.parquet"]


def _epochs(trial_id, epochs, knn=0.5):
    return [{"trial_id": trial_id, "epoch": e, "loss": 5.0 - e, "knn_top1": knn + e / 100}
            for e in epochs]


def test_epoch_replays_are_deduplicated_last_write_wins(tmp_path):
    tables = StudyTables(tmp_path)
    tables.append_epochs(_epochs("t1", [1, 2, 3], knn=0.1))
    tables.append_epochs(_epochs("t1", [3, 4], knn=0.5))
    frame = tables.read_epochs()
    assert list(frame["epoch"]) == [1, 2, 3, 4]
    assert frame.set_index("epoch").loc[3, "knn_top1"] == pytest.approx(0.53)
    assert list(frame.columns) == DESIGN_EPOCH_COLUMNS
    parts = sorted((tmp_path / "tables" / "epochs").glob("*.parquet"))
    assert [pq.read_schema(part).names for part in parts] == [DESIGN_EPOCH_COLUMNS] * 2


def test_compaction_merges_parts_and_keeps_rows(tmp_path):
    tables = StudyTables(tmp_path)
    for epoch in range(1, 6):
        tables.append_epochs(_epochs("t1", [epoch]) + _epochs("t2", [epoch]))
    tables.append_epochs(_epochs("t2", [5], knn=0.9))
    before = tables.read_epochs()
    assert tables.compact_epochs() == 6
    assert len(list((tmp_path / "tables" / "epochs").iterdir())) == 1
    after = tables.read_epochs()
    assert after.equals(before)
    assert after.query("trial_id == 't2' and epoch == 5")["knn_top1"].item() == pytest.approx(0.95)
    tables.append_epochs(_epochs("t1", [6]))
    assert tables.compact_epochs() == 2
    assert len(tables.read_epochs()) == 11


def test_append_compacts_automatically_past_the_part_limit(tmp_path):
    tables = StudyTables(tmp_path, auto_compact_parts=4)
    for epoch in range(1, 11):
        tables.append_epochs(_epochs("t1", [epoch]))
    assert len(list((tmp_path / "tables" / "epochs").iterdir())) <= 5
    assert list(tables.read_epochs()["epoch"]) == list(range(1, 11))


def test_reader_ignores_temporary_files(tmp_path):
    tables = StudyTables(tmp_path)
    tables.append_epochs(_epochs("t1", [1]))
    (tmp_path / "tables" / "epochs" / ".part-x.parquet.abc.tmp").write_bytes(b"half a file")
    assert len(tables.read_epochs()) == 1


def test_reader_sees_every_row_while_a_writer_appends_and_compacts(tmp_path):
    writer = StudyTables(tmp_path, auto_compact_parts=3)
    reader = StudyTables(tmp_path)
    errors = []

    def write():
        for epoch in range(1, 41):
            writer.append_epochs(_epochs("t1", [epoch]))

    thread = threading.Thread(target=write)
    thread.start()
    while thread.is_alive():
        try:
            epochs = list(reader.read_epochs()["epoch"])
            assert epochs == list(range(1, len(epochs) + 1))  # a prefix, never a gap or duplicate
        except Exception as exc:  # collected so the writer thread always finishes
            errors.append(exc)
    thread.join()
    assert not errors
    assert list(reader.read_epochs()["epoch"]) == list(range(1, 41))


def test_tables_are_readable_by_polars_and_duckdb(tmp_path):
    tables = StudyTables(tmp_path)
    tables.upsert_trials([_trial("t1"), _trial("t2", status="failed", error="boom")])
    tables.append_epochs(_epochs("t1", [1, 2]))
    tables.append_epochs(_epochs("t2", [1]))
    trials_path = tmp_path / "tables" / "trials.parquet"
    epochs_glob = str(tmp_path / "tables" / "epochs" / "*.parquet")

    polars_trials = pl.read_parquet(trials_path)
    assert polars_trials.height == 2 and polars_trials["started_at"].dtype.time_zone == "UTC"
    assert pl.read_parquet(epochs_glob).height == 3

    con = duckdb.connect()
    failed = con.execute(f"select trial_id, error from '{trials_path}' where status = 'failed'").fetchall()
    assert failed == [("t2", "boom")]
    assert con.execute(f"select count(*) from '{epochs_glob}'").fetchone()[0] == 3
    con.close()


def test_summarize_metrics_follows_goals_and_reports_every_metric():
    rows = [{"epoch": 1, "loss": 4.0, "knn_top1": 0.3},
            {"epoch": 3, "loss": float("nan"), "knn_top1": None},
            {"epoch": 2, "loss": 3.0, "knn_top1": 0.5}]
    summary = summarize_metrics(rows)
    assert sorted(summary) == sorted(c for c in DESIGN_TRIAL_COLUMNS if c.startswith(("best.", "last.")))
    assert summary["best.loss"] == 3.0
    assert math.isnan(summary["last.loss"])  # the diverged epoch is the last one
    assert summary["best.knn_top1"] == 0.5 and summary["last.knn_top1"] == 0.5
    assert summary["best.epoch"] == 3.0
    assert summary["best.linear_r2"] is None and summary["last.linear_r2"] is None


def test_summarize_metrics_accepts_the_epochs_frame(tmp_path):
    tables = StudyTables(tmp_path)
    tables.append_epochs(_epochs("t1", [1, 2, 3]))
    summary = summarize_metrics(tables.read_epochs())
    assert summary["best.loss"] == 2.0 and summary["last.knn_top1"] == pytest.approx(0.53)
    assert summary["last.lr"] is None


def test_flatten_params_joins_nested_keys_and_sorts_augmentations():
    flat = flatten_params({"augmentations": ["flip", "crop"], "head": {"dims": [512, 128]}, "lr": 1.0})
    assert flat == {"param.augmentations": "crop,flip", "param.head.dims": "512,128", "param.lr": 1.0}


def test_statuses_are_the_design_ones():
    assert STATUSES == ("running", "completed", "early_stopped", "diverged", "failed")


def test_a_writer_sees_rows_another_writer_added_since_its_last_write(tmp_path):
    first, second = StudyTables(tmp_path), StudyTables(tmp_path)
    first.upsert_trials([_trial("t1")])
    second.upsert_trials([_trial("t2")])
    first.upsert_trials([_trial("t3")])  # its own copy of the file is stale: it must read again
    assert sorted(StudyTables(tmp_path).read_trials()["trial_id"]) == ["t1", "t2", "t3"]


def test_outside_readers_get_each_epoch_once_through_read_epochs_or_the_documented_sql(tmp_path):
    tables = StudyTables(tmp_path)
    tables.append_epochs(_epochs("t1", [1, 2, 3], knn=0.1) + _epochs("t2", [1], knn=0.2))
    tables.append_epochs(_epochs("t1", [2, 3, 4], knn=0.5))  # a resume replays epochs 2 and 3
    tables.append_epochs(_epochs("t1", [4], knn=0.7) + _epochs("t1", [4], knn=0.8))  # twice in one part
    epochs_dir = tmp_path / "tables" / "epochs"
    con = duckdb.connect()
    raw = con.execute(f"select count(*) from '{epochs_dir}/*.parquet'").fetchone()[0]
    assert raw == 4 + 3 + 2  # the part files hold every copy
    frame = read_epochs(tmp_path)
    assert list(zip(frame["trial_id"], frame["epoch"])) == [("t1", 1), ("t1", 2), ("t1", 3), ("t1", 4), ("t2", 1)]
    assert list(frame["knn_top1"]) == pytest.approx([0.11, 0.52, 0.53, 0.84, 0.21])
    deduped = con.execute(DEDUPED_EPOCHS_SQL.format(epochs_dir=epochs_dir)).df()
    con.close()
    assert list(deduped.columns) == list(frame.columns) and deduped["trial_id"].tolist() == frame["trial_id"].tolist()
    numbers = frame.columns[1:]
    np.testing.assert_array_equal(deduped[numbers].to_numpy(float), frame[numbers].to_numpy(float))  # NaN == NaN
