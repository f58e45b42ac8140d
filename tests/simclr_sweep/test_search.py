"""The study's parameters become Optuna's define-by-run space and the sampler its method names."""
import itertools

import optuna
import pytest

from simclr_sweep.search import define_by_run, make_sampler
from simclr_sweep.study import Parameter, parse_study

BASE = {
    "name": "s",
    "metric": {"name": "knn_top1", "goal": "maximize"},
    "trials": 40,
    "fixed": {"epochs": 2},
}


def _draws(study, n):
    opt = optuna.create_study(sampler=make_sampler(study), direction="maximize")
    space = define_by_run(study)
    draws = []
    for _ in range(n):
        trial = opt.ask()
        space(trial)
        draws.append(dict(trial.params))
        opt.tell(trial, 0.0)
    return draws


def test_every_draw_lies_in_its_declared_range():
    study = parse_study({**BASE, "method": "random", "sampler_seed": 1, "parameters": {
        "temperature": {"distribution": "log_uniform", "min": 0.05, "max": 1.0},
        "lr": {"distribution": "uniform", "min": 0.1, "max": 0.3, "q": 0.1},
        "batch_size": {"distribution": "int_uniform", "min": 16, "max": 64, "q": 16},
        "similarity": {"values": ["cosine", "dot"]},
    }})
    for d in _draws(study, 40):
        assert 0.05 <= d["temperature"] <= 1.0
        assert min(abs(d["lr"] - v) for v in (0.1, 0.2, 0.3)) < 1e-9
        assert d["batch_size"] in (16, 32, 48, 64)
        assert d["similarity"] in ("cosine", "dot")


def test_augmentation_subsets_are_sorted_comma_joined_and_respect_sizes():
    study = parse_study({**BASE, "method": "random", "parameters": {
        "augmentations": {"subset_of": ["flip", "crop", "color_jitter"], "min_size": 1, "max_size": 2}}})
    p = study.parameters["augmentations"]
    assert p.values == ("color_jitter", "crop", "flip", "color_jitter,crop", "color_jitter,flip", "crop,flip")


def test_pairs_of_gives_every_single_and_every_pair():
    study = parse_study({**BASE, "parameters": {"augmentations": {"pairs_of": ["crop", "blur", "flip"]}}})
    assert study.parameters["augmentations"].values == (
        "blur", "crop", "flip", "blur,crop", "blur,flip", "crop,flip")


def test_grid_visits_every_combination_once_and_sets_the_trial_count():
    study = parse_study({**{k: v for k, v in BASE.items() if k != "trials"}, "method": "grid", "parameters": {
        "similarity": {"values": ["cosine", "dot"]},
        "batch_size": {"values": [32, 64, 128]},
    }})
    assert study.trials == 6
    draws = _draws(study, 6)
    seen = {(d["similarity"], d["batch_size"]) for d in draws}
    assert seen == set(itertools.product(["cosine", "dot"], [32, 64, 128]))


def test_grid_refuses_a_continuous_parameter():
    from trainers.checks import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_study({**BASE, "method": "grid", "parameters": {
            "temperature": {"distribution": "uniform", "min": 0.1, "max": 1.0}}})
    assert str(err.value) == ("parameters.temperature: method grid needs discrete parameters "
                              "(values, int_uniform or an augmentation set), got distribution uniform")


@pytest.mark.parametrize("method", ["tpe", "random", "cmaes", "gp", "qmc"])
def test_each_method_is_a_seeded_reproducible_sampler(method):
    study = parse_study({**BASE, "method": method, "sampler_seed": 7, "parameters": {
        "temperature": {"distribution": "log_uniform", "min": 0.05, "max": 1.0},
        "lr": {"distribution": "uniform", "min": 0.1, "max": 1.0}}})
    assert _draws(study, 4) == _draws(study, 4)


def test_parameter_grid_values_of_int_range():
    assert Parameter("b", "int_uniform", low=1, high=7, step=3).grid_values() == [1, 4, 7]


def test_fixed_values_are_checked_with_the_searched_ones_not_the_defaults():
    # warmup_epochs 10 exceeds the trainer's default of 8 epochs, but every searched epochs value is larger.
    study = parse_study({**BASE, "fixed": {"warmup_epochs": 10},
                         "parameters": {"epochs": {"values": [20, 50]}}})
    assert study.parameters["epochs"].values == (20, 50)


def test_relative_data_root_is_made_absolute_for_the_trials(tmp_path, monkeypatch):
    from simclr_sweep.runner import with_absolute_data_root

    monkeypatch.chdir(tmp_path)
    study = with_absolute_data_root(parse_study({**BASE, "fixed": {"data_root": "./data"},
                                                 "parameters": {"temperature": {"values": [0.5]}}}))
    assert study.fixed["data_root"] == str(tmp_path / "data")
    assert study.raw["fixed"]["data_root"] == str(tmp_path / "data")  # the frozen study.yaml says so too


def test_conditional_parameter_exists_only_when_its_condition_holds():
    study = parse_study({**BASE, "method": "random", "sampler_seed": 3, "parameters": {
        "loss": {"values": ["nt_xent", "margin_triplet"]},
        "temperature": {"distribution": "log_uniform", "min": 0.05, "max": 1.0, "when": {"loss": "nt_xent"}},
    }})
    draws = _draws(study, 30)
    assert {d["loss"] for d in draws} == {"nt_xent", "margin_triplet"}
    for d in draws:
        assert ("temperature" in d) == (d["loss"] == "nt_xent")


@pytest.mark.parametrize("when, message", [
    ({"los": "nt_xent"}, "parameters.temperature.when.los: must name a parameter declared above this one; did you mean 'loss'?"),
    ({"loss": "nt_xnet"}, "parameters.temperature.when.loss: 'nt_xnet' is not one of its values (nt_xent, margin_triplet)"),
])
def test_bad_conditions_are_refused_at_their_path(when, message):
    from trainers.checks import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_study({**BASE, "parameters": {
            "loss": {"values": ["nt_xent", "margin_triplet"]},
            "temperature": {"distribution": "log_uniform", "min": 0.05, "max": 1.0, "when": when}}})
    assert str(err.value) == message


def test_run_refuses_a_study_directory_in_use_and_points_to_resume(tmp_path):
    from simclr_sweep.runner import prepare_study_dir
    from trainers.checks import ConfigError

    study = parse_study({**BASE, "parameters": {"temperature": {"values": [0.5]}}})
    study_dir = prepare_study_dir(study, tmp_path)
    assert (study_dir / "study.yaml").is_file()
    with pytest.raises(ConfigError) as err:
        prepare_study_dir(study, tmp_path)
    assert str(err.value) == (f"{study_dir}: already holds a study; continue it with "
                              f"`simclr-sweep resume {study_dir}` or start a new one with --name")
