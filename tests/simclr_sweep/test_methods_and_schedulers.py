"""Every sampler and every scheduler runs a tiny study end to end on a real local Ray.

The trials report a few epochs without training (the samplers and schedulers are the subject
here; tests/e2e trains real models)."""
import io
import sys

import pandas as pd
import pytest
import ray
from ray import cloudpickle, tune

from simclr_sweep.runner import finish, prepare_study_dir, run_trials, study_trainable
from simclr_sweep.study import parse_study

EPOCHS = 4


def quick_trial(config, setup=None):
    # The better the temperature, the better every epoch: schedulers have something to rank.
    for epoch in range(1, EPOCHS + 1):
        tune.report({"epoch": float(epoch), "loss": 1.0 / epoch, "knn_top1": config["temperature"] * epoch / EPOCHS})


def run_study(study, storage, stream):
    """`runner.run_study` with quick_trial in place of SimCLR's trial (Ray is up already)."""
    study_dir = prepare_study_dir(study, storage)
    return finish(study_dir, run_trials(study, study_dir, study_trainable(study, study_dir, quick_trial), stream))


@pytest.fixture(scope="module")
def local_ray():
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the tests
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.mark.parametrize("method, scheduler", [
    ("tpe", "asha"), ("random", "hyperband"), ("grid", "median"), ("cmaes", "none"), ("gp", "asha"), ("qmc", "none"),
])
def test_tiny_study_finishes_with_every_trial_recorded(local_ray, tmp_path, method, scheduler):
    parameters = ({"temperature": {"values": [0.1, 0.4, 0.9]}} if method == "grid"
                  else {"temperature": {"distribution": "log_uniform", "min": 0.05, "max": 1.0},
                        "lr": {"distribution": "uniform", "min": 0.001, "max": 0.01}})
    study = parse_study({
        "name": f"{method}-{scheduler}", "metric": {"name": "knn_top1", "goal": "maximize"},
        "method": method, **({} if method == "grid" else {"trials": 3}), "sampler_seed": 0,
        "max_concurrent": 2, "resources": {"cpu": 1},
        "early_stopping": {"type": scheduler, "grace_period": 1, "reduction_factor": 2},
        "fixed": {"epochs": EPOCHS}, "parameters": parameters,
    })
    outcome = run_study(study, tmp_path, stream=io.StringIO())
    trials = pd.read_parquet(outcome.study_dir / "tables" / "trials.parquet")
    assert len(trials) == 3 and trials["trial_id"].is_unique
    assert set(trials["status"]) <= {"completed", "early_stopped"}
    assert (trials["status"] == "completed").any()
    if method == "grid":
        assert sorted(trials["param.temperature"]) == [0.1, 0.4, 0.9]
    assert outcome.report.is_file()


@pytest.mark.parametrize("scheduler", ["asha", "median", "none"])
def test_a_scheduler_stops_trials_worse_than_those_before_them(local_ray, tmp_path, scheduler):
    # One trial at a time, each reporting temperature * epoch / EPOCHS: whether a trial is stopped
    # depends only on the trials before it, so the outcome is known for the sampler's (seeded) order.
    study = parse_study({
        "name": f"stops-{scheduler}", "metric": {"name": "knn_top1", "goal": "maximize"},
        "method": "random", "trials": 6, "sampler_seed": 0, "max_concurrent": 1, "resources": {"cpu": 1},
        "early_stopping": {"type": scheduler, "grace_period": 1, "reduction_factor": 2},
        "fixed": {"epochs": EPOCHS}, "parameters": {"temperature": {"distribution": "uniform", "min": 0.05, "max": 1.0}},
    })
    outcome = run_study(study, tmp_path, stream=io.StringIO())
    trials = pd.read_parquet(outcome.study_dir / "tables" / "trials.parquet").sort_values("started_at")
    stopped = trials[trials["status"] == "early_stopped"]
    best = trials.loc[trials["param.temperature"].idxmax()]
    assert best["status"] == "completed" and best["epochs_run"] == EPOCHS
    if scheduler == "none":
        assert stopped.empty and (trials["epochs_run"] == EPOCHS).all()
        return
    assert not stopped.empty, trials[["param.temperature", "status", "epochs_run"]]
    assert (stopped["epochs_run"] < EPOCHS).all()
    first = trials.iloc[0]
    assert first["status"] == "completed"  # nothing to compare the first trial with
    for _, trial in stopped.iterrows():  # only a trial worse than one before it is stopped
        earlier = trials[trials["started_at"] < trial["started_at"]]
        assert (earlier["param.temperature"] > trial["param.temperature"]).any()
