"""StudyTables on an s3:// study (moto's S3 server): the same rows as on a local folder."""
import datetime as dt
import math

import pyarrow.parquet as pq
import pytest

from reports.report import build_report
from study_files.locations import StudyFiles, is_remote, remote_filesystem
from study_files.tables import StudyTables

T0 = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def _trial(trial_id, **extra):
    row = {"trial_id": trial_id, "config_id": "c1", "seed": 0, "status": "completed",
           "param.temperature": 0.5, "param.augmentations": ["crop", "color_jitter"],
           "best.knn_top1": 0.7, "epochs_run": 3, "wall_s": 12.5, "gpu_s": 0.0,
           "error": None, "started_at": T0, "ended_at": T0 + dt.timedelta(seconds=12)}
    row.update(extra)
    return row


def _objects(uri):
    from pyarrow import fs as pafs

    files = StudyFiles(uri)
    infos = files.filesystem.get_file_info(pafs.FileSelector(files.fs_path(), recursive=True, allow_not_found=True))
    return sorted(i.path[len(files.fs_path()) + 1:] for i in infos if i.type == pafs.FileType.File)


def test_locations_tell_uris_from_paths():
    from pathlib import Path

    assert is_remote("s3://bucket/prefix") and is_remote("gs://bucket")
    assert not is_remote("studies") and not is_remote(Path("s3://bucket")) and not is_remote("file:///tmp/x")
    with pytest.raises(ValueError, match="names a bucket"):
        remote_filesystem("s3://")


def test_trials_round_trip_on_s3(s3_bucket):
    uri = f"s3://{s3_bucket}/studies/demo"
    tables = StudyTables(uri)
    assert tables.read_trials().empty
    tables.upsert_trials([_trial("t1", status="running"), _trial("t2")])
    tables.upsert_trials([_trial("t1", status="completed", **{"best.knn_top1": 0.9})])
    tables.upsert_trials([_trial("t1", status="completed", **{"best.knn_top1": 0.9})])

    frame = StudyTables(uri).read_trials().set_index("trial_id")  # a second reader sees the same rows
    assert list(frame.index) == ["t2", "t1"]
    assert frame.loc["t1", "status"] == "completed" and frame.loc["t1", "best.knn_top1"] == 0.9
    assert frame.loc["t2", "param.augmentations"] == "color_jitter,crop"
    assert frame.loc["t2", "started_at"] == T0
    assert math.isnan(frame.loc["t2", "last.knn_top1"])
    # One object, written directly: no temporaries left beside it.
    assert _objects(uri) == ["tables/trials.parquet"]
    files = StudyFiles(uri)
    schema = pq.read_schema(files.filesystem.open_input_file(files.fs_path("tables/trials.parquet")))
    assert str(schema.field("param.temperature").type) == "double"


def test_a_second_writer_is_seen_by_the_first(s3_bucket):
    uri = f"s3://{s3_bucket}/studies/demo"
    first, second = StudyTables(uri), StudyTables(uri)
    first.upsert_trials([_trial("t1")])
    second.upsert_trials([_trial("t2")])  # another process rewrites the file meanwhile
    first.upsert_trials([_trial("t3")])
    assert sorted(StudyTables(uri).read_trials()["trial_id"]) == ["t1", "t2", "t3"]


def test_epochs_append_read_and_compact_on_s3(s3_bucket):
    uri = f"s3://{s3_bucket}/studies/demo"
    tables = StudyTables(uri, auto_compact_parts=4)
    first = tables.append_epochs([{"trial_id": "t1", "epoch": 1, "loss": 5.0, "knn_top1": 0.2}])
    assert isinstance(first, str) and first.startswith(f"{uri}/tables/epochs/part-")
    tables.append_epochs([{"trial_id": "t1", "epoch": 2, "loss": 4.0, "knn_top1": 0.3},
                          {"trial_id": "t2", "epoch": 1, "loss": 6.0}])
    tables.append_epochs([{"trial_id": "t1", "epoch": 2, "loss": 3.5, "knn_top1": 0.35}])  # replaces epoch 2
    assert tables.append_epochs([]) is None

    epochs = StudyTables(uri).read_epochs()
    assert list(zip(epochs["trial_id"], epochs["epoch"])) == [("t1", 1), ("t1", 2), ("t2", 1)]
    assert epochs.loc[1, "loss"] == 3.5 and epochs.loc[1, "knn_top1"] == 0.35
    assert len(_objects(uri)) == 3

    assert tables.compact_epochs() == 3
    assert _objects(uri) == [p for p in _objects(uri) if p.endswith("-compacted.parquet")]
    assert StudyTables(uri).read_epochs().equals(epochs)

    for epoch in range(3, 9):  # past auto_compact_parts an append compacts by itself
        tables.append_epochs([{"trial_id": "t3", "epoch": epoch, "loss": 1.0}])
    assert len(_objects(uri)) <= 5
    assert len(StudyTables(uri).read_epochs()) == 3 + 6


def test_run_time_on_s3(s3_bucket):
    uri = f"s3://{s3_bucket}/studies/demo"
    tables = StudyTables(uri)
    assert tables.read_run_time() == 0.0
    tables.write_run_time(12.5)
    tables.write_run_time(30.25)
    assert StudyTables(uri).read_run_time() == 30.25
    assert _objects(uri) == ["tables/run_time.json"]


def test_report_is_written_to_s3(s3_bucket):
    uri = f"s3://{s3_bucket}/studies/demo"
    files = StudyFiles(uri)
    files.write_text("study.yaml", "name: demo\nmetric: {name: knn_top1, goal: maximize}\nmethod: tpe\ntrials: 2\n")
    tables = StudyTables(uri)
    tables.upsert_trials([_trial("t1"), _trial("t2", **{"param.temperature": 0.2, "best.knn_top1": 0.5})])
    tables.append_epochs([{"trial_id": t, "epoch": 1, "knn_top1": 0.5} for t in ("t1", "t2")])
    target = build_report(uri)
    assert target == f"{uri}/report/index.html"
    page = files.read_text("report/index.html")
    assert "<html" in page.lower() and "demo" in page
