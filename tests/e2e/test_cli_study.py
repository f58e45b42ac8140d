"""The CLI runs a small study end to end on a real local Ray: tables, statuses, report."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

SMALL_STUDY = {
    "name": "e2e-small",
    "metric": {"name": "knn_top1", "goal": "maximize"},
    "method": "tpe",
    "trials": 2,
    "seeds": 2,
    "sampler_seed": 3,
    "max_concurrent": 2,
    "resources": {"cpu": 1, "gpu": 0},
    "early_stopping": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
    "baselines": ["random_init", "pca"],
    "embeddings": 60,
    "fixed": {"dataset": "shapes", "dataset_size": 512, "backbone": "convnet", "epochs": 2,
              "batch_size": 128, "optimizer": "adam", "lr": 0.002, "eval_every": 1, "crop.min_scale": 0.3},
    "parameters": {
        "temperature": {"distribution": "log_uniform", "min": 0.1, "max": 1.0},
        "augmentations": {"subset_of": ["crop", "color_jitter", "flip"], "min_size": 1},
        "color_jitter.strength": {"values": [0.25, 0.5]},  # a per-augmentation parameter
    },
}

TERMINAL = {"completed", "early_stopped", "diverged", "failed"}


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    space = tmp / "small.yaml"
    space.write_text(yaml.safe_dump(SMALL_STUDY, sort_keys=False))
    env = {**os.environ, "RAY_ADDRESS": ""}
    # The installed console script, as a user runs it (the other CLI tests use `python -m`).
    script = Path(sys.executable).with_name("simclr-sweep")
    assert script.exists(), f"{script}: the package's console script is not installed"
    proc = subprocess.run(
        [str(script), "run", str(space), "--storage", str(tmp / "studies")],
        capture_output=True, text=True, cwd=tmp, env=env, timeout=600,
    )
    return proc, tmp / "studies" / "e2e-small"


def test_run_exits_zero_and_prints_the_report_path(finished_study):
    proc, study_dir = finished_study
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"report: {study_dir / 'report' / 'index.html'}" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_progress_lines_show_trials_running_at_once_and_the_best(finished_study):
    proc, study_dir = finished_study
    trials = pd.read_parquet(study_dir / "tables" / "trials.parquet")
    lines = re.findall(r"^\[\d\d:\d\d\] (\d+)/4 done \| (.*?) \| best knn_top1 (\S+)(?: \((\S+)\))?$",
                       proc.stdout, re.M)
    assert lines, proc.stdout
    assert any("2 running" in status for _, status, _, _ in lines), "max_concurrent 2: two trials at once"
    done, _, best, best_trial = lines[-1]
    assert done == "4"
    top = trials.loc[trials["best.knn_top1"].idxmax()]
    assert (best, best_trial) == (f"{top['best.knn_top1']:.4f}", top["trial_id"])


def test_one_row_per_trial_each_terminal(finished_study):
    _, study_dir = finished_study
    trials = pd.read_parquet(study_dir / "tables" / "trials.parquet")
    assert len(trials) == 4
    assert trials["trial_id"].is_unique
    assert set(trials["status"]) <= TERMINAL
    assert (trials["status"] != "failed").all(), trials[["trial_id", "error"]]
    for column in ("config_id", "seed", "param.temperature", "param.augmentations", "param.dataset",
                   "param.color_jitter.strength", "param.crop.min_scale",
                   "best.knn_top1", "last.loss", "epochs_run", "wall_s", "gpu_s", "started_at", "ended_at"):
        assert column in trials.columns
    assert trials["param.augmentations"].map(lambda s: s == ",".join(sorted(s.split(",")))).all()


def test_seeds_repeat_each_configuration_under_one_config_id(finished_study):
    _, study_dir = finished_study
    trials = pd.read_parquet(study_dir / "tables" / "trials.parquet")
    groups = trials.groupby("config_id")
    assert len(groups) == 2
    for _, group in groups:
        assert sorted(group["seed"]) == [0, 1]
        assert group["param.temperature"].nunique() == 1 and group["param.augmentations"].nunique() == 1
        assert group["param.color_jitter.strength"].nunique() == 1
    assert set(trials["param.color_jitter.strength"]) <= {0.25, 0.5}
    assert (trials["param.crop.min_scale"] == 0.3).all()


def test_epoch_rows_unique_and_consistent_with_trials(finished_study):
    _, study_dir = finished_study
    trials = pd.read_parquet(study_dir / "tables" / "trials.parquet")
    epochs = pd.read_parquet(study_dir / "tables" / "epochs")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    per_trial = epochs.groupby("trial_id")["epoch"].max()
    for _, row in trials.iterrows():
        assert per_trial[row["trial_id"]] == row["epochs_run"]
        best = epochs.loc[epochs["trial_id"] == row["trial_id"], "knn_top1"].max()
        assert row["best.knn_top1"] == pytest.approx(best)


def test_study_files_in_place(finished_study):
    _, study_dir = finished_study
    assert yaml.safe_load((study_dir / "study.yaml").read_text())["name"] == "e2e-small"
    assert (study_dir / "optuna.journal").stat().st_size > 0
    assert (study_dir / "tune").is_dir()


def _leaderboard_first_config(page: str) -> str:
    section = page[page.index('<section id="leaderboard">'):]
    first_row = re.search(r"<tbody><tr>(.*?)</tr>", section, re.S).group(1)
    return re.findall(r"<td>(.*?)</td>", first_row, re.S)[1]  # columns: #, config_id, ...


def test_report_ranks_the_best_configuration_first_and_rebuilds_from_tables(finished_study):
    _, study_dir = finished_study
    trials = pd.read_parquet(study_dir / "tables" / "trials.parquet")
    scored = trials[trials["status"] != "failed"]
    means = scored.groupby("config_id")["best.knn_top1"].mean()
    report = study_dir / "report" / "index.html"
    first = _leaderboard_first_config(report.read_text())
    assert means[first] == means.max()  # the best mean (either one of a tie)
    report.unlink()
    proc = subprocess.run([sys.executable, "-m", "simclr_sweep", "report", str(study_dir)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(report)
    assert _leaderboard_first_config(report.read_text()) == first


def test_report_from_a_copy_of_the_tables_alone(finished_study, tmp_path):
    import shutil

    _, study_dir = finished_study
    laptop = tmp_path / "copied"
    shutil.copytree(study_dir / "tables", laptop / "tables")  # no study.yaml, no checkpoints
    proc = subprocess.run([sys.executable, "-m", "simclr_sweep", "report", str(laptop)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(laptop / "report" / "index.html")
    page = (laptop / "report" / "index.html").read_text()
    original = (study_dir / "report" / "index.html").read_text()
    assert _leaderboard_first_config(page) == _leaderboard_first_config(original)
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "simclr_sweep", "report", str(empty)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr == (
        f"error: {empty}: not a study directory (no study.yaml, no tables/trials.parquet); "
        "give the folder `simclr-sweep run` created\n")


def test_the_reports_best_configuration_is_a_config_the_trainer_takes(finished_study):
    import html
    import re

    from trainers import TrainConfig

    _, study_dir = finished_study
    page = (study_dir / "report" / "index.html").read_text()
    config = yaml.safe_load(html.unescape(re.search(r'<pre class="config">(.*?)</pre>', page, re.S).group(1)))
    cfg = TrainConfig.from_dict(config)  # `simclr-sweep train best_config.yaml` takes it as is
    assert cfg.augmentation_params["color_jitter.strength"] in (0.25, 0.5)
    assert cfg.augmentation_params["crop.min_scale"] == 0.3


def test_baselines_and_embeddings_are_in_the_tables_and_the_report(finished_study):
    import numpy as np

    from study_files.tables import StudyTables

    proc, study_dir = finished_study
    tables = StudyTables(study_dir)
    baselines = tables.read_baselines().set_index("baseline")
    assert list(baselines.index) == ["random_init", "pca"]
    assert baselines[["knn_top1", "linear_top1"]].notna().all().all() and baselines["linear_r2"].isna().all()
    assert "baselines: random_init knn_top1" in proc.stdout
    trials = tables.read_trials()
    scored = trials[trials["status"] != "failed"]
    top_config = scored.groupby("config_id")["best.knn_top1"].mean().idxmax()  # best = best mean over seeds
    best = scored.loc[scored.loc[scored["config_id"] == top_config, "best.knn_top1"].idxmax(), "trial_id"]
    arrays = tables.read_embeddings()
    assert str(arrays["trial_id"]) == best
    assert arrays["tsne_h"].shape == arrays["tsne_z"].shape == (60, 2)
    assert list(arrays["target_names"][:2]) and np.issubdtype(arrays["labels"].dtype, np.integer)
    page = (study_dir / "report" / "index.html").read_text()
    assert '<section id="baselines">' in page and '<section id="embeddings">' in page
    assert "against the random-init encoder" in page
