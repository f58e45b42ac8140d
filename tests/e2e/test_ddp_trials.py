"""`workers_per_trial: 2` runs each trial as DDP on two Ray Train workers (gloo on the CPU)."""
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

DDP_STUDY = {
    "name": "ddp",
    "metric": {"name": "knn_top1", "goal": "maximize"},
    "method": "random",
    "trials": 1,
    "max_concurrent": 1,
    "workers_per_trial": 2,
    "resources": {"cpu": 1},
    "fixed": {"dataset": "shapes", "dataset_size": 256, "backbone": "convnet", "epochs": 2,
              "batch_size": 64, "optimizer": "adam", "lr": 0.002, "eval_every": 1},
    "parameters": {"temperature": {"values": [0.5]}},
}


@pytest.fixture(scope="module")
def ddp_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    space = tmp / "ddp.yaml"
    space.write_text(yaml.safe_dump(DDP_STUDY))
    proc = subprocess.run([sys.executable, "-m", "simclr_sweep", "run", str(space), "--storage", str(tmp / "studies")],
                          capture_output=True, text=True, cwd=tmp, env={**os.environ, "RAY_ADDRESS": ""}, timeout=600)
    return proc, tmp / "studies" / "ddp"


def test_ddp_trial_completes_and_reports_once_per_epoch(ddp_study):
    proc, study_dir = ddp_study
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = pd.read_parquet(study_dir / "tables" / "trials.parquet")
    assert list(trials["status"]) == ["completed"], trials[["status", "error"]]
    epochs = pd.read_parquet(study_dir / "tables" / "epochs")
    assert sorted(epochs["epoch"].astype(int)) == [1, 2]
    assert epochs["knn_top1"].notna().all() and (epochs["loss"] > 0).all()


def test_ddp_trial_keeps_a_checkpoint_per_epoch_in_tune(ddp_study):
    _, study_dir = ddp_study
    trial_dirs = list((study_dir / "tune").glob("trial-*"))
    assert len(trial_dirs) == 1
    assert sorted(p.name for p in trial_dirs[0].glob("checkpoint_*")) == ["checkpoint_000000", "checkpoint_000001"]
    trial_id = trial_dirs[0].name.removeprefix("trial-")
    assert (study_dir / "train" / f"ddp-{trial_id}").is_dir()  # the Ray Train run the trial launched


def test_batch_not_divisible_by_workers_is_refused(tmp_path):
    bad = {**DDP_STUDY, "fixed": {**DDP_STUDY["fixed"], "batch_size": 65}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run([sys.executable, "-m", "simclr_sweep", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == "error: fixed.batch_size: must be divisible by workers_per_trial 2 (got 65)\n"
