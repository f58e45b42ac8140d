"""What `resume` decides from the tables and the Optuna journal, without running anything."""
from datetime import datetime, timezone

import optuna
import pytest

from study_files.errors import EnvironmentFault
from study_files.tables import StudyTables
from simclr_sweep.resume import plan_resume
from simclr_sweep.runner import open_journal, open_optuna_study
from simclr_sweep.search import define_by_run, make_sampler
from simclr_sweep.study import parse_study
from simclr_sweep.trainable import RESUME_FROM, RESUME_OF, SUGGESTION

T0 = datetime(2026, 11, 25, tzinfo=timezone.utc)


def _row(trial_id, status, temperature, augmentations):
    return {"trial_id": trial_id, "config_id": trial_id, "seed": 0, "status": status,
            "param.temperature": temperature, "param.augmentations": augmentations,
            "last.knn_top1": 0.4 if status == "completed" else None, "epochs_run": 2, "wall_s": 1.0,
            "gpu_s": 0.0, "error": None, "started_at": T0, "ended_at": T0 if status == "completed" else None}


@pytest.fixture
def interrupted_grid(tmp_path):
    study = parse_study({"name": "g", "metric": {"name": "knn_top1", "goal": "maximize"}, "method": "grid",
                         "fixed": {"epochs": 3}, "parameters": {"temperature": {"values": [0.2, 0.5]},
                                                                "augmentations": {"values": ["crop", "flip"]}}})
    optuna_study = open_optuna_study(study, open_journal(tmp_path))
    optuna_study.sampler = make_sampler(study)
    space = define_by_run(study)
    asked = []
    for _ in range(3):  # three suggestions: one finished, one half-trained, one never started
        trial = optuna_study.ask()
        space(trial)
        asked.append(trial)
    done, running, unstarted = asked
    optuna_study.tell(done.number, 0.4)
    StudyTables(tmp_path).upsert_trials([
        _row("done", "completed", done.params["temperature"], done.params["augmentations"]),
        _row("half", "running", running.params["temperature"], running.params["augmentations"]),
    ])
    return study, tmp_path, optuna_study, running, unstarted


def test_plan_continues_the_running_trial_runs_the_unstarted_suggestion_and_fills_up(interrupted_grid):
    study, study_dir, optuna_study, running, unstarted = interrupted_grid
    plan = plan_resume(study, study_dir, optuna_study)
    assert [c.get(RESUME_OF) for c in plan.continued] == ["half", None]
    assert plan.continued[1][SUGGESTION] == unstarted.number
    assert {k: plan.continued[1][k] for k in ("temperature", "augmentations")} == unstarted.params
    assert plan.new_trials == 1  # 4 grid points - 2 in the tables - 1 suggestion still to run
    assert plan.num_samples == 3


def test_plan_fails_no_grid_point_so_the_grid_stays_whole(interrupted_grid):
    study, study_dir, optuna_study, _, _ = interrupted_grid
    plan_resume(study, study_dir, optuna_study)
    states = [t.state for t in optuna_study.get_trials()]
    assert optuna.trial.TrialState.FAIL not in states
    assert states.count(optuna.trial.TrialState.RUNNING) == 2  # told when their runs end


def test_a_checkpoint_cut_short_by_the_kill_is_passed_over(tmp_path):
    import os

    from simclr_sweep.resume import resume_point
    from trainers.training.state import save_checkpoint

    whole = tmp_path / "tune" / "trial-t1" / "checkpoint_000001" / "trainer.pt"
    cut = tmp_path / "tune" / "trial-t1" / "checkpoint_000002" / "trainer.pt"
    for path in (whole, cut):
        path.parent.mkdir(parents=True)
        save_checkpoint(path, {"epoch": 1, "model": {}})
    cut.write_bytes(cut.read_bytes()[:20])  # what a copy interrupted by SIGKILL leaves
    os.utime(whole, (1, 1))  # the whole one is older
    assert resume_point(tmp_path, "t1")[0] == whole
    assert resume_point(tmp_path, "other")[0] is None


def _checkpoint(study_dir, trial_id, epoch, knn, experiment="tune"):
    from trainers.training.state import save_checkpoint

    path = study_dir / experiment / f"trial-{trial_id}" / f"checkpoint_{epoch:06d}" / "trainer.pt"
    path.parent.mkdir(parents=True)
    save_checkpoint(path, {"epoch": epoch, "metrics": {"epoch": float(epoch), "loss": 3.0, "knn_top1": knn}})
    return path


