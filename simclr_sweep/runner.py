"""Run a study: the study directory, Ray, and Tune's `Tuner` with OptunaSearch and a scheduler.

Every orchestration feature is Tune's or Optuna's own, configured here, not re-implemented.
`run_study` and `resume_study` put the public steps below together; a caller with a trial function
of its own (the orchestration benchmark, the scheduler tests) calls `run_trials` with
`study_trainable(study, study_dir, its_trial)`.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

import optuna
import ray
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from ray import tune
from ray._private.utils import get_dashboard_dependency_error
from ray.exceptions import RayTaskError
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule
from ray.tune.search import Repeater
from ray.tune.search.optuna import OptunaSearch

from reports.report import build_report
from simclr_sweep.analysis import analyse_study
from simclr_sweep.journal import journal_mirror, journal_path, tune_storage
from simclr_sweep.loggers import logger_callbacks
from simclr_sweep.progress import ProgressView
from simclr_sweep.recording import TableRecorder, _now
from simclr_sweep.resume import ResumingSearch, next_experiment_name, plan_resume, repair_journal
from simclr_sweep.search import define_by_run, make_sampler
from simclr_sweep.study import Study, load_study_in_child, parse_study_in_child
from simclr_sweep.trainable import TrialSetup, run_trial, trial_dirname
from study_files import locations
from study_files.atomic import write_text
from study_files.declaration import claim_study, declaration_text, not_a_study
from study_files.errors import EnvironmentFault, os_problem
from study_files.lease import LEASE_FILE, study_lease
from study_files.locations import Location
from study_files.tables import StudyTables
from study_files.vocabulary import JOURNAL_FILE, STUDY_FILE, TUNE_DIR
from trainers.checks import ConfigError, parse_yaml

# Set where Ray starts (start_ray), before Ray reads them. Tune's automatic result loggers (CSV, JSON,
# TensorBoard) duplicate what our tables hold: only the trackers a study's `loggers` names are
# attached; the classic reporter at verbose=0 prints nothing, so our progress view is the live output.
RAY_ENVIRONMENT = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_TRAIN_V2_ENABLED": "1",
    "RAY_DEDUP_LOGS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
}
DDP_DRIVER_CPU = 0.25  # what a DDP trial's own process reserves beside its workers
# What the machine refuses of a study file the driver writes (os_problem says what to do for each).
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


@dataclass(frozen=True)
class StudyOutcome:
    study_dir: Location  # a Path, or the study's URI (s3://...)
    report: Location
    counts: dict[str, int]
    interrupted: bool = False  # a Ctrl-C stopped it: the trials not done wait for `resume`
    total: int = 0  # the trials the study declares (for the interrupted line)


def study_dir_for(study: Study, storage: Location) -> Location:
    storage = locations.as_location(storage)
    if not isinstance(storage, Path):  # a URI (study_files.locations)
        return locations.child(storage, study.name)
    return (storage / study.name).resolve()


def with_absolute_data_root(study: Study) -> Study:
    """A relative `data_root` means relative to where `run` started: Tune runs each trial in a folder of its own."""
    root = study.fixed.get("data_root")
    if not isinstance(root, str) or Path(root).is_absolute() or "://" in root:
        return study
    absolute = str(Path(root).resolve())
    return replace(study, fixed={**study.fixed, "data_root": absolute},
                   raw={**study.raw, "fixed": {**study.raw.get("fixed", {}), "data_root": absolute}})


def prepare_study_dir(study: Study, storage: Location) -> Location:
    """Create `<storage>/<name>/` with the frozen declaration; refuse a directory already used."""
    study_dir = study_dir_for(study, storage)
    frozen = yaml.safe_dump({**study.raw, "name": study.name}, sort_keys=False)
    if not isinstance(study_dir, Path):
        claim_study(study_dir, frozen)
        return study_dir
    if study_dir.exists() and any(study_dir.iterdir()):
        raise ConfigError(
            str(study_dir),
            "already holds a study; continue it with `simclr-sweep resume "
            f"{study_dir}` or start a new one with --name",
        )
    try:
        write_text(study_dir / STUDY_FILE, frozen)
    except OSError as err:
        raise os_problem(study_dir, err) from None
    return study_dir


def release_study_dir(study_dir: Location) -> None:
    """Undo `prepare_study_dir` after a failed start, so that a retry is not refused (no trial ran)."""
    files = locations.StudyFiles(study_dir)
    for name in (STUDY_FILE, LEASE_FILE):
        files.delete(name)
    if isinstance(study_dir, Path):
        try:
            study_dir.rmdir()
        except OSError:  # it holds something else: keep it
            pass


@contextmanager
def ray_session(address: str | None, dashboard: bool = True, stream: TextIO | None = None) -> Iterator[None]:
    """Join the cluster at `address` (or RAY_ADDRESS), or start Ray on this machine; shut down what was started."""
    started = start_ray(address, dashboard, stream)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def start_ray(address: str | None, dashboard: bool = True, stream: TextIO | None = None) -> bool:
    """Join the cluster at `address` (or RAY_ADDRESS); with neither, start Ray on this machine, with
    its dashboard when `dashboard` and ray[default] is installed. Prints the dashboard's address.

    Returns whether this call connected (and so should shut Ray down at the end).
    """
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if ray.is_initialized():
        return False
    # Trial errors are recorded in the tables and shown as one line by the progress view; Tune's
    # own logger would print each traceback again.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    address = address or os.environ.get("RAY_ADDRESS") or None
    common = dict(logging_level=logging.WARNING, log_to_driver=False)
    missing = None
    try:
        if address:
            context = ray.init(address=address, **common)
        else:
            other = running_cluster()
            if other:
                print(f"note: a Ray cluster already runs on this machine ({other}); this study starts its own; "
                      "to run it on that cluster instead, pass --address auto", file=sys.stderr, flush=True)
            # Ray's own check: the dashboard needs ray[default] (aiohttp, grpcio, ...), which ray[tune] lacks.
            missing = dashboard and get_dashboard_dependency_error()
            # "local": a new private Ray even where Ray's current-cluster file names another one.
            context = ray.init(address="local", num_cpus=os.cpu_count() or 1,
                               include_dashboard=bool(dashboard and not missing), **common)
    except Exception as err:  # Ray raises many kinds for a cluster it cannot start or reach  # noqa: BLE001
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        where = f"--address {address}" if address else "Ray"
        what = ("check the address, or leave --address out to start a private Ray" if address
                else "check that Ray can start here (`ray start --head` says why not)")
        raise EnvironmentFault(where, f"cannot start or join a Ray cluster ({first}); {what}") from None
    if dashboard:
        print(dashboard_line(context.dashboard_url, missing), file=stream or sys.stdout, flush=True)
    return True


def dashboard_line(url: str | None, missing: Any) -> str:
    """What a run says of the Ray dashboard: its address, or how to get one."""
    if url:
        return f"ray dashboard: {url if '://' in url else 'http://' + url}"
    if missing:
        return "ray dashboard: not installed; pip install 'simclr-sweep[dashboard]' (or run with --no-dashboard)"
    return "ray dashboard: none on this cluster"


def running_cluster() -> str | None:
    """The address in Ray's current-cluster file (what `ray.init()` would join), if another cluster wrote one."""
    from ray._private.utils import read_ray_address  # Ray's own reader of the file, so its location stays Ray's

    return read_ray_address()


