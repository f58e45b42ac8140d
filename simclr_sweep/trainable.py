"""The Tune function trainable: a thin adapter around `trainers.fit`.

Tune owns scheduling, checkpoint storage and restore; this function only turns a trial's config
into a `TrainConfig`, resumes from Tune's checkpoint when there is one, and reports each epoch.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import queue as queue_errors
import threading

import ray.train
from ray import tune
from ray.util.queue import Queue

from simclr_sweep.journal import tune_storage
from study_files.checkpoints import fetch_file
from study_files.vocabulary import CHECKPOINT_FILE

# Tune's Repeater writes the repeat's index into the config itself (set_index=True): read, never a parameter.
TRIAL_INDEX = "__trial_index__"
# Our own bookkeeping travels in Tune's config under this one key, as a mapping of the names below.
BOOKKEEPING = "_simclr_sweep"
REPEAT = "repeat"  # which repeat of its configuration a trial is, when a resume (not the Repeater) starts it
RESUME_OF = "resume_of"  # on resume: the trial id (in our tables) this Tune trial continues
RESUME_FROM = "resume_from"  # on resume: that trial's last checkpoint file, if it left one
SUGGESTION = "suggestion"  # on resume: the Optuna trial number of a suggestion that never ran


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a study shares: the fixed options and the study's metric."""

    fixed: dict[str, Any]
    metric: str
    seeds: int
    workers: int = 1  # >1: each trial runs DDP on this many Ray Train workers
    cpu: float = 1.0  # the trial's CPUs (and GPUs), split evenly over its DDP workers
    gpu: float = 0.0
    train_storage: str = ""  # where Ray Train keeps its runs for DDP trials


def tune_config(params: dict[str, Any], bookkeeping: dict[str, Any]) -> dict[str, Any]:
    """The config Tune gets for a trial: its sampled parameters and, under one key, our bookkeeping."""
    return {**params, BOOKKEEPING: dict(bookkeeping)} if bookkeeping else dict(params)


def bookkeeping(config: dict[str, Any]) -> dict[str, Any]:
    """What simclr_sweep noted about a trial in its config (empty for a fresh suggestion)."""
    return config.get(BOOKKEEPING) or {}


def repeat_index(config: dict[str, Any]) -> int:
    """Which repeat of its configuration a trial is: from a resume's note, else from Tune's Repeater."""
    return int(bookkeeping(config).get(REPEAT, config.get(TRIAL_INDEX, 0)))


def trial_seed(setup_fixed: dict[str, Any], config: dict[str, Any]) -> int:
    """The seed of a trial: the fixed seed (or 0) plus the repeat's index."""
    return int(setup_fixed.get("seed", 0)) + repeat_index(config)


def train_options(setup: TrialSetup, config: dict[str, Any]) -> dict[str, Any]:
    """The full trainer options of a trial: fixed values, then the sampled ones, then the seed."""
    return {**setup.fixed, **sampled_params(config), "seed": trial_seed(setup.fixed, config)}


def sampled_params(config: dict[str, Any]) -> dict[str, Any]:
    """The searched parameters of a trial's config, without the bookkeeping of Tune and simclr_sweep."""
    return {k: v for k, v in config.items() if k not in (BOOKKEEPING, TRIAL_INDEX)}


def table_trial_id(trial) -> str:
    """The id a Tune trial has in our tables: its own, or the one of the trial it continues."""
    return bookkeeping(trial.config).get(RESUME_OF) or trial.trial_id


def trial_dirname(trial) -> str:
    """Tune's folder for a trial, named by its id in our tables so a later resume finds its checkpoints."""
    return f"trial-{table_trial_id(trial)}"


class _EpochReporter:
    """Reports an epoch to Tune; the study's metric is carried forward between evaluations,
    because Optuna and the scheduler need it in every result."""

    def __init__(self, metric: str):
        self.metric = metric
        self.last = math.nan

    def __call__(self, metrics: dict[str, float], write_checkpoint: Callable[[Path], None]) -> None:
        if self.metric in metrics:
            self.last = metrics[self.metric]
        result = {**metrics, self.metric: metrics.get(self.metric, self.last)}
        with tempfile.TemporaryDirectory(prefix="simclr-ckpt-") as tmp:
            write_checkpoint(Path(tmp) / CHECKPOINT_FILE)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))