def test_a_checkpoint_one_epoch_ahead_of_the_tables_gives_back_the_epoch_row_they_missed(interrupted_grid):
    # Tune stores the checkpoint before the driver hears of the epoch: a kill in between (seen in CI)
    # left epoch 3 out of the tables while the trial went on from its checkpoint.
    study, study_dir, optuna_study, _, _ = interrupted_grid
    StudyTables(study_dir).append_epochs([{"trial_id": "half", "epoch": e, "loss": 3.0, "knn_top1": 0.1 * e}
                                          for e in (1, 2)])
    _checkpoint(study_dir, "half", 2, 0.2)
    ahead = _checkpoint(study_dir, "half", 3, 0.3)
    plan = plan_resume(study, study_dir, optuna_study)
    assert plan.continued[0][RESUME_FROM] == str(ahead)
    assert plan.recovered_epochs == [{"trial_id": "half", "epoch": 3.0, "loss": 3.0, "knn_top1": 0.3}]


def test_a_checkpoint_further_ahead_than_one_epoch_is_passed_over(interrupted_grid):
    study, study_dir, optuna_study, _, _ = interrupted_grid
    StudyTables(study_dir).append_epochs([{"trial_id": "half", "epoch": 1, "loss": 3.0, "knn_top1": 0.1}])
    first = _checkpoint(study_dir, "half", 1, 0.1)
    _checkpoint(study_dir, "half", 3, 0.3, experiment="tune-resume-1")
    plan = plan_resume(study, study_dir, optuna_study)
    assert plan.continued[0][RESUME_FROM] == str(first)
    assert plan.recovered_epochs == []


def test_a_trial_continued_from_its_last_epoch_reports_that_epoch_instead_of_training(tmp_path):
    # The driver died after the trial's last checkpoint but before it heard the trial had finished.
    from simclr_sweep.trainable import _report_if_trained

    last = _checkpoint(tmp_path, "t", 3, 0.42)
    reported = []
    def report(metrics, write_checkpoint):
        write_checkpoint(tmp_path / "copy.pt")
        reported.append(metrics)

    assert _report_if_trained(last, 3, report)
    assert reported == [{"epoch": 3.0, "loss": 3.0, "knn_top1": 0.42}]
    assert (tmp_path / "copy.pt").read_bytes() == last.read_bytes()
    assert not _report_if_trained(last, 4, report)  # epochs left: train them
    assert not _report_if_trained(None, 3, report)
    assert len(reported) == 1


def test_suggestions_cut_short_by_the_kill_are_drawn_to_the_end_on_their_own_grid_points(tmp_path):
    # Optuna journals a suggestion in steps: the trial, then the grid sampler's grid_id, then each
    # parameter. A driver killed in between leaves a RUNNING trial with some of them.
    study = parse_study({"name": "g", "metric": {"name": "knn_top1", "goal": "maximize"}, "method": "grid",
                         "fixed": {"epochs": 3}, "parameters": {"temperature": {"values": [0.2, 0.5]},
                                                                "augmentations": {"values": ["crop", "flip"]}}})
    optuna_study = open_optuna_study(study, open_journal(tmp_path))
    optuna_study.sampler = make_sampler(study)
    storage = optuna_study._storage
    no_grid_id = storage.create_new_trial(optuna_study._study_id)  # killed before the sampler's step
    no_params = optuna_study.ask()  # grid_id written, no parameter yet
    some_params = optuna_study.ask()
    some_params.suggest_categorical("temperature", [0.2, 0.5])  # killed after the first parameter
    assert "grid_id" not in storage.get_trial(no_grid_id).system_attrs and no_params.params == {}

    plan = plan_resume(study, tmp_path, open_optuna_study(study, open_journal(tmp_path)))

    drawn = [{k: c[k] for k in ("temperature", "augmentations")} for c in plan.continued]
    assert len(drawn) == 3 and all(c[SUGGESTION] in (0, 1, 2) for c in plan.continued)
    grid = optuna_study.sampler._all_grids
    names = optuna_study.sampler._param_names
    for number, params in zip((c[SUGGESTION] for c in plan.continued), drawn):
        trial = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(optuna_study._study_id, number))
        assert trial.params == params  # written back to the journal
        assert params == dict(zip(names, grid[trial.system_attrs["grid_id"]]))  # its own grid point
    assert some_params.params["temperature"] == drawn[2]["temperature"]  # what was drawn is kept
    assert plan.new_trials == 1
    last = optuna_study.ask()
    define_by_run(study)(last)
    points = {tuple(sorted(p.items())) for p in [*drawn, last.params]}
    assert len(points) == 4  # the whole grid, nothing twice


