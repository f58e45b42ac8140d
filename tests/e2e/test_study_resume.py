"""A study whose driver is SIGKILLed mid-way and then resumed ends as if it had never stopped."""
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import psutil
import pytest
import yaml
from PIL import Image

from processes import kill_tree
from study_files.tables import StudyTables
from trainers.data import shapes
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

GRID = {
    "name": "resume-grid",
    "metric": {"name": "knn_top1", "goal": "maximize"},
    "method": "grid",
    "max_concurrent": 2,
    "resources": {"cpu": 1},
    # data_root and data_cache are set by the fixture: a JPEG folder read through the mapped cache.
    "fixed": {"dataset": "image_folder", "image_size": 32, "dataset_size": 448, "backbone": "convnet", "epochs": 4,
              "batch_size": 64, "optimizer": "adam", "lr": 0.002, "eval_every": 1},
    "parameters": {
        "temperature": {"values": [0.2, 0.5]},
        "augmentations": {"values": ["crop", "color_jitter", "color_jitter,crop"]},
    },
}
TERMINAL = {"completed", "early_stopped", "diverged", "failed"}
# Shapes written as JPEGs, a folder per class: the seeded split keeps 480 to train (capped to 448), 120 to test.
FOLDER_IMAGES = 600


def _jpeg_folder(root: Path) -> Path:
    """The quickstart's generated shapes as a class-per-folder set of 32 px JPEGs."""
    images, labels = shapes.generate(FOLDER_IMAGES, seed=0, stream=0)
    for i, (image, label) in enumerate(zip(images, labels.tolist())):
        folder = root / shapes.CLASS_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i}.jpg", quality=95)
    return root


def _trials(study_dir: Path) -> pd.DataFrame:
    if not (study_dir / "tables" / "trials.parquet").exists():
        return pd.DataFrame(columns=["trial_id", "status", "epochs_run"])
    return StudyTables(study_dir).read_trials()  # safe while the study writes


def _epochs_seen(study_dir: Path) -> pd.Series:
    """Epochs recorded per trial so far (the epochs table is written at every epoch)."""
    try:
        epochs = pd.read_parquet(study_dir / "tables" / "epochs")
    except (FileNotFoundError, OSError, ValueError):
        return pd.Series(dtype=int)
    return epochs.groupby("trial_id")["epoch"].nunique() if len(epochs) else pd.Series(dtype=int)


