"""simclr_sweep.storage against moto's S3 server: the journal mirror, checkpoint discovery, refused credentials."""
import pytest
import yaml

from reports.tables import StudyFiles
from simclr_sweep import storage
from trainers.checks import ConfigError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMCLR_SWEEP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_locations(cache):
    assert storage.parse_location("studies") == storage.as_location("studies")
    assert storage.parse_location("s3://bucket/studies/") == "s3://bucket/studies"
    assert storage.child("s3://bucket/studies", "demo") == "s3://bucket/studies/demo"
    assert storage.name_of("s3://bucket/studies/demo") == "demo"
    assert storage.journal_path("s3://bucket/studies/demo") == cache / "bucket" / "studies" / "demo" / "optuna.journal"
    with pytest.raises(ConfigError, match=r"^--storage: s3://: names no bucket"):
        storage.parse_location("s3://")


def test_journal_mirror_uploads_changes_and_fetch_keeps_the_longer_local_copy(s3_bucket, cache):
    uri = f"s3://{s3_bucket}/studies/demo"
    mirror = storage.JournalMirror(uri)
    assert mirror.sync() is False  # no journal yet
    mirror.local.parent.mkdir(parents=True)
    mirror.local.write_bytes(b'{"op": 1}\n{"op": 2}\n{"op"')  # a record being appended
    assert mirror.sync() is True
    assert StudyFiles(uri).read_bytes("optuna.journal") == b'{"op": 1}\n{"op": 2}\n'  # whole records only
    assert mirror.sync() is False  # unchanged: no upload

    mirror.local.write_bytes(b'{"op": 1}\n{"op": 2}\n{"op": 3}\n')
    storage.JournalMirror(uri).fetch()  # the local copy extends the remote one: kept
    assert mirror.local.read_bytes().endswith(b'{"op": 3}\n')

    StudyFiles(uri).write_bytes("optuna.journal", b'{"op": 9}\n')  # another machine's journal
    storage.JournalMirror(uri).fetch()
    assert mirror.local.read_bytes() == b'{"op": 9}\n'


def test_checkpoints_of_a_remote_study_are_found_by_uri_and_read_locally(s3_bucket, cache):
    uri = f"s3://{s3_bucket}/studies/demo"
    files = StudyFiles(uri)
    files.write_bytes("tune/trial-t1/checkpoint_000000/trainer.pt", b"one")
    files.write_bytes("tune-resume-1/trial-t1/checkpoint_000001/trainer.pt", b"two")
    files.write_bytes("tune/trial-t2/checkpoint_000000/trainer.pt", b"other trial")
    found = storage.checkpoint_files(uri, "t1", "trainer.pt")
    assert sorted(ref for ref, _, _ in found) == [f"{uri}/tune-resume-1/trial-t1/checkpoint_000001/trainer.pt",
                                                 f"{uri}/tune/trial-t1/checkpoint_000000/trainer.pt"]
    assert sorted(local.read_bytes() for _, local, _ in found) == [b"one", b"two"]
    assert all(str(local).startswith(str(cache)) for _, local, _ in found)
    assert storage.fetch_file(found[0][0], cache / "x" / "trainer.pt").read_bytes() in (b"one", b"two")
    from simclr_sweep.resume import next_experiment_name

    assert next_experiment_name(uri) == "tune-resume-2"


def test_refused_credentials_are_one_line_naming_storage(s3_bucket, tmp_path, monkeypatch, capsys):
    from moto import settings

    from simclr_sweep.cli import main

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server now checks credentials
    space = tmp_path / "s.yaml"
    space.write_text(yaml.safe_dump({
        "name": "denied", "metric": {"name": "knn_top1", "goal": "maximize"}, "method": "random", "trials": 1,
        "fixed": {"dataset": "shapes", "backbone": "convnet", "epochs": 1},
        "parameters": {"temperature": {"values": [0.5]}}}))
    assert main(["run", str(space), "--storage", f"s3://{s3_bucket}/studies"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --storage: s3://{s3_bucket}/studies: access denied; set AWS credentials that "
                          "may read and write it (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"), err
    assert err.count("\n") == 1
