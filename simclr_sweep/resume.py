"""Resume an interrupted study from its own records, not from Tune's periodic snapshot.

Tune writes its experiment state every so often, so a driver killed between snapshots forgets
trials that started (or even finished) after the last one. Our tables and the
Optuna journal are written at each event, so they decide:

- a trial the tables show terminal is never run again and keeps its row;
- a trial the tables show `running` continues from its last checkpoint under its own id;
- repeats of a configuration that never started are started (`seeds > 1`);
- Optuna learns every result exactly once: trials it was never told of are told from the tables
  (or when their continuation ends), and suggestions Optuna made that never started are run now
  (a grid sampler counts them as taken, so dropping them would lose their grid points);
- the study ends with exactly the declared number of trials.

The continuation is a new Tune experiment (`tune-resume-<k>/`) beside the first (`tune/`).
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import Searcher

from simclr_sweep.recording import params_from_row
from simclr_sweep.search import define_by_run, make_sampler
from simclr_sweep.study import Study
from simclr_sweep.trainable import REPEAT, RESUME_FROM, RESUME_OF, SUGGESTION, tune_config
from study_files.checkpoints import checkpoint_files
from study_files.locations import Location, StudyFiles
from study_files.tables import StudyTables
from study_files.errors import EnvironmentFault
from study_files.vocabulary import CHECKPOINT_FILE, JOURNAL_FILE, METRICS, STATUSES

TERMINAL = tuple(s for s in STATUSES if s != "running")


@dataclass
class PendingTell:
    """An Optuna trial that learns its value once every repeat of its configuration has ended."""

    number: int
    waiting: set[str]  # table trial ids still running
    values: list[float] = field(default_factory=list)


@dataclass
class ResumePlan:
    """What a resumed study runs: continued trials first, then new suggestions."""

    # Trials to run first: each one's parameters and, under the bookkeeping names (REPEAT, RESUME_OF,
    # RESUME_FROM, SUGGESTION of simclr_sweep.trainable), what it continues.
    continued: list[dict[str, Any]]
    new_trials: int  # trials the searcher still has to suggest
    pending: dict[str, PendingTell]  # config key -> the Optuna trial waiting for it
    told: int = 0  # Optuna trials told from the tables during planning
    failed_suggestions: int = 0  # duplicate Optuna suggestions that never ran, marked failed
    rebuilt: int = 0  # configurations the tables hold that the journal had lost, told to Optuna again
    recovered_epochs: list[dict[str, Any]] = field(default_factory=list)  # epoch rows only a checkpoint held

    @property
    def num_samples(self) -> int:
        return len(self.continued) + self.new_trials


def resume_point(study_dir: Location, trial_id: str, recorded_epochs: int | None = None
                 ) -> tuple[Location | None, dict[str, float] | None]:
    """Where an interrupted trial continues: (checkpoint file or None, epoch row the tables missed or None).

    Tune stores a trial's checkpoint before the driver hears of its epoch, so a driver killed in
    between leaves a checkpoint one epoch ahead of the epochs table. Continuing from it would leave
    that epoch's row missing for ever; the checkpoint carries that epoch's metrics, so the row is
    handed back to be written. A checkpoint further ahead than that is passed over for an older one.
    A file cut short by the kill (Tune was copying it into place) is passed over too.
    A remote study's checkpoint is given by its URI (the trial downloads it).
    """
    from trainers.training.state import CheckpointError, load_checkpoint  # torch, only when a resume reads checkpoints

    found = []
    for path, local, mtime in checkpoint_files(study_dir, trial_id, CHECKPOINT_FILE):
        try:
            state = load_checkpoint(local)
        except CheckpointError:
            continue
        found.append((int(state.get("epoch", 0)), mtime, path, state.get("metrics")))
    for epoch, _, path, metrics in sorted(found, key=lambda f: (f[0], f[1]), reverse=True):
        if recorded_epochs is None or epoch <= recorded_epochs:
            return path, None
        if epoch == recorded_epochs + 1 and isinstance(metrics, dict):
            return path, _epoch_row(metrics, epoch)
    return None, None


def _epoch_row(metrics: dict[str, Any], epoch: int) -> dict[str, float]:
    row = {name: float(metrics[name]) for name in METRICS
           if isinstance(metrics.get(name), (int, float)) and not isinstance(metrics.get(name), bool)}
    row["epoch"] = float(epoch)
    return row


def repair_journal(path: Path) -> int:
    """Cut a last record the kill left half-written from the Optuna journal; the bytes cut (0: none).

    Optuna skips such a line when it reads the journal, but its next record would be appended to
    the same line, making a line no one can read: the study could neither ask nor load again.
    A record lost this way is one the tables still hold (they are written first, or the trial is
    continued), and planning tells Optuna from the tables.
    """
    if not path.is_file():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(keep)
    return len(data) - keep


def next_experiment_name(study_dir: Location) -> str:
    taken = set(StudyFiles(study_dir).list())
    k = 1
    while f"tune-resume-{k}" in taken:
        k += 1
    return f"tune-resume-{k}"


def _config_key(study: Study, params: dict[str, Any]) -> str:
    """Identifies a configuration by its searched values, the same whether read from Optuna or a table."""
    def norm(v: Any) -> Any:
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, (int, float)):
            return repr(float(v))
        return str(v)

    return json.dumps({name: norm(params.get(name)) for name in study.parameters}, sort_keys=True)


def plan_resume(study: Study, study_dir: Location, optuna_study) -> ResumePlan:
    """Read the tables, reconcile the Optuna study with them, and say what is left to run."""
    by_config, recorded = _recorded(study, study_dir)
    _refuse_lost_rows(study, study_dir, optuna_study, by_config)
    base_seed = int(study.fixed.get("seed", 0))
    continued: list[dict[str, Any]] = []
    recovered: list[dict[str, Any]] = []
    for group in by_config.values():
        for row in group:
            if row["status"] not in TERMINAL:
                continued.append(_continuation(study, study_dir, row, recorded, recovered))
        # Repeats of a configuration the driver never got to start.
        started = {int(r["seed"]) - base_seed for r in group}
        for index in range(study.seeds):
            if study.seeds > 1 and index not in started:
                continued.append({**group[0]["_params"], REPEAT: index})

    pending, told, failed, unstarted = _reconcile_optuna(study, optuna_study, by_config, base_seed)
    rebuilt = _rebuild_lost(study, optuna_study, by_config, base_seed, pending)
    for number, params in unstarted:
        for index in range(study.seeds):
            config = {**params, SUGGESTION: number}
            if study.seeds > 1:
                config[REPEAT] = index
            continued.append(config)
    new_configs = max(study.trials - len(by_config) - len(unstarted), 0)
    return ResumePlan(
        continued=continued,
        new_trials=new_configs * study.seeds,
        pending=pending,
        told=told,
        failed_suggestions=failed,
        rebuilt=rebuilt,
        recovered_epochs=recovered,
    )


def _refuse_lost_rows(study: Study, study_dir: Location, optuna_study, by_config) -> None:
    """Refuse, naming the trials table, when it lacks configurations Optuna saw finish: resuming would run them again."""
    finished = optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    lost = [t for t in finished if _config_key(study, t.params) not in by_config]
    if lost:
        where = StudyTables(study_dir).trials_path
        raise EnvironmentFault(str(where), f"lacks {len(lost)} trials that {JOURNAL_FILE} holds as finished; restore it "
                                           "from a copy (resuming without them would run them again)")


def _recorded(study: Study, study_dir: Location) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """The tables' trial rows grouped by configuration (each with its `_params`), and each trial's epochs recorded."""
    tables = StudyTables(study_dir)
    trials = tables.read_trials()
    rows = trials.to_dict("records") if len(trials) else []
    epochs = tables.read_epochs() if rows else None
    recorded = (epochs.groupby("trial_id")["epoch"].max().astype(int).to_dict()
                if epochs is not None and len(epochs) else {})
    by_config: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        row["_params"] = {k: v for k, v in params_from_row(row).items() if k in study.parameters}
        by_config.setdefault(_config_key(study, row["_params"]), []).append(row)
    return by_config, recorded


def _continuation(study: Study, study_dir: Location, row: dict[str, Any], recorded: dict[str, int],
                  recovered: list[dict[str, Any]]) -> dict[str, Any]:
    """An interrupted trial continued under its own id from its checkpoint; an epoch only that holds goes to `recovered`."""
    entry = {**row["_params"], RESUME_OF: row["trial_id"]}
    if study.seeds > 1:
        entry[REPEAT] = int(row["seed"]) - int(study.fixed.get("seed", 0))
    checkpoint, missed = resume_point(study_dir, row["trial_id"], recorded.get(row["trial_id"], 0))
    if checkpoint is not None:
        entry[RESUME_FROM] = str(checkpoint)
    if missed is not None:
        recovered.append({"trial_id": row["trial_id"], **missed})
    return entry


def _reconcile_optuna(study: Study, optuna_study, by_config, base_seed: int):
    """Tell Optuna what the tables know; keep waiting for what still runs or never started.

    Returns (pending tells, trials told, duplicates failed, [(number, params)] of suggestions to run).
    """
    pending: dict[str, PendingTell] = {}
    unstarted: list[tuple[int, dict[str, Any]]] = []
    told = failed = 0
    column = f"last.{study.metric}"
    for ot_trial in optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        params = ot_trial.params
        if not _fully_drawn(study, params):
            params = _finish_drawing(study, optuna_study, ot_trial)
        key = _config_key(study, params)
        group = by_config.get(key)
        if key in pending:
            optuna_study.tell(ot_trial.number, state=optuna.trial.TrialState.FAIL)
            failed += 1
            continue
        if not group:
            params = {k: v for k, v in params.items() if k in study.parameters}
            unstarted.append((ot_trial.number, params))
            pending[key] = PendingTell(number=ot_trial.number, waiting={
                _suggestion_id(ot_trial.number, i) for i in range(study.seeds)})
            continue
        values = [float(r[column]) for r in group
                  if r["status"] in TERMINAL and column in r and r[column] is not None and math.isfinite(r[column])]
        waiting = {r["trial_id"] for r in group if r["status"] not in TERMINAL}
        started = {int(r["seed"]) - base_seed for r in group}
        waiting |= {f"repeat-{i}" for i in range(study.seeds) if study.seeds > 1 and i not in started}
        if waiting:
            pending[key] = PendingTell(number=ot_trial.number, waiting=waiting, values=values)
        else:
            _tell(optuna_study, ot_trial.number, values)
            told += 1
    return pending, told, failed, unstarted


def _rebuild_lost(study: Study, optuna_study, by_config, base_seed: int, pending: dict[str, PendingTell]) -> int:
    """Tell Optuna once each configuration the tables hold but the journal lost (emptied, deleted, cut).

    Each is enqueued with its parameters and asked, so Optuna holds it as it would have; a grid
    sampler's point is marked taken (its `grid_id`), so the grid runs each point exactly once. A
    configuration with trials still to end waits for them (`pending`), as any other does.
    Returns how many were rebuilt.
    """
    known = {_config_key(study, t.params) for t in optuna_study.get_trials(deepcopy=False)}
    lost = [(key, group) for key, group in by_config.items() if key not in known]
    if not lost:
        return 0
    own = optuna_study.sampler
    optuna_study.sampler = sampler = make_sampler(study)
    column = f"last.{study.metric}"
    try:
        for key, group in lost:
            optuna_study.enqueue_trial(group[0]["_params"], skip_if_exists=False)
            trial = optuna_study.ask()
            define_by_run(study)(trial)
            _take_grid_point(sampler, optuna_study, trial)
            values = [float(r[column]) for r in group if r["status"] in TERMINAL and r.get(column) is not None
                      and math.isfinite(r[column])]
            waiting = {r["trial_id"] for r in group if r["status"] not in TERMINAL}
            started = {int(r["seed"]) - base_seed for r in group}
            waiting |= {f"repeat-{i}" for i in range(study.seeds) if study.seeds > 1 and i not in started}
            if waiting:
                pending[key] = PendingTell(number=trial.number, waiting=waiting, values=values)
            else:
                _tell(optuna_study, trial.number, values)
    finally:
        optuna_study.sampler = own
    return len(lost)


def _take_grid_point(sampler, optuna_study, trial) -> None:
    """Mark an enqueued trial's grid point as the grid sampler marks those it chose (it leaves enqueued ones unmarked)."""
    if not isinstance(sampler, optuna.samplers.GridSampler):
        return
    # Private: Optuna counts a grid point taken by the trial's `grid_id` system attribute and has no
    # public way to set it for an enqueued trial.
    point = tuple(trial.params.get(name) for name in sampler._param_names)
    for grid_id, grid in enumerate(sampler._all_grids):
        if all(_same_value(a, b) for a, b in zip(grid, point)):
            storage = optuna_study._storage
            storage.set_trial_system_attr(trial._trial_id, "search_space", sampler._search_space)
            storage.set_trial_system_attr(trial._trial_id, "grid_id", grid_id)
            return