@pytest.fixture(scope="module")
def interrupted_then_resumed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    space = tmp / "grid.yaml"
    fixed = {**GRID["fixed"], "data_root": str(_jpeg_folder(tmp / "shapes-jpeg")), "data_cache": str(tmp / "cache")}
    space.write_text(yaml.safe_dump({**GRID, "fixed": fixed}))
    study_dir = tmp / "studies" / "resume-grid"
    env = {**os.environ, "RAY_ADDRESS": ""}
    run = subprocess.Popen([sys.executable, "-m", "simclr_sweep", "run", str(space), "--storage", str(tmp / "studies")],
                           cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            t = _trials(study_dir)
            seen = _epochs_seen(study_dir)
            half = [tid for tid in t.loc[t["status"] == "running", "trial_id"] if 1 <= seen.get(tid, 0) < 4]
            if (t["status"].isin(TERMINAL)).sum() >= 1 and half:
                break
            assert run.poll() is None, run.stdout.read().decode()
            time.sleep(0.2)
        else:
            pytest.fail("the study never reached a state with a finished and a half-trained trial")
    finally:
        kill_tree(run)
    # As if the kill came in the middle of an Optuna record (resume cuts it; Optuna could not write after it).
    with open(study_dir / "optuna.journal", "ab") as journal:
        journal.write(b'{"op_code":6,"worker_id":"killed","trial_id":')
    before = _trials(study_dir)
    before["epochs_run"] = [int(_epochs_seen(study_dir).get(tid, 0)) for tid in before["trial_id"]]
    resumed = subprocess.run([sys.executable, "-m", "simclr_sweep", "resume", str(study_dir)],
                             cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    return before, resumed, study_dir


def test_the_trials_read_the_folder_through_one_mapped_cache(interrupted_then_resumed):
    _, _, study_dir = interrupted_then_resumed
    cache_files = list((study_dir.parents[1] / "cache").glob("*.u8"))
    assert len(cache_files) == 1 and cache_files[0].stat().st_size == FOLDER_IMAGES * 3 * 32 * 32


def test_resume_exits_zero(interrupted_then_resumed):
    _, resumed, study_dir = interrupted_then_resumed
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"report: {study_dir / 'report' / 'index.html'}" in resumed.stdout


def test_resume_cut_the_half_written_journal_record(interrupted_then_resumed):
    _, resumed, _ = interrupted_then_resumed
    assert "optuna.journal: cut a last record the interruption left half-written" in resumed.stdout


def test_every_grid_configuration_exactly_once_all_terminal(interrupted_then_resumed):
    _, _, study_dir = interrupted_then_resumed
    after = _trials(study_dir)
    assert len(after) == 6
    assert after["trial_id"].is_unique
    assert set(after["status"]) <= TERMINAL
    seen = sorted(zip(after["param.temperature"], after["param.augmentations"]))
    grid = sorted(itertools.product([0.2, 0.5], ["crop", "color_jitter", "color_jitter,crop"]))
    assert seen == grid  # what an uninterrupted grid study runs (tests/simclr_sweep/test_search.py)


def test_finished_trials_keep_their_rows_and_interrupted_ones_keep_their_ids(interrupted_then_resumed):
    before, _, study_dir = interrupted_then_resumed
    after = _trials(study_dir).set_index("trial_id")
    for _, row in before.iterrows():
        assert row["trial_id"] in after.index
        if row["status"] in TERMINAL:
            assert after.loc[row["trial_id"], "ended_at"] == row["ended_at"]  # not run again
        else:
            assert after.loc[row["trial_id"], "status"] in TERMINAL
            assert after.loc[row["trial_id"], "epochs_run"] == 4


def test_interrupted_trial_continued_from_its_checkpoint(interrupted_then_resumed):
    before, _, study_dir = interrupted_then_resumed
    half = before[(before["status"] == "running") & (before["epochs_run"] >= 1)]
    for _, row in half.iterrows():
        resumed_dir = study_dir / "tune-resume-1" / f"trial-{row['trial_id']}"
        reports = max(int(p.name.split("_")[-1]) for p in resumed_dir.glob("checkpoint_*")) + 1
        # Only the epochs after its last checkpoint were trained again.
        assert reports <= 4 - int(row["epochs_run"]) + 1


def test_epoch_rows_unique_and_complete(interrupted_then_resumed):
    _, _, study_dir = interrupted_then_resumed
    epochs = pd.read_parquet(study_dir / "tables" / "epochs")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    trials = _trials(study_dir)
    for _, row in trials.iterrows():
        got = sorted(epochs.loc[epochs["trial_id"] == row["trial_id"], "epoch"].astype(int))
        assert got == list(range(1, int(row["epochs_run"]) + 1))


def test_optuna_learned_each_configuration_once(interrupted_then_resumed):
    _, _, study_dir = interrupted_then_resumed
    study = optuna.load_study(study_name="resume-grid",
                              storage=JournalStorage(JournalFileBackend(str(study_dir / "optuna.journal"))))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert sorted((t.params["temperature"], t.params["augmentations"]) for t in complete) == sorted(
        itertools.product([0.2, 0.5], ["crop", "color_jitter", "color_jitter,crop"]))


def test_no_ray_process_left_behind(interrupted_then_resumed):
    _, _, study_dir = interrupted_then_resumed
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if any(str(study_dir) in part for part in (p.info["cmdline"] or []))]
    assert leftovers == []


def test_status_after_resume(interrupted_then_resumed):
    _, _, study_dir = interrupted_then_resumed
    out = subprocess.run([sys.executable, "-m", "simclr_sweep", "status", str(study_dir)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "trials: 6 completed" in out.stdout
    assert "best knn_top1: " in out.stdout