def make_scheduler(study: Study):
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


def open_journal(study_dir: Location) -> JournalStorage:
    """The study's Optuna storage: a JournalStorage file beside the tables, written at each event.

    A remote study's journal is a local file on the driver, copied to the study's URI as it changes
    (`simclr_sweep.journal.JournalMirror`).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = journal_path(study_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except ValueError as err:  # a line that is not JSON: replaying the log stops there
        raise EnvironmentFault(str(path), f"damaged ({str(err).splitlines()[0]}); restore it from a copy, or move "
                                          "it aside to resume from the tables alone") from None
    except OSError as err:
        raise os_problem(path, err) from None


def open_optuna_study(study: Study, journal: JournalStorage) -> optuna.Study:
    return optuna.create_study(storage=journal, study_name=study.name, direction=study.goal, load_if_exists=True)


def make_search(study: Study, journal: JournalStorage):
    searcher = OptunaSearch(
        space=define_by_run(study),
        metric=study.metric,
        mode=study.mode,
        sampler=make_sampler(study),
        study_name=study.name,
        storage=journal,
    )
    if study.seeds > 1:
        # Each suggestion runs once per seed; Optuna is told the mean over the repeats.
        return Repeater(searcher, repeat=study.seeds, set_index=True)
    return searcher


def trial_setup(study: Study, study_dir: Location) -> TrialSetup:
    """What every trial of the study shares."""
    return TrialSetup(fixed=dict(study.fixed), metric=study.metric, seeds=study.seeds,
                      workers=study.workers_per_trial, cpu=study.cpu, gpu=study.gpu,
                      train_storage=str(locations.child(study_dir, "train")))


def study_trainable(study: Study, study_dir: Location, trial: Callable[[dict[str, Any], TrialSetup], None] = run_trial):
    """Tune's trainable: `trial(config, setup)` with the study's resources (SimCLR's `run_trial` unless told)."""
    # A DDP trial only waits on its Ray Train workers, which hold the study's resources.
    resources = {"cpu": study.cpu, "gpu": study.gpu} if study.workers_per_trial == 1 else {"cpu": DDP_DRIVER_CPU}
    return tune.with_resources(tune.with_parameters(trial, setup=trial_setup(study, study_dir)), resources=resources)


def run_experiment(study: Study, study_dir: Location, trainable, search_alg, num_samples: int, experiment: str,
                   stream: TextIO | None, time_budget_s: float | None = None) -> TableRecorder:
    """Run one Tune experiment of the study; returns the recorder that wrote its tables.

    `time_budget_s`: what is left of the study's `time_budget` (a resume passes less than all of it).
    """
    journal = journal_mirror(study_dir)  # None for a local study
    recorder = TableRecorder(study, study_dir, trial_setup(study, study_dir),
                             after_event=journal.sync if journal else None)
    progress = ProgressView(recorder, total=study.num_trials, stream=stream)
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
            callbacks=[recorder, progress, *logger_callbacks(study.name, study_dir, study.loggers)],
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=study.max_failures),
        ),
    )
    sigint = signal.getsignal(signal.SIGINT)
    try:
        tuner.fit()
    except Exception as err:
        fault = storage_fault(err, study_dir)
        if fault is None:
            raise
        raise fault from None
    finally:
        # Tune's handler takes the first Ctrl-C, ends its loop and puts back the one it found (a second
        # Ctrl-C is then Python's KeyboardInterrupt); left installed, it would swallow later ones.
        interrupted = signal.getsignal(signal.SIGINT) is sigint and not os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        signal.signal(signal.SIGINT, sigint)
    if journal:
        journal.sync()
    if interrupted:
        raise Interrupted(recorder)
    analyse_study(study, study_dir, stream)  # the baselines and embeddings the study declared, while Ray is up
    if journal:
        journal.sync()
    return recorder


