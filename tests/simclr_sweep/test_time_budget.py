"""A study's `time_budget` spans its sessions: a resume runs only for what is left of it."""
import io
import json
from datetime import datetime, timezone

from study_files.tables import StudyTables
from simclr_sweep.recording import TableRecorder
from simclr_sweep.runner import open_journal, open_optuna_study, prepare_study_dir, resume_study, trial_setup
from simclr_sweep.study import parse_study

T0 = datetime(2026, 11, 25, tzinfo=timezone.utc)
DECLARATION = {"name": "budget", "metric": {"name": "knn_top1", "goal": "maximize"}, "method": "random",
               "trials": 4, "time_budget": 60, "fixed": {"epochs": 3},
               "parameters": {"temperature": {"values": [0.2, 0.5]}}}


def _row(trial_id, status):
    return {"trial_id": trial_id, "config_id": trial_id, "seed": 0, "status": status, "param.temperature": 0.2,
            "epochs_run": 1, "wall_s": 30.0, "gpu_s": 0.0, "error": None, "started_at": T0,
            "ended_at": T0 if status != "running" else None}


def test_the_recorder_adds_this_session_to_the_time_earlier_sessions_ran(tmp_path):
    study = parse_study(DECLARATION)
    tables = StudyTables(tmp_path)
    tables.write_run_time(50.0)
    recorder = TableRecorder(study, tmp_path, trial_setup(study, tmp_path))
    recorder.setup()
    assert 50.0 <= recorder.run_time() < 55.0
    recorder.on_experiment_end(trials=[])
    assert 50.0 <= tables.read_run_time() < 55.0
    assert json.loads((tmp_path / "tables" / "run_time.json").read_text())["run_s"] == tables.read_run_time()


def test_a_resume_with_the_budget_spent_runs_nothing_and_ends_the_interrupted_trials(tmp_path):
    study = parse_study(DECLARATION)
    study_dir = prepare_study_dir(study, tmp_path)
    open_optuna_study(study, open_journal(study_dir))
    tables = StudyTables(study_dir)
    tables.upsert_trials([_row("done", "completed"), _row("half", "running")])
    tables.write_run_time(61.0)
    out = io.StringIO()
    outcome = resume_study(study_dir, stream=out)  # starts no Ray: nothing is left to run
    assert "time_budget spent (61 s of 60 s): nothing more is run; interrupted trials end early_stopped" in out.getvalue()
    after = tables.read_trials().set_index("trial_id")
    assert after.loc["half", "status"] == "early_stopped"
    assert after.loc["done", "status"] == "completed"
    assert after.loc["done", "ended_at"] == T0
    assert outcome.report.exists()