def _same_value(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isclose(a, b))


def _fully_drawn(study: Study, params: dict[str, Any]) -> bool:
    """Whether a suggestion has a value for every parameter that applies to it (`when` conditions)."""
    return all(p.name in params for p in study.parameters.values() if p.applies(params))


def _finish_drawing(study: Study, optuna_study, ot_trial) -> dict[str, Any]:
    """Draw the rest of a suggestion the driver was killed while drawing; its parameters.

    Optuna writes a suggestion to the journal in steps (the trial, the grid sampler's grid_id, then
    one record per parameter), and Tune asks for the next suggestion just as a trial ends, which
    is when a kill is likely. A suggestion cut short would otherwise run with the trainer's
    defaults for what it lacks, and a grid sampler would count its grid point as taken: that grid
    point would never run and another would run twice. The study's own sampler finishes it, as
    it would have: the grid sampler gives the grid point of the trial's grid_id (assigning one if
    the kill came before it did), the others draw the missing values.
    """
    own = optuna_study.sampler
    optuna_study.sampler = make_sampler(study)
    try:
        # Private `_trial_id`: Optuna has no public way to go on drawing a RUNNING trial (ask() makes a
        # new one), and the Trial that does needs the storage's id, which only FrozenTrial holds.
        define_by_run(study)(optuna.trial.Trial(optuna_study, ot_trial._trial_id))
    finally:
        optuna_study.sampler = own
    return next(t.params for t in optuna_study.get_trials(deepcopy=False) if t.number == ot_trial.number)