def storage_fault(err: BaseException, study_dir: Location) -> Exception | None:
    """The driver's write that the machine refused (a full disk) anywhere in what Tune raised, as one line.

    Tune wraps an error of a callback (the tables writer) in a `TuneError` holding only its text, and
    its cleanup may raise the next one; the refusal itself is in the chain. A trial's own error
    (`RayTaskError`) is the trial's, recorded in the tables, not the driver's.
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and not isinstance(err, RayTaskError) and err.errno in STORAGE_ERRNOS:
            return os_problem(err.filename or study_dir, err)
        err = err.__cause__ or err.__context__
    return None


def finish(study_dir: Location, recorder: TableRecorder | None, interrupted: bool = False,
           total: int = 0) -> StudyOutcome:
    """The study's report, and how its trials ended."""
    counts = recorder.counts() if recorder else {}
    done = sum(n for status, n in counts.items() if status != "running")
    partial = f"interrupted after {done} of {total} trials; `simclr-sweep resume` continues it" if interrupted else None
    try:
        report = build_report(study_dir, partial)
    except OSError as err:
        if isinstance(study_dir, Path):
            raise os_problem(study_dir, err) from None
        raise
    return StudyOutcome(study_dir=study_dir, report=report, counts=counts, interrupted=interrupted, total=total)


class Interrupted(Exception):
    """A Ctrl-C stopped the study's Tune experiment cleanly: its tables hold what ran, `resume` continues it."""

    def __init__(self, recorder: TableRecorder) -> None:
        super().__init__("interrupted")
        self.recorder = recorder


def run_study(study: Study, storage: Location, address: str | None = None, stream: TextIO | None = None,
              dashboard: bool = True) -> StudyOutcome:
    """Run a validated study to the end and write its report (`dashboard`: Ray's, on a local Ray)."""
    study = with_absolute_data_root(study)
    study_dir = prepare_study_dir(study, storage)
    try:
        lease = study_lease(study_dir)
        lease.__enter__()
    except BaseException:
        release_study_dir(study_dir)  # another `run` of the same name claimed it between the check and now
        raise
    try:
        try:
            started = start_ray(address, dashboard, stream)
        except BaseException:
            release_study_dir(study_dir)  # a failed start leaves nothing that blocks the retry
            raise
        try:
            recorder = run_trials(study, study_dir, study_trainable(study, study_dir), stream)
        except Interrupted as stop:
            return finish(study_dir, stop.recorder, interrupted=True, total=study.num_trials)
        finally:
            if started:
                ray.shutdown()
        return finish(study_dir, recorder, total=study.num_trials)
    finally:
        lease.__exit__(None, None, None)


