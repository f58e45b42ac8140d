"""The Tune function trainable: a thin adapter around `trainers.fit`.

Tune owns scheduling, checkpoint storage and restore; this function only turns a trial's config
into a `TrainConfig`, resumes from Tune's checkpoint when there is one, and reports each epoch.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

CHECKPOINT_FILE = "trainer.pt"
TRIAL_INDEX = "__trial_index__"  # set by Tune's Repeater when a study repeats configurations
RESUME_OF = "__resume_of__"  # on resume: the trial id (in our tables) this Tune trial continues
RESUME_FROM = "__resume_from__"  # on resume: that trial's last checkpoint file, if it left one
INTERNAL_KEYS = (TRIAL_INDEX, RESUME_OF, RESUME_FROM)


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a study shares: the fixed options and the study's metric."""

    fixed: dict[str, Any]
    metric: str
    seeds: int


def trial_seed(setup_fixed: dict[str, Any], config: dict[str, Any]) -> int:
    """The seed of a trial: the repeat's index for repeated studies, else the fixed seed (or 0)."""
    if TRIAL_INDEX in config:
        return int(setup_fixed.get("seed", 0)) + int(config[TRIAL_INDEX])
    return int(setup_fixed.get("seed", 0))


def train_options(setup: TrialSetup, config: dict[str, Any]) -> dict[str, Any]:
    """The full trainer options of a trial: fixed values, then the sampled ones, then the seed."""
    return {**setup.fixed, **sampled_params(config), "seed": trial_seed(setup.fixed, config)}


def sampled_params(config: dict[str, Any]) -> dict[str, Any]:
    """The searched parameters of a trial's config, without the keys simclr_sweep adds."""
    return {k: v for k, v in config.items() if k not in INTERNAL_KEYS}


def table_trial_id(trial) -> str:
    """The id a Tune trial has in our tables: its own, or the one of the trial it continues."""
    return trial.config.get(RESUME_OF) or trial.trial_id


def trial_dirname(trial) -> str:
    """Tune's folder for a trial, named by its id in our tables so a later resume finds its checkpoints."""
    return f"trial-{table_trial_id(trial)}"


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Train one configuration, reporting every epoch (and its checkpoint) to Tune."""
    from trainers import TrainConfig, fit

    cfg = TrainConfig.from_dict(train_options(setup, config))
    last_metric = math.nan

    def on_epoch(epoch: int, metrics: dict[str, float], save) -> None:
        nonlocal last_metric
        # Optuna and the scheduler need the study's metric in every result; between evaluations it
        # is the last value measured.
        if setup.metric in metrics:
            last_metric = metrics[setup.metric]
        result = {**metrics, setup.metric: metrics.get(setup.metric, last_metric)}
        with tempfile.TemporaryDirectory(prefix="simclr-ckpt-") as tmp:
            save(Path(tmp) / CHECKPOINT_FILE)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        # A resumed trial's first attempt starts from the checkpoint its earlier run left.
        fit(cfg, on_epoch=on_epoch, resume_from=config.get(RESUME_FROM))
        return
    with tempfile.TemporaryDirectory(prefix="simclr-resume-") as tmp:
        local = Path(checkpoint.to_directory(tmp))
        fit(cfg, on_epoch=on_epoch, resume_from=local / CHECKPOINT_FILE)
