"""How trial configurations become table columns and config ids."""
from simclr_sweep.recording import config_id
from simclr_sweep.trainable import (
    BOOKKEEPING, REPEAT, RESUME_FROM, RESUME_OF, SUGGESTION, TRIAL_INDEX, TrialSetup, train_options, trial_seed, tune_config,
)


def test_repeats_share_a_config_id_and_other_configs_do_not():
    a0 = {"temperature": 0.5, "similarity": "dot", TRIAL_INDEX: 0}
    a1 = {"similarity": "dot", "temperature": 0.5, TRIAL_INDEX: 1}
    b = {"temperature": 0.25, "similarity": "dot", TRIAL_INDEX: 0}
    assert config_id(a0) == config_id(a1) != config_id(b)


def test_each_repeat_gets_its_own_seed_and_the_sampled_values_win_over_fixed():
    setup = TrialSetup(fixed={"epochs": 3, "temperature": 0.1, "seed": 10}, metric="knn_top1", seeds=3)
    assert trial_seed(setup.fixed, {TRIAL_INDEX: 2}) == 12
    assert trial_seed({}, {"temperature": 0.2}) == 0
    assert train_options(setup, {"temperature": 0.7, TRIAL_INDEX: 1}) == {"epochs": 3, "temperature": 0.7, "seed": 11}


def test_a_trials_config_id_and_options_do_not_depend_on_its_bookkeeping():
    params = {"temperature": 0.5, "similarity": "dot"}
    resumed = tune_config(params, {RESUME_OF: "abc", RESUME_FROM: "/x/trainer.pt", SUGGESTION: 3, REPEAT: 1})
    assert list(resumed) == [*params, BOOKKEEPING]  # one private key beside the parameters
    repeated = {**params, TRIAL_INDEX: 1}  # Tune's Repeater writes its own key
    assert config_id(resumed) == config_id(repeated) == config_id(params)
    setup = TrialSetup(fixed={"epochs": 3}, metric="knn_top1", seeds=2)
    assert train_options(setup, resumed) == train_options(setup, repeated) == {"epochs": 3, **params, "seed": 1}
