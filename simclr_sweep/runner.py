"""Run a study: the study directory, Ray, and Tune's `Tuner` with OptunaSearch and a scheduler.

Every orchestration feature is Tune's or Optuna's own, configured here, not re-implemented.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from simclr_sweep.journal import journal_mirror, journal_path, tune_storage
from study_files import locations
from study_files.declaration import claim_study, declaration_text
from study_files.locations import Location
from simclr_sweep.study import Study, StudyError

# Tune's own result loggers (CSV, JSON, TensorBoard) duplicate what our tables hold.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")
# The classic reporter at verbose=0 prints nothing; our progress view is the live output.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

STUDY_FILE = "study.yaml"
JOURNAL_FILE = "optuna.journal"
TUNE_DIR = "tune"
DDP_DRIVER_CPU = 0.25  # what a DDP trial's own process reserves beside its workers


@dataclass(frozen=True)
class StudyOutcome:
    study_dir: Location  # a Path, or the study's URI (s3://...)
    report: Location
    counts: dict[str, int]


def study_dir_for(study: Study, storage: Location) -> Location:
    storage = locations.as_location(storage)
    if not isinstance(storage, Path):  # a URI (study_files.locations)
        return locations.child(storage, study.name)
    return (storage / study.name).resolve()


def with_absolute_data_root(study: Study) -> Study:
    """A relative `data_root` means relative to where `run` started: Tune runs each trial in a folder of its own."""
    from dataclasses import replace

    root = study.fixed.get("data_root")
    if not isinstance(root, str) or Path(root).is_absolute() or "://" in root:
        return study
    absolute = str(Path(root).resolve())
    return replace(study, fixed={**study.fixed, "data_root": absolute},
                   raw={**study.raw, "fixed": {**study.raw.get("fixed", {}), "data_root": absolute}})


def prepare_study_dir(study: Study, storage: Location) -> Location:
    """Create `<storage>/<name>/` with the frozen declaration; refuse a directory already used."""
    study_dir = study_dir_for(study, storage)
    if not isinstance(study_dir, Path):
        claim_study(study_dir, yaml.safe_dump({**study.raw, "name": study.name}, sort_keys=False))
        return study_dir
    if study_dir.exists() and any(study_dir.iterdir()):
        raise StudyError(
            str(study_dir),
            "already holds a study; continue it with `simclr-sweep resume "
            f"{study_dir}` or start a new one with --name",
        )
    study_dir.mkdir(parents=True, exist_ok=True)
    frozen = {**study.raw, "name": study.name}
    tmp = study_dir / f".{STUDY_FILE}.tmp"
    tmp.write_text(yaml.safe_dump(frozen, sort_keys=False))
    tmp.replace(study_dir / STUDY_FILE)
    return study_dir


def start_ray(address: str | None) -> bool:
    """Join the cluster at `address` (or RAY_ADDRESS); with neither, start Ray on this machine.

    Returns whether this call connected (and so should shut Ray down at the end).
    """
    import logging

    import ray

    if ray.is_initialized():
        return False
    # Trial errors are recorded in the tables and shown as one line by the progress view; Tune's
    # own logger would print each traceback again.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    address = address or os.environ.get("RAY_ADDRESS") or None
    common = dict(logging_level=logging.WARNING, log_to_driver=False)
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **common)
    return True


def make_scheduler(study: Study):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

    # Rungs count epochs, not Tune iterations: a trial continued after a resume starts mid-way.
    es = study.early_stopping
    if es.type == "asha":
        return ASHAScheduler(
            time_attr="epoch",
            max_t=study.epochs,
            grace_period=min(es.grace_period, study.epochs),
            reduction_factor=es.reduction_factor,
        )
    if es.type == "hyperband":
        return HyperBandScheduler(time_attr="epoch", max_t=study.epochs, reduction_factor=es.reduction_factor)
    if es.type == "median":
        return MedianStoppingRule(time_attr="epoch", grace_period=es.grace_period)
    return FIFOScheduler()


def open_journal(study_dir: Location):
    """The study's Optuna storage: a JournalStorage file beside the tables, written at each event.

    A remote study's journal is a local file on the driver, copied to the study's URI as it changes
    (`simclr_sweep.journal.JournalMirror`).
    """
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = journal_path(study_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def open_optuna_study(study: Study, storage):
    import optuna

    return optuna.create_study(storage=storage, study_name=study.name, direction=study.goal, load_if_exists=True)


def make_search(study: Study, storage):
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    from simclr_sweep.search import define_by_run, make_sampler

    searcher = OptunaSearch(
        space=define_by_run(study),
        metric=study.metric,
        mode=study.mode,
        sampler=make_sampler(study),
        study_name=study.name,
        storage=storage,
    )
    if study.seeds > 1:
        # Each suggestion runs once per seed; Optuna is told the mean over the repeats.
        return Repeater(searcher, repeat=study.seeds, set_index=True)
    return searcher


def trial_setup(study: Study, study_dir: Location):
    """What every trial of the study shares."""
    from simclr_sweep.trainable import TrialSetup

    return TrialSetup(fixed=dict(study.fixed), metric=study.metric, seeds=study.seeds,
                      workers=study.workers_per_trial, cpu=study.cpu, gpu=study.gpu,
                      train_storage=str(locations.child(study_dir, "train")))


def _tune(study: Study, study_dir: Location, search_alg, num_samples: int, experiment: str, stream: TextIO | None,
          trial_fn=None, time_budget_s: float | None = None):
    """Run one Tune experiment of the study; returns the recorder that wrote its tables.

    `trial_fn(config, setup)` replaces the SimCLR trainable (the orchestration benchmark uses it).
    `time_budget_s`: what is left of the study's `time_budget` (a resume passes less than all of it).
    """
    from ray import tune

    from simclr_sweep.progress import ProgressView
    from simclr_sweep.recording import TableRecorder
    from simclr_sweep.trainable import run_trial, trial_dirname

    setup = trial_setup(study, study_dir)
    journal = journal_mirror(study_dir)  # None for a local study
    recorder = TableRecorder(study, study_dir, setup, after_event=journal.sync if journal else None)
    progress = ProgressView(recorder, total=study.num_trials, stream=stream)
    # A DDP trial only waits on its Ray Train workers, which hold the study's resources.
    resources = {"cpu": study.cpu, "gpu": study.gpu} if study.workers_per_trial == 1 else {"cpu": DDP_DRIVER_CPU}
    trainable = tune.with_resources(tune.with_parameters(trial_fn or run_trial, setup=setup), resources=resources)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=study.metric,
            mode=study.mode,
            search_alg=search_alg,
            scheduler=make_scheduler(study),
            num_samples=num_samples,
            max_concurrent_trials=study.max_concurrent,
            time_budget_s=time_budget_s if time_budget_s is not None else study.time_budget_s,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=experiment,
            **tune_storage(study_dir),
            callbacks=[recorder, progress],
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=study.max_failures),
        ),
    )
    tuner.fit()
    if trial_fn is None:  # the baselines and embeddings the study declared, while Ray is up
        from simclr_sweep.analysis import analyse_study

        analyse_study(study, study_dir, stream)
    if journal:
        journal.sync()
    return recorder


def _finish(study_dir: Location, recorder) -> StudyOutcome:
    from reports.report import build_report

    counts = recorder.counts() if recorder else {}
    return StudyOutcome(study_dir=study_dir, report=build_report(study_dir), counts=counts)


def run_study(study: Study, storage: Location, address: str | None = None, stream: TextIO | None = None,
              trial_fn=None) -> StudyOutcome:
    """Run a validated study to the end and write its report."""
    study = with_absolute_data_root(study)
    study_dir = prepare_study_dir(study, storage)
    started_ray = start_ray(address)
    try:
        storage = open_journal(study_dir)
        open_optuna_study(study, storage)
        recorder = _tune(study, study_dir, make_search(study, storage), study.num_trials, TUNE_DIR, stream, trial_fn)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return _finish(study_dir, recorder)


def load_study_dir(study_dir: Location) -> Study:
    """The declaration a study directory was run with (its frozen `study.yaml`)."""
    from simclr_sweep.study import load_study, parse_study

    study_dir = locations.as_location(study_dir)
    if not isinstance(study_dir, Path):
        return parse_study(yaml.safe_load(declaration_text(study_dir)))
    if not (study_dir / STUDY_FILE).is_file():
        raise StudyError(str(study_dir), f"not a study directory (no {STUDY_FILE}); give the folder `simclr-sweep run` created")
    return load_study(study_dir / STUDY_FILE)


def resume_study(study_dir: Location, address: str | None = None, stream: TextIO | None = None) -> StudyOutcome:
    """Continue an interrupted study from its tables and Optuna journal (see `simclr_sweep.resume`)."""
    from study_files.tables import StudyTables
    from simclr_sweep.resume import ResumingSearch, next_experiment_name, plan_resume, repair_journal
    from simclr_sweep.recording import TableRecorder

    study_dir = locations.as_location(study_dir)
    if isinstance(study_dir, Path):
        study_dir = study_dir.resolve()
    study = load_study_dir(study_dir)
    journal = journal_mirror(study_dir)
    if journal:
        with locations.storage_errors(study_dir, "STUDY_DIR"):
            journal.fetch()
    out = stream or sys.stdout
    cut = repair_journal(journal_path(study_dir))
    if cut:
        print(f"{JOURNAL_FILE}: cut a last record the interruption left half-written ({cut} bytes)", file=out, flush=True)
    storage = open_journal(study_dir)
    optuna_study = open_optuna_study(study, storage)
    plan = plan_resume(study, study_dir, optuna_study)
    if journal:  # planning told Optuna what the tables know
        journal.sync()
    if plan.recovered_epochs:  # before the recorder loads the tables, so the trials continue with them
        StudyTables(study_dir).append_epochs(plan.recovered_epochs)
    print(f"resuming {study.name}: {len(plan.continued)} trials to continue, {plan.new_trials} new "
          f"({plan.told} results told to Optuna from the tables)",
          file=out, flush=True)
    budget_left = None
    if study.time_budget_s is not None:
        spent = StudyTables(study_dir).read_run_time()
        budget_left = study.time_budget_s - spent
        if budget_left <= 0 and plan.num_samples:
            print(f"time_budget spent ({spent:.0f} s of {study.time_budget_s:g} s): nothing more is run; "
                  f"interrupted trials end early_stopped", file=out, flush=True)
            _stop_interrupted(study, study_dir)
            plan.continued, plan.new_trials = [], 0
    if plan.num_samples == 0:
        return _finish(study_dir, TableRecorder(study, study_dir, trial_setup(study, study_dir)).loaded())
    started_ray = start_ray(address)
    try:
        search = ResumingSearch(make_search(study, storage), study, plan, optuna_study)
        recorder = _tune(study, study_dir, search, plan.num_samples, next_experiment_name(study_dir), stream,
                         time_budget_s=budget_left)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return _finish(study_dir, recorder)


def _stop_interrupted(study: Study, study_dir: Location) -> None:
    """End the trials a killed driver left running as `early_stopped`: the time budget stopped them."""
    from simclr_sweep.recording import TableRecorder, _now

    recorder = TableRecorder(study, study_dir, trial_setup(study, study_dir)).loaded()
    stopped = [r for r in recorder.records.values() if r.status == "running"]
    for record in stopped:
        record.status, record.ended_at = "early_stopped", _now()
    recorder.tables.upsert_trials([recorder.trial_row(r) for r in stopped])
