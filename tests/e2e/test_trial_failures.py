"""A trial that raises, one that diverges and one whose worker dies: the study still finishes,
and each trial ends with the right status and error."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from study_files.tables import StudyTables


def _study(data_root: Path) -> dict:
    return {
        "name": "failures",
        "metric": {"name": "knn_top1", "goal": "maximize"},
        "method": "grid",
        "max_concurrent": 1,  # one trial at a time, so the test knows whose worker it kills
        "max_failures": 0,
        "resources": {"cpu": 1},
        "fixed": {"dataset_size": 512, "backbone": "convnet", "epochs": 4, "batch_size": 64,
                  "optimizer": "sgd", "eval_every": 1, "data_root": str(data_root), "download": False},
        "parameters": {
            "dataset": {"values": ["shapes", "cifar10"]},  # no CIFAR-10 files under data_root: raises
            "lr": {"values": [0.05, 0.06, 1.0e30]},  # 1e30 diverges; 0.06's worker gets killed
        },
    }


def _trials(study_dir: Path) -> pd.DataFrame:
    if not (study_dir / "tables" / "trials.parquet").exists():
        return pd.DataFrame(columns=["trial_id", "status", "epochs_run", "param.dataset", "param.lr"])
    return StudyTables(study_dir).read_trials()  # safe while the study writes


def _epochs_of(study_dir: Path, trial_id: str) -> int:
    try:
        epochs = pd.read_parquet(study_dir / "tables" / "epochs")
    except (FileNotFoundError, OSError, ValueError):
        return 0
    return int((epochs["trial_id"] == trial_id).sum()) if len(epochs) else 0


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("failures")
    (tmp / "empty-data").mkdir()
    space = tmp / "failures.yaml"
    space.write_text(yaml.safe_dump(_study(tmp / "empty-data")))
    study_dir = tmp / "studies" / "failures"
    run = subprocess.Popen([sys.executable, "-m", "simclr_sweep", "run", str(space), "--storage", str(tmp / "studies")],
                           cwd=tmp, env={**os.environ, "RAY_ADDRESS": ""}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    killed = None
    deadline = time.time() + 400
    while run.poll() is None and time.time() < deadline:
        t = _trials(study_dir)
        target = t[(t["param.dataset"] == "shapes") & (t["param.lr"] == 0.06) & (t["status"] == "running")]
        if killed is None and len(target) and _epochs_of(study_dir, target.iloc[0]["trial_id"]) >= 1:
            workers = [p for p in psutil.Process(run.pid).children(recursive=True)
                       if p.name().startswith("ray::ImplicitFunc") or "ImplicitFunc" in " ".join(p.cmdline())]
            assert len(workers) == 1, workers
            workers[0].kill()
            killed = target.iloc[0]["trial_id"]
        time.sleep(0.1)
    output, _ = run.communicate(timeout=120)
    return run.returncode, output, study_dir, killed


def test_study_finishes_despite_failures(finished):
    code, output, study_dir, killed = finished
    assert code == 0, output
    assert killed is not None, "never saw the 0.06 trial running"
    assert "report: " in output


def test_each_trial_has_the_right_status_and_error(finished):
    _, _, study_dir, killed = finished
    t = _trials(study_dir).set_index(["param.dataset", "param.lr"])
    assert len(t) == 6
    for lr in (0.05, 0.06, 1.0e30):
        row = t.loc[("cifar10", lr)]
        assert row["status"] == "failed"
        assert "dataset: cifar10: no CIFAR-10 files under " in row["error"], row["error"]
        assert "\n" not in row["error"]
        assert row["epochs_run"] == 0
    assert t.loc[("shapes", 0.05), "status"] == "completed"
    diverged = t.loc[("shapes", 1.0e30)]
    assert diverged["status"] == "diverged"
    assert diverged["epochs_run"] == 1  # stopped within its first epoch, not after all four
    dead = t.loc[("shapes", 0.06)]
    assert dead["trial_id"] == killed
    assert dead["status"] == "failed"
    assert "died" in dead["error"].lower(), dead["error"]


def test_failures_are_printed_as_one_line_each(finished):
    _, output, _, _ = finished
    assert "Traceback" not in output
    assert sum(1 for line in output.splitlines() if " failed: " in line and line.startswith("trial ")) == 4
