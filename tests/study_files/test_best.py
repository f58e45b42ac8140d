"""One meaning of "best": the configuration with the best mean over its seeds, and its best trial.

The study below has its best single trial (a0, 0.90) in the configuration with the worse mean
(A: 0.90 and 0.50, mean 0.70); the best configuration is B (0.80 and 0.78, mean 0.79), whose best
trial is b0. Status, the report and the analysis (whose trial's checkpoint gives the embeddings and
whose data the baselines) must all name b0.
"""
import datetime as dt
import types

import pandas as pd
import pytest
import yaml

from reports.report import build_report
from reports.sections.baselines import baselines_section
from reports.study_data import load_study
from simclr_sweep.analysis import best_trial_row
from simclr_sweep.status import study_status
from study_files.best import best, configuration_name, ranked_configurations, scored_trials
from study_files.tables import StudyTables

T0 = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
DECLARATION = {"name": "mixed", "metric": {"name": "knn_top1", "goal": "maximize"}, "method": "random",
               "trials": 3, "seeds": 2, "fixed": {"epochs": 2}, "baselines": ["random_init"]}
SCORES = {("a0", "A", 0): 0.90, ("a1", "A", 1): 0.50, ("b0", "B", 0): 0.80, ("b1", "B", 1): 0.78,
          ("c0", "C", 0): 0.95}  # c0 failed: never best, whatever it reached


def _row(trial_id, config_id, seed, score):
    return {"trial_id": trial_id, "config_id": config_id, "seed": seed,
            "status": "failed" if trial_id == "c0" else "completed",
            "param.temperature": {"A": 0.1, "B": 0.5, "C": 0.9}[config_id], "best.knn_top1": score,
            "best.linear_top1": score - 0.1, "epochs_run": 2, "wall_s": 10.0, "gpu_s": 0.0,
            "started_at": T0, "ended_at": T0 + dt.timedelta(seconds=10)}


@pytest.fixture
def study_dir(tmp_path):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(DECLARATION))
    tables = StudyTables(tmp_path)
    tables.upsert_trials([_row(*key, score) for key, score in SCORES.items()])
    tables.write_baselines([{"baseline": "random_init", "knn_top1": 0.3, "linear_top1": 0.2}])
    return tmp_path


def test_best_is_the_best_mean_configuration_and_its_best_trial(study_dir):
    top = best(StudyTables(study_dir).read_trials(), "knn_top1", maximize=True)
    assert (top.config, top.trial_id, top.seeds) == ("B", "b0", 2)
    assert top.mean == pytest.approx(0.79) and top.score == pytest.approx(0.80)


def test_status_report_and_analysis_name_the_same_trial(study_dir):
    status = study_status(study_dir)
    assert "best knn_top1: 0.8000 (trial b0, seed 0, the best configuration B, mean of 2 seeds 0.7900)" in status
    assert "trial a0" not in status

    page = build_report(study_dir).read_text()
    assert "Best configuration: B, knn_top1 0.790 over 2 seeds; its best seed, trial b0, reached 0.800" in page
    assert "--out runs/B" in page

    study = types.SimpleNamespace(metric="knn_top1", mode="max")  # what best_trial_row reads of a Study
    assert best_trial_row(StudyTables(study_dir), study)["trial_id"] == "b0"

    section = baselines_section(load_study(study_dir))
    assert section.finding.startswith("The best trial's knn_top1 is 0.800:")  # b0's, not a0's 0.900
    assert ("The best trial is trial b0 (the best of the 2 seeds of the best configuration, B, best by its mean)"
            in section.note)


def test_minimising_and_trials_without_a_config_id():
    trials = pd.DataFrame({"trial_id": ["x", "y", "z"], "config_id": [None, "K", "K"], "status": ["completed"] * 3,
                           "best.loss": [1.0, 1.5, 0.6]})
    top = best(trials, "loss", maximize=False)
    assert (top.name, top.trial_id, top.mean) == ("(no config_id: x)", "x", 1.0)  # x alone beats K's mean 1.05
    assert configuration_name(ranked_configurations(scored_trials(trials, "loss", False), False)["key"][1]) == "K"
    assert best(trials.assign(status="failed"), "loss", maximize=False) is None
    assert best(trials, "knn_top1", maximize=True) is None  # no trial reported the metric
