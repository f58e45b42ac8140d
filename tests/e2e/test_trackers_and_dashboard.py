"""The tools researchers open a study with. One tiny study with `loggers: [tensorboard, mlflow, wandb]`
logs every trial to each tracker, read back with the trackers' own readers (W&B offline, no network),
and the real optuna-dashboard serves its Optuna journal over HTTP on localhost."""
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]

# Written as text: `lr: 1e-3` is what YAML 1.1 reads as a string and every ML config writes.
TINY_STUDY = """\
name: tiny-loggers
metric: knn_top1
method: random
trials: 2
max_concurrent: 2
sampler_seed: 0
resources: {cpu: 1}
loggers: [tensorboard, mlflow, wandb]
fixed: {dataset: shapes, dataset_size: 256, backbone: convnet, epochs: 1, batch_size: 64, optimizer: adam, lr: 1e-3}
parameters:
  temperature: {values: [0.2, 0.5]}
"""

TRACKER_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "WANDB_DIR",
                     "WANDB_PROJECT", "WANDB_PROJECT_NAME", "WANDB_API_KEY")


@pytest.fixture(scope="module")
def logged_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loggers")
    (tmp / "tiny.yaml").write_text(TINY_STUDY)
    env = {k: v for k, v in os.environ.items() if k not in TRACKER_VARIABLES}
    env.update(RAY_ADDRESS="", WANDB_MODE="offline", WANDB_SILENT="true", WANDB_CONFIG_DIR=str(tmp / "wandb-config"),
               WANDB_CACHE_DIR=str(tmp / "wandb-cache"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "simclr_sweep", "run", "tiny.yaml", "--storage", "studies"],
                          capture_output=True, text=True, cwd=tmp, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A local run says where Ray's dashboard is, or, without ray[default], how to get it.
    assert re.search(r"^ray dashboard: (http://127\.0\.0\.1:\d+|not installed; pip install 'simclr-sweep\[dashboard\]' "
                     r"\(or run with --no-dashboard\))$", proc.stdout, re.M), proc.stdout
    study_dir = tmp / "studies" / "tiny-loggers"
    epochs = pd.read_parquet(study_dir / "tables" / "epochs")
    assert len(epochs) == 2 and set(epochs["epoch"]) == {1}
    return study_dir, epochs.set_index("trial_id")


def test_the_tables_read_lr_1e_3_as_0_001(logged_study):
    study_dir, _ = logged_study
    trials = pd.read_parquet(study_dir / "tables" / "trials.parquet")
    assert trials["param.lr"].tolist() == [0.001, 0.001]


def test_tensorboard_event_files_hold_each_trials_metrics(logged_study):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    study_dir, epochs = logged_study
    for trial_id, row in epochs.iterrows():
        (events,) = (study_dir / "tune" / f"trial-{trial_id}").glob("events.out.tfevents.*")
        scalars = EventAccumulator(str(events)).Reload()
        for metric in ("knn_top1", "loss", "images_per_s"):
            (point,) = scalars.Scalars(f"ray/tune/{metric}")
            assert point.step == 1 and point.value == pytest.approx(row[metric], rel=1e-6), metric


def test_an_mlflow_file_store_holds_one_run_per_trial(logged_study, monkeypatch):
    import mlflow

    study_dir, epochs = logged_study
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads its file store only when told
    client = mlflow.MlflowClient(tracking_uri=(study_dir / "loggers" / "mlflow").as_uri())
    experiment = client.get_experiment_by_name("tiny-loggers")
    runs = {run.data.tags["trial_name"].rsplit("_", 1)[1]: run for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == set(epochs.index)
    trials = pd.read_parquet(study_dir / "tables" / "trials.parquet").set_index("trial_id")
    for trial_id, run in runs.items():
        assert run.data.metrics["knn_top1"] == pytest.approx(epochs.loc[trial_id, "knn_top1"])
        assert float(run.data.params["temperature"]) == trials.loc[trial_id, "param.temperature"]


def _wandb_records(path: Path):
    """The protobuf records of a W&B run file (``run-<id>.wandb``: a LevelDB-style log of 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, pieces = path.read_bytes(), 7, b""  # 7: the ":W&B" header, magic and version
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a record header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)  # after a 4-byte checksum
        if kind == 0:
            break
        pieces += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            yield record
            pieces = b""


def test_wandb_offline_keeps_one_run_folder_per_trial_with_its_metrics(logged_study):
    study_dir, epochs = logged_study
    folders = {p.name.rsplit("-", 1)[1]: p for p in (study_dir / "loggers" / "wandb" / "wandb").glob("offline-run-*")}
    assert set(folders) == set(epochs.index)
    for trial_id, folder in folders.items():
        history = [{item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
                   for record in _wandb_records(folder / f"run-{trial_id}.wandb") if record.HasField("history")]
        assert [h["knn_top1"] for h in history] == pytest.approx([epochs.loc[trial_id, "knn_top1"]])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str, deadline: float):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except OSError:  # not listening yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_optuna_dashboard_serves_the_studys_journal(logged_study):
    study_dir, epochs = logged_study
    port = _free_port()
    # As the README says: `optuna-dashboard <study>/optuna.journal`.
    server = subprocess.Popen([str(Path(sys.executable).with_name("optuna-dashboard")), str(study_dir / "optuna.journal"),
                               "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        (listed,) = _get_json(f"http://127.0.0.1:{port}/api/studies", deadline)["study_summaries"]
        assert listed["study_name"] == "tiny-loggers" and listed["directions"] == ["maximize"]
        detail = _get_json(f"http://127.0.0.1:{port}/api/studies/{listed['study_id']}", deadline)
        values = sorted(trial["values"][0] for trial in detail["trials"] if trial["state"] == "Complete")
        assert values == pytest.approx(sorted(epochs["knn_top1"]))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
