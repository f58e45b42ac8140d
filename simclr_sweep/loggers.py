"""The experiment trackers a study logs to (`loggers: [tensorboard, mlflow, wandb]`): Ray Tune's own
logger callbacks, configured with each tracker's usual environment.

Where the logs go, unless that environment says otherwise:

- tensorboard: tensorboardX event files in each trial's folder, ``<study>/tune*/trial-<id>/`` (Tune's
  place; ``tensorboard --logdir <study>``);
- mlflow: a file store at ``<study>/loggers/mlflow`` (``MLFLOW_TRACKING_URI`` moves it, to a server or
  ``sqlite:///...``), one run per trial in the experiment ``MLFLOW_EXPERIMENT_NAME``, else the study's name;
- wandb: run folders under ``<study>/loggers/wandb/wandb/`` (``WANDB_DIR`` moves them), in the project
  ``WANDB_PROJECT``, else the study's name; ``WANDB_MODE=offline`` keeps them off the network.

A remote study's (``s3://...``) mlflow and wandb folders are on the driver's disk, in
``study_files.locations.cache_dir(uri)/loggers/``: a file store and W&B's run folders need local files.
Stdlib only at the top: `simclr_sweep.study` reads `LOGGERS` to validate, and each tracker is an
optional extra, imported only by the run that asks for it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

LOGS_DIR = "loggers"  # <study>/loggers/<tracker>/


@dataclass(frozen=True)
class Tracker:
    module: str  # what Tune's callback imports; missing means the extra is not installed
    extra: str  # pip install 'simclr-sweep[<extra>]'
    build: Callable[[str, Path | str], Any]  # (study name, study dir) -> Tune's logger callback


# Each builder imports its Tune callback (and so Ray and the tracker) only for a run that asks for it.
def _tensorboard(name: str, study_dir: Path | str):
    from ray.tune.logger import TBXLoggerCallback

    return TBXLoggerCallback()


def _mlflow(name: str, study_dir: Path | str):
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = None  # MLflow reads MLFLOW_TRACKING_URI itself
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        uri = logs_dir(study_dir, "mlflow").as_uri()
        # MLflow 3 refuses a new file store unless told: this one is a plain folder anyone can copy.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME") or name)


def _wandb(name: str, study_dir: Path | str):
    from ray.air.integrations.wandb import WandbLoggerCallback

    # Given explicitly: Tune's logging actors may run in a process that did not inherit the driver's environment.
    settings = {"dir": os.environ.get("WANDB_DIR") or str(logs_dir(study_dir, "wandb"))}
    if os.environ.get("WANDB_MODE"):
        settings["mode"] = os.environ["WANDB_MODE"]
    Path(settings["dir"]).mkdir(parents=True, exist_ok=True)
    project = os.environ.get("WANDB_PROJECT") or os.environ.get("WANDB_PROJECT_NAME") or name
    return WandbLoggerCallback(project=project, **settings)


LOGGERS: dict[str, Tracker] = {
    "tensorboard": Tracker("tensorboardX", "tensorboard", _tensorboard),
    "mlflow": Tracker("mlflow", "mlflow", _mlflow),
    "wandb": Tracker("wandb", "wandb", _wandb),
}


def not_installed(name: str) -> str | None:
    """Why the tracker `name` cannot log here (its extra is not installed), or None when it can."""
    tracker = LOGGERS[name]
    if importlib.util.find_spec(tracker.module) is None:
        return f"{name} is not installed; pip install 'simclr-sweep[{tracker.extra}]'"
    return None


def logs_dir(study_dir: Path | str, tracker: str) -> Path:
    """``<study>/loggers/<tracker>``, or for a remote study the driver's local copy of that folder."""
    from study_files.locations import as_location, cache_dir  # pyarrow: not for validate, which reads LOGGERS

    study_dir = as_location(study_dir)
    base = study_dir.resolve() if isinstance(study_dir, Path) else cache_dir(study_dir)
    return base / LOGS_DIR / tracker


def logger_callbacks(name: str, study_dir: Path | str, loggers: tuple[str, ...]) -> list:
    """Tune's logger callbacks for the study's `loggers`, in the order declared."""
    return [LOGGERS[tracker].build(name, study_dir) for tracker in loggers]