def run_trials(study: Study, study_dir: Location, trainable, stream: TextIO | None = None) -> TableRecorder:
    """A new study's trials, all of them, in its first Tune experiment (Ray must be up)."""
    journal = open_journal(study_dir)
    open_optuna_study(study, journal)
    return run_experiment(study, study_dir, trainable, make_search(study, journal), study.num_trials, TUNE_DIR, stream)


def load_study_dir(study_dir: Location) -> Study:
    """The declaration a study directory was run with (its frozen `study.yaml`), validated in a child process."""
    study_dir = locations.as_location(study_dir)
    if not isinstance(study_dir, Path):
        return parse_study_in_child(parse_yaml(declaration_text(study_dir), f"{study_dir}/{STUDY_FILE}"))
    if not (study_dir / STUDY_FILE).is_file():
        raise not_a_study(study_dir)
    return load_study_in_child(study_dir / STUDY_FILE)


def resume_study(study_dir: Location, address: str | None = None, stream: TextIO | None = None,
                 dashboard: bool = True) -> StudyOutcome:
    """Continue an interrupted study from its tables and Optuna journal (see `simclr_sweep.resume`)."""
    study_dir = locations.as_location(study_dir)
    if isinstance(study_dir, Path):
        study_dir = study_dir.resolve()
    study = load_study_dir(study_dir)
    with study_lease(study_dir):  # before anything is repaired: a running driver's files are its own
        return _resume_held(study, study_dir, address, stream, dashboard)


def _resume_held(study: Study, study_dir: Location, address: str | None, stream: TextIO | None,
                 dashboard: bool) -> StudyOutcome:
    mirror = journal_mirror(study_dir)
    if mirror:
        with locations.storage_errors(study_dir, "STUDY_DIR"):
            mirror.fetch()
    out = stream or sys.stdout
    cut = repair_journal(journal_path(study_dir))
    if cut:
        print(f"{JOURNAL_FILE}: cut a last record the interruption left half-written ({cut} bytes)", file=out, flush=True)
    journal = open_journal(study_dir)
    optuna_study = open_optuna_study(study, journal)
    plan = plan_resume(study, study_dir, optuna_study)
    if mirror:  # planning told Optuna what the tables know
        mirror.sync()
    if plan.recovered_epochs:  # before the recorder loads the tables, so the trials continue with them
        StudyTables(study_dir).append_epochs(plan.recovered_epochs)
    print(f"resuming {study.name}: {len(plan.continued)} trials to continue, {plan.new_trials} new "
          f"({plan.told} results told to Optuna from the tables)",
          file=out, flush=True)
    if plan.rebuilt:
        print(f"{JOURNAL_FILE}: lacked {plan.rebuilt} configurations the tables hold; told Optuna each once from "
              "the tables (parameters, value, grid point)", file=out, flush=True)
    budget_left = _budget_left(study, study_dir, plan, out)
    if plan.num_samples == 0:
        return finish(study_dir, TableRecorder(study, study_dir, trial_setup(study, study_dir)).loaded(),
                      total=study.num_trials)
    with ray_session(address, dashboard, stream):
        search = ResumingSearch(make_search(study, journal), study, plan, optuna_study)
        try:
            recorder = run_experiment(study, study_dir, study_trainable(study, study_dir), search, plan.num_samples,
                                      next_experiment_name(study_dir), stream, time_budget_s=budget_left)
        except Interrupted as stop:
            recorder, interrupted = stop.recorder, True
        else:
            interrupted = False
    return finish(study_dir, recorder, interrupted=interrupted, total=study.num_trials)


def _budget_left(study: Study, study_dir: Location, plan, out: TextIO) -> float | None:
    """Seconds of the study's `time_budget` left; when none is, nothing more runs (the plan is emptied)."""
    if study.time_budget_s is None:
        return None
    spent = StudyTables(study_dir).read_run_time()
    left = study.time_budget_s - spent
    if left <= 0 and plan.num_samples:
        print(f"time_budget spent ({spent:.0f} s of {study.time_budget_s:g} s): nothing more is run; "
              f"interrupted trials end early_stopped", file=out, flush=True)
        _stop_interrupted(study, study_dir)
        plan.continued, plan.new_trials = [], 0
    return left


def _stop_interrupted(study: Study, study_dir: Location) -> None:
    """End the trials a killed driver left running as `early_stopped`: the time budget stopped them."""
    recorder = TableRecorder(study, study_dir, trial_setup(study, study_dir)).loaded()
    stopped = [r for r in recorder.records.values() if r.status == "running"]
    for record in stopped:
        record.status, record.ended_at = "early_stopped", _now()
    recorder.tables.upsert_trials([recorder.trial_row(r) for r in stopped])