def _suggestion_id(number: int, index: int) -> str:
    return f"suggestion-{number}-{index}"


def _tell(optuna_study, number: int, values: list[float]) -> None:
    if values:
        optuna_study.tell(number, sum(values) / len(values))
    else:
        optuna_study.tell(number, state=optuna.trial.TrialState.FAIL)


class ResumingSearch(Searcher):
    """Issues the plan's continued trials first, then defers to the study's own searcher."""

    def __init__(self, inner: Searcher, study: Study, plan: ResumePlan, optuna_study):
        super().__init__(metric=study.metric, mode=study.mode)
        self.inner = inner
        self.study = study
        self.queue = list(plan.continued)
        self.pending = plan.pending
        self.optuna_study = optuna_study
        self.mine: dict[str, dict[str, Any]] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str):
        if self.queue:
            entry = self.queue.pop(0)
            self.mine[trial_id] = entry
            params = {k: v for k, v in entry.items() if k in self.study.parameters}
            return tune_config(params, {k: v for k, v in entry.items() if k not in params})
        return self.inner.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.mine:
            self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        entry = self.mine.pop(trial_id, None)
        if entry is None:
            self.inner.on_trial_complete(trial_id, result=result, error=error)
            return
        key = _config_key(self.study, entry)
        waiting = self.pending.get(key)
        if waiting is None:
            return
        value = (result or {}).get(self.study.metric)
        if not error and value is not None and math.isfinite(value):
            waiting.values.append(float(value))
        if SUGGESTION in entry:
            done_id = _suggestion_id(entry[SUGGESTION], entry.get(REPEAT, 0))
        else:
            done_id = entry.get(RESUME_OF) or f"repeat-{entry.get(REPEAT, 0)}"
        waiting.waiting.discard(done_id)
        if not waiting.waiting:
            _tell(self.optuna_study, waiting.number, waiting.values)
            del self.pending[key]

    def save(self, checkpoint_path: str) -> None:
        # Tune snapshots the searcher; our resume never restores from it, but keep it readable.
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"queue": self.queue, "mine": self.mine}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.queue, self.mine = state["queue"], state["mine"]
