"""The SimCLR trainer: ``TrainConfig`` describes a run, ``fit`` trains it (alone, under DDP, in a Tune trial)."""

from trainers.checks import ConfigError

__all__ = ["ConfigError", "TrainConfig", "fit"]


def __getattr__(name: str):
    # Lazy: `trainers.checks` (the study language's validation kit) must import without torch.
    if name == "TrainConfig":
        from trainers.config import TrainConfig
        return TrainConfig
    if name == "fit":
        from trainers.training.loop import fit
        return fit
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")
