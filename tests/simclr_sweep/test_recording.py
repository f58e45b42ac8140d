"""How trial configurations become table columns and config ids."""
from simclr_sweep.recording import config_id
from simclr_sweep.trainable import TRIAL_INDEX, TrialSetup, train_options, trial_seed


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
