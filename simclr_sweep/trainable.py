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
    sampled = {k: v for k, v in config.items() if k != TRIAL_INDEX}
    return {**setup.fixed, **sampled, "seed": trial_seed(setup.fixed, config)}


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
        fit(cfg, on_epoch=on_epoch)
        return
    with tempfile.TemporaryDirectory(prefix="simclr-resume-") as tmp:
        local = Path(checkpoint.to_directory(tmp))
        fit(cfg, on_epoch=on_epoch, resume_from=local / CHECKPOINT_FILE)
