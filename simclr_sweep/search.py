"""A study's parameters as Optuna's define-by-run space, and the sampler its `method` names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from simclr_sweep.study import Parameter, Study


@dataclass(frozen=True)
class DefineByRun:
    """The function OptunaSearch calls to draw one configuration (Optuna's define-by-run style).

    A module-level class rather than a closure: Tune pickles the searcher with each snapshot.
    """

    parameters: tuple[Parameter, ...]

    def __call__(self, trial: optuna.Trial) -> None:
        for p in self.parameters:
            if p.applies(trial.params):
                _suggest(trial, p)


def define_by_run(study: Study) -> DefineByRun:
    """The study's search space as a define-by-run function."""
    return DefineByRun(tuple(study.parameters.values()))


def _suggest(trial: optuna.Trial, p: Parameter) -> Any:
    if p.kind in ("values", "subset"):
        return trial.suggest_categorical(p.name, list(p.values))
    if p.kind == "int_uniform":
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1))
    if p.kind == "log_uniform":
        return trial.suggest_float(p.name, p.low, p.high, log=True)
    return trial.suggest_float(p.name, p.low, p.high, step=p.step)


class _TuneGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, without its `study.stop()` once the grid is covered.

    Under Tune the trial count (`num_samples`) ends the study, and `study.stop()` raises outside
    `study.optimize`, which is how OptunaSearch drives Optuna (ask and tell).
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None

    def before_trial(self, study, trial) -> None:
        """Optuna's choice of a grid point, without its shortcut "trial number n takes point n" for
        the first trials: a resume that rebuilt a lost journal holds points under other numbers."""
        if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return
        unvisited = self._get_unvisited_grid_ids(study) or list(range(len(self._all_grids)))
        grid_id = int(self._rng.rng.choice(sorted(unvisited)))
        study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
        study._storage.set_trial_system_attr(trial._trial_id, "grid_id", grid_id)


def make_sampler(study: Study) -> optuna.samplers.BaseSampler:
    """The Optuna sampler for `study.method`, seeded by `sampler_seed` when given."""
    seed = study.sampler_seed
    if study.method == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if study.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if study.method == "grid":
        grid = {p.name: p.grid_values() for p in study.parameters.values()}
        return _TuneGridSampler(grid, seed=seed)
    if study.method == "cmaes":
        # CMA-ES covers the numeric parameters; categorical ones fall back to its independent sampler.
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if study.method == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if study.method == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"method: unknown sampler {study.method!r}")
