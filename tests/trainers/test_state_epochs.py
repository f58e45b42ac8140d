"""A resumed run may change `epochs` only where that does not change the steps already taken."""
import pytest

from trainers.training.state import CheckpointError, check_same_run

SAVED = {"epochs": 10, "schedule": "cosine", "lr": 1.0, "eval_every": 1}


def test_more_epochs_under_a_cosine_schedule_are_refused():
    # lr_at's cosine runs over epochs * steps_per_epoch: 20 epochs would re-time the first 10.
    with pytest.raises(CheckpointError) as err:
        check_same_run(SAVED, {**SAVED, "epochs": 20}, "ckpt.pt")
    assert str(err.value) == ("resume_from: ckpt.pt was written with epochs=10, this run has epochs=20; the cosine "
                              "schedule's length follows epochs, so only a run with schedule: constant can change them")


def test_more_epochs_under_a_constant_schedule_and_other_resumable_changes_are_accepted():
    constant = {**SAVED, "schedule": "constant"}
    check_same_run(constant, {**constant, "epochs": 20, "eval_every": 5}, "ckpt.pt")
    check_same_run(SAVED, {**SAVED, "eval_every": 5}, "ckpt.pt")


def test_the_same_epochs_under_a_cosine_schedule_are_accepted():
    check_same_run(SAVED, dict(SAVED), "ckpt.pt")
