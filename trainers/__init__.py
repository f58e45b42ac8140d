"""The SimCLR trainer: ``TrainConfig`` describes a run, ``fit`` trains it (alone, under DDP, in a Tune trial)."""

from trainers.config import ConfigError, TrainConfig
from trainers.loop import fit

__all__ = ["ConfigError", "TrainConfig", "fit"]