def test_a_journal_record_cut_short_by_the_kill_is_cut_so_optuna_can_write_again(tmp_path):
    from simclr_sweep.resume import repair_journal
    from simclr_sweep.journal import journal_path

    study = parse_study({"name": "j", "metric": {"name": "knn_top1", "goal": "maximize"}, "method": "random",
                         "trials": 3, "fixed": {"epochs": 3}, "parameters": {"temperature": {"values": [0.2, 0.5]}}})
    optuna_study = open_optuna_study(study, open_journal(tmp_path))
    trial = optuna_study.ask()
    define_by_run(study)(trial)
    optuna_study.tell(trial.number, 0.4)
    path = journal_path(tmp_path)
    whole = path.read_bytes()
    assert repair_journal(path) == 0 and path.read_bytes() == whole  # an intact journal is left alone
    half = b'{"op_code":6,"worker_id":"w","trial_id":1,"st'
    path.write_bytes(whole + half)

    assert repair_journal(path) == len(half)
    assert path.read_bytes() == whole
    again = open_optuna_study(study, open_journal(tmp_path))  # without the cut, ask() raises here
    trial = again.ask()
    define_by_run(study)(trial)
    again.tell(trial.number, 0.5)
    reread = open_optuna_study(study, open_journal(tmp_path))
    assert [t.value for t in reread.trials] == [0.4, 0.5]


@pytest.mark.parametrize("journal", ["deleted", "emptied"])
def test_a_lost_journal_is_rebuilt_from_the_tables_and_the_grid_runs_each_point_once(tmp_path, journal):
    study = parse_study({"name": "g", "metric": {"name": "knn_top1", "goal": "maximize"}, "method": "grid",
                         "fixed": {"epochs": 3}, "parameters": {"temperature": {"values": [0.2, 0.5]},
                                                                "augmentations": {"values": ["crop", "flip"]}}})
    StudyTables(tmp_path).upsert_trials([_row("a", "completed", 0.2, "crop"), _row("b", "completed", 0.5, "flip")])
    if journal == "emptied":
        (tmp_path / "optuna.journal").write_bytes(b"")
    optuna_study = open_optuna_study(study, open_journal(tmp_path))
    plan = plan_resume(study, tmp_path, optuna_study)
    assert plan.rebuilt == 2 and plan.continued == [] and plan.new_trials == 2
    told = optuna_study.get_trials()
    assert sorted((t.params["temperature"], t.params["augmentations"], t.value) for t in told) == [
        (0.2, "crop", 0.4), (0.5, "flip", 0.4)]
    # The study's searcher asks for the rest: the two points the tables lack, each once.
    optuna_study.sampler = make_sampler(study)
    space = define_by_run(study)
    asked = []
    for _ in range(2):
        trial = optuna_study.ask()
        space(trial)
        asked.append((trial.params["temperature"], trial.params["augmentations"]))
    assert sorted(asked) == [(0.2, "flip"), (0.5, "crop")]
    assert plan_resume(study, tmp_path, optuna_study).rebuilt == 0  # told once, not again


def test_tables_that_lost_what_optuna_saw_finish_are_refused_naming_the_file(tmp_path):
    study = parse_study({"name": "g", "metric": {"name": "knn_top1", "goal": "maximize"}, "method": "grid",
                         "fixed": {"epochs": 3}, "parameters": {"temperature": {"values": [0.2, 0.5]}}})
    optuna_study = open_optuna_study(study, open_journal(tmp_path))
    optuna_study.sampler = make_sampler(study)
    trial = optuna_study.ask()
    define_by_run(study)(trial)
    optuna_study.tell(trial.number, 0.4)
    with pytest.raises(EnvironmentFault, match=r"trials.parquet: lacks 1 trials that optuna.journal holds as finished"):
        plan_resume(study, tmp_path, optuna_study)