def _resume_file(config: dict[str, Any], tmp: str) -> Path | None:
    """Tune's checkpoint of this trial if it has one (a retry), else the one a resume handed over."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        return Path(checkpoint.to_directory(tmp)) / CHECKPOINT_FILE
    source = bookkeeping(config).get(RESUME_FROM)
    if source and "://" in str(source):  # a remote study's checkpoint (s3://...)
        return fetch_file(str(source), Path(tmp) / CHECKPOINT_FILE)
    return Path(source) if source else None


def _report_if_trained(resume_file: Path | None, epochs: int, report: "_EpochReporter") -> bool:
    """A trial continued from its last epoch's checkpoint (the driver died before hearing it had
    finished) trains nothing more; it reports that epoch again, so Tune and Optuna get its result."""
    if resume_file is None:
        return False
    from trainers.training.state import load_checkpoint  # in the trial's worker: the driver never imports torch

    state = load_checkpoint(resume_file)
    if int(state.get("epoch", 0)) < epochs or not isinstance(state.get("metrics"), dict):
        return False
    report(dict(state["metrics"]), lambda path: shutil.copyfile(resume_file, path))
    return True


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Train one configuration, reporting every epoch (and its checkpoint) to Tune."""
    from trainers import TrainConfig, fit  # in the trial's worker: the driver never imports torch

    cfg = TrainConfig.from_dict(train_options(setup, config))
    report = _EpochReporter(setup.metric)
    with tempfile.TemporaryDirectory(prefix="simclr-resume-") as tmp:
        resume_file = _resume_file(config, tmp)
        if _report_if_trained(resume_file, cfg.epochs, report):
            return
        if setup.workers > 1:
            _run_ddp_trial(cfg.to_dict(), resume_file, setup)
            return
        fit(cfg, on_epoch=lambda epoch, metrics, save: report(metrics, save), resume_from=resume_file)


# --- DDP trials: Ray Train's TorchTrainer launched from inside the Tune trial -------------------
#
# Ray Train requires every worker to call `ray.train.report` each time, while `fit` calls its hook on
# rank 0 only. So rank 0 sends each epoch's metrics and checkpoint to the trial through a
# Ray queue, and the trial, which waits on the TorchTrainer in a thread, reports them to Tune.


def _ddp_worker(loop_config: dict[str, Any]) -> None:
    """The loop each DDP worker runs: `fit` under the process group Ray Train has set up."""
    from trainers import TrainConfig, fit  # in the DDP worker: the driver never imports torch

    cfg = TrainConfig.from_dict(loop_config["options"])
    queue = loop_config["queue"]

    def on_epoch(epoch: int, metrics: dict[str, float], save) -> None:
        with tempfile.TemporaryDirectory(prefix="simclr-ckpt-") as tmp:
            path = Path(tmp) / CHECKPOINT_FILE
            save(path)
            queue.put((metrics, path.read_bytes()))

    with tempfile.TemporaryDirectory(prefix="simclr-resume-") as tmp:
        resume = None
        if loop_config["resume"] is not None:
            resume = Path(tmp) / CHECKPOINT_FILE
            resume.write_bytes(loop_config["resume"])
        fit(cfg, on_epoch=on_epoch, resume_from=resume)


def _run_ddp_trial(options: dict[str, Any], resume_file: Path | None, setup: TrialSetup) -> None:
    from ray.train.torch import TorchTrainer  # imports torch: only in the trial, never on the driver

    resume = resume_file.read_bytes() if resume_file is not None else None
    epochs: Queue = Queue(actor_options={"num_cpus": 0})
    per_worker = {"CPU": setup.cpu / setup.workers}
    if setup.gpu:
        per_worker["GPU"] = setup.gpu / setup.workers
    trainer = TorchTrainer(
        _ddp_worker,
        train_loop_config={"options": options, "queue": epochs, "resume": resume},
        scaling_config=ray.train.ScalingConfig(num_workers=setup.workers, use_gpu=bool(setup.gpu),
                                               resources_per_worker=per_worker),
        run_config=ray.train.RunConfig(name=f"ddp-{tune.get_context().get_trial_id()}",
                                       **tune_storage(setup.train_storage),  # a folder or an s3:// URI
                                       failure_config=ray.train.FailureConfig(max_failures=0)),
    )
    outcome: dict[str, BaseException] = {}

    def train() -> None:
        try:
            trainer.fit()
        except BaseException as err:  # re-raised in the trial's own thread below
            outcome["error"] = err

    thread = threading.Thread(target=train, name="ddp-trainer", daemon=True)
    thread.start()
    report = _EpochReporter(setup.metric)
    while thread.is_alive() or not epochs.empty():
        try:
            metrics, blob = epochs.get(timeout=0.5)
        except queue_errors.Empty:
            continue
        report(metrics, lambda path: path.write_bytes(blob))
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
