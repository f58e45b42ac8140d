"""The YAML study language: parse a declaration, validate every field, name the path of any fault.

A study is refused before anything starts. Every error is a `StudyError` whose text is one line,
``<yaml.path>: <what is wrong and what would be right>``, for example
``parameters.temperature.min: must be > 0 for log_uniform (got -0.1)``.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from study_files.vocabulary import METRICS

METHODS = ("tpe", "random", "grid", "cmaes", "gp", "qmc")
GOALS = {"maximize": "max", "minimize": "min"}
SCHEDULERS = ("asha", "hyperband", "median", "none")
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "q_uniform")  # Optuna has no stepped log range
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class StudyError(ValueError):
    """A declaration that cannot run; `str()` is the one-line message shown to the user."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True)
class Parameter:
    """One searched parameter: a categorical list, a numeric range, or an augmentation set."""

    name: str
    kind: str  # "values" | "uniform" | "log_uniform" | "int_uniform" | "subset"
    values: tuple = ()  # the categorical choices (for "subset": comma-joined sorted names)
    low: float | None = None
    high: float | None = None
    step: float | None = None
    when: tuple = ()  # ((other parameter, (values it must have),), ...): exists only then

    def applies(self, chosen: dict[str, Any]) -> bool:
        """Whether this parameter exists given the values chosen so far (Optuna's define-by-run)."""
        return all(chosen.get(name) in values for name, values in self.when)

    @property
    def is_discrete(self) -> bool:
        return self.kind in ("values", "subset") or (self.kind == "int_uniform")

    def grid_values(self) -> list:
        """Every value a grid study visits (only for discrete parameters)."""
        if self.kind == "int_uniform":
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        return list(self.values)


@dataclass(frozen=True)
class EarlyStopping:
    type: str = "none"
    grace_period: int = 1
    reduction_factor: float = 3.0


@dataclass(frozen=True)
class Study:
    """A validated study declaration."""

    name: str
    metric: str
    goal: str  # "maximize" | "minimize"
    method: str
    trials: int
    seeds: int
    max_concurrent: int
    cpu: float
    gpu: float
    workers_per_trial: int
    early_stopping: EarlyStopping
    fixed: dict[str, Any]
    parameters: dict[str, Parameter]
    sampler_seed: int | None = None
    max_failures: int = 1
    time_budget_s: float | None = None
    description: str = ""
    baselines: tuple[str, ...] = ()  # evaluated once after the trials, with the trials' probes
    embeddings: int = 0  # test images whose h and g(h) of the best trial are exported (0: none)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def mode(self) -> str:
        """Ray Tune's spelling of the goal: "max" or "min"."""
        return GOALS[self.goal]

    @property
    def epochs(self) -> int:
        return int(self.fixed.get("epochs", _train_defaults().get("epochs", 1)))

    @property
    def num_trials(self) -> int:
        """Tune trials in all: configurations times seeds."""
        return self.trials * self.seeds

    def grid_size(self) -> int:
        return math.prod(len(p.grid_values()) for p in self.parameters.values())


# --- reading ---------------------------------------------------------------------------------


def load_study(path: str | Path) -> Study:
    """Read and validate a study file; raise `StudyError` naming the file or the YAML path."""
    path = Path(path)
    if not path.exists():
        raise StudyError(str(path), "no such file")
    if path.is_dir():
        raise StudyError(str(path), "is a directory, expected a study YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise StudyError(str(path), f"cannot be read ({err.__class__.__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise StudyError(str(path), f"not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise StudyError(
            str(path), f"a study must be a YAML mapping of keys such as name, metric, parameters (got {_kind(data)})"
        )
    return parse_study(data)


def parse_study(data: dict[str, Any]) -> Study:
    """Validate a study given as a mapping (the parsed YAML)."""
    _check_keys(data, _TOP_KEYS, "")
    for required in ("name", "metric"):
        if required not in data:
            raise StudyError(required, "missing; every study needs it")

    name = _string(data["name"], "name")
    if not NAME_PATTERN.match(name):
        raise StudyError("name", f"must be letters, digits, '.', '_' or '-' (it names a folder), got {name!r}")

    metric_name, goal = _metric(data["metric"])
    method = _choice(data.get("method", "tpe"), METHODS, "method")
    seeds = _int(data.get("seeds", 1), "seeds", minimum=1)
    max_concurrent = _int(data.get("max_concurrent", 2), "max_concurrent", minimum=1)
    cpu, gpu = _resources(data.get("resources", {}))
    workers = _int(data.get("workers_per_trial", 1), "workers_per_trial", minimum=1)
    early = _early_stopping(data.get("early_stopping"))
    sampler_seed = None if data.get("sampler_seed") is None else _int(data["sampler_seed"], "sampler_seed", minimum=0)
    max_failures = _int(data.get("max_failures", 1), "max_failures", minimum=0)
    time_budget = None
    if data.get("time_budget") is not None:
        time_budget = _number(data["time_budget"], "time_budget")
        if time_budget <= 0:
            raise StudyError("time_budget", f"must be > 0 seconds (got {time_budget})")
    description = _string(data.get("description", ""), "description") if data.get("description") else ""
    baselines = _baselines(data.get("baselines"))
    embeddings = _embeddings(data.get("embeddings"))

    fixed = _mapping(data.get("fixed", {}) or {}, "fixed")
    for key in fixed:
        _check_train_field(key, f"fixed.{key}")
    if "seed" in fixed and seeds > 1:
        raise StudyError("fixed.seed", "cannot be fixed when seeds > 1 (each repeat draws its own seed)")
    raw_params = _mapping(data.get("parameters", {}) or {}, "parameters")
    if not raw_params:
        raise StudyError("parameters", "must declare at least one parameter to search over")
    for pname in raw_params:  # before any check that names fields by their fixed.* path
        _check_train_field(pname, f"parameters.{pname}")
    # Fixed values are checked together with one value of each searched field, so that a check
    # across fields (warmup_epochs <= epochs) sees a real configuration, not the trainer's defaults.
    base = {**fixed, **{n: r for n, r in ((n, _representative(spec)) for n, spec in raw_params.items()) if r is not None}}
    while True:
        try:
            _check_train_config(base, lambda f: f"fixed.{f}")
            break
        except StudyError as err:
            field_name = err.path.removeprefix("fixed.")
            if field_name not in raw_params or field_name not in base:
                raise
            del base[field_name]  # a bad searched value: reported below at its own YAML path
    parameters = {}
    for pname, spec in raw_params.items():
        path = f"parameters.{pname}"
        _check_train_field(pname, path)
        if pname in fixed:
            raise StudyError(path, f"is also in fixed; a parameter is either fixed or searched")
        if pname == "seed":
            raise StudyError(path, "cannot be searched; use `seeds: N` to repeat configurations")
        when = ()
        if isinstance(spec, dict) and "when" in spec:
            when = _when(spec["when"], f"{path}.when", parameters)
            spec = {k: v for k, v in spec.items() if k != "when"}
        parameters[pname] = replace(_parameter(pname, spec, path, base), when=when)

    if method == "grid":
        for p in parameters.values():
            if p.when:
                raise StudyError(f"parameters.{p.name}.when", "method grid cannot search conditional parameters (use tpe or random)")
            if not p.is_discrete:
                raise StudyError(
                    f"parameters.{p.name}",
                    "method grid needs discrete parameters (values, int_uniform or an augmentation set), "
                    f"got distribution {p.kind}",
                )
    if method in ("cmaes", "qmc") and all(p.kind in ("values", "subset") for p in parameters.values()):
        raise StudyError("method", f"{method} samples numeric ranges; every parameter here is categorical (use tpe, random or grid)")

    grid = math.prod(len(p.grid_values()) for p in parameters.values()) if method == "grid" else None
    if "trials" in data:
        trials = _int(data["trials"], "trials", minimum=1)
    elif grid is not None:
        trials = grid
    else:
        raise StudyError("trials", "missing; say how many configurations to try (e.g. trials: 16)")

    if workers > 1:
        # The global batch is split evenly over the DDP workers.
        sizes = [("fixed.batch_size", fixed["batch_size"])] if "batch_size" in fixed else []
        if "batch_size" in parameters and parameters["batch_size"].kind == "values":
            sizes += [(f"parameters.batch_size.values[{i}]", v) for i, v in enumerate(parameters["batch_size"].values)]
        for path, size in sizes:
            if size % workers:
                raise StudyError(path, f"must be divisible by workers_per_trial {workers} (got {size})")

    return Study(
        name=name,
        metric=metric_name,
        goal=goal,
        method=method,
        trials=trials,
        seeds=seeds,
        max_concurrent=max_concurrent,
        cpu=cpu,
        gpu=gpu,
        workers_per_trial=workers,
        early_stopping=early,
        fixed=fixed,
        parameters=parameters,
        sampler_seed=sampler_seed,
        max_failures=max_failures,
        time_budget_s=time_budget,
        description=description,
        baselines=baselines,
        embeddings=embeddings,
        raw=data,
    )


# --- the pieces ------------------------------------------------------------------------------

_TOP_KEYS = (
    "name", "description", "metric", "method", "trials", "seeds", "max_concurrent", "resources",
    "workers_per_trial", "early_stopping", "fixed", "parameters", "sampler_seed", "max_failures",
    "time_budget", "baselines", "embeddings",
)
BASELINES = ("random_init", "pca")  # trainers.baselines.BASELINES, without importing torch here


def _baselines(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise StudyError("baselines", f"must be a list of {', '.join(BASELINES)} (got {_kind(value)})")
    for i, name in enumerate(value):
        _choice(name, BASELINES, f"baselines[{i}]")
    if len(set(value)) != len(value):
        raise StudyError("baselines", f"names must not repeat (got {', '.join(map(str, value))})")
    return tuple(value)


def _embeddings(value: Any) -> int:
    """`embeddings: N` exports N test images of the best trial; true means 500, false or 0 none."""
    if value is None or value is False:
        return 0
    if value is True:
        return 500
    sample = _int(value, "embeddings", minimum=0)
    if 0 < sample < 10:
        raise StudyError("embeddings", f"must be 0 (none) or at least 10 test images for a t-SNE (got {sample})")
    return sample


def _metric(value: Any) -> tuple[str, str]:
    if isinstance(value, str):
        value = {"name": value}
    spec = _mapping(value, "metric")
    _check_keys(spec, ("name", "goal"), "metric")
    if "name" not in spec:
        raise StudyError("metric.name", f"missing; one of {', '.join(METRICS)}")
    name = _choice(spec["name"], METRICS, "metric.name")
    goal = _choice(spec.get("goal", "maximize" if name != "loss" else "minimize"), tuple(GOALS), "metric.goal")
    return name, goal


def _resources(value: Any) -> tuple[float, float]:
    spec = _mapping(value or {}, "resources")
    _check_keys(spec, ("cpu", "gpu"), "resources")
    cpu = _number(spec.get("cpu", 1), "resources.cpu")
    gpu = _number(spec.get("gpu", 0), "resources.gpu")
    if cpu <= 0:
        raise StudyError("resources.cpu", f"must be > 0 (got {cpu})")
    if gpu < 0:
        raise StudyError("resources.gpu", f"must be >= 0 (got {gpu})")
    if gpu > 1 and gpu != int(gpu):
        raise StudyError("resources.gpu", f"must be a fraction <= 1 or a whole number of GPUs (got {gpu})")
    return cpu, gpu


def _early_stopping(value: Any) -> EarlyStopping:
    if value is None or value == "none":
        return EarlyStopping()
    if isinstance(value, str):
        value = {"type": value}
    spec = _mapping(value, "early_stopping")
    _check_keys(spec, ("type", "grace_period", "reduction_factor"), "early_stopping")
    kind = _choice(spec.get("type", "asha"), SCHEDULERS, "early_stopping.type")
    grace = _int(spec.get("grace_period", 1), "early_stopping.grace_period", minimum=1)
    factor = _number(spec.get("reduction_factor", 3), "early_stopping.reduction_factor")
    if factor <= 1:
        raise StudyError("early_stopping.reduction_factor", f"must be > 1 (got {factor})")
    return EarlyStopping(type=kind, grace_period=grace, reduction_factor=float(factor))


def _representative(spec: Any) -> Any:
    """One value a parameter can take (None when the declaration is malformed: checked later)."""
    if not isinstance(spec, dict):
        return None
    if isinstance(spec.get("values"), list) and spec["values"]:
        return spec["values"][0]
    if "distribution" in spec and isinstance(spec.get("min"), (int, float)):
        return spec["min"]
    for key in ("subset_of", "pairs_of"):
        if isinstance(spec.get(key), list) and spec[key]:
            return spec[key][:1]
    return None


def _parameter(name: str, spec: Any, path: str, fixed: dict[str, Any]) -> Parameter:
    if not isinstance(spec, dict):
        raise StudyError(
            path,
            f"must be a mapping such as {{values: [...]}} or {{distribution: uniform, min: ..., max: ...}} (got {_kind(spec)})",
        )
    forms = [k for k in ("values", "distribution", "subset_of", "pairs_of") if k in spec]
    if not forms:
        _check_keys(spec, ("values", "distribution", "min", "max", "q", "subset_of", "pairs_of", "min_size", "max_size"), path)
        raise StudyError(path, "needs one of values, distribution, subset_of or pairs_of")
    if len(forms) > 1:
        raise StudyError(path, f"has both {forms[0]} and {forms[1]}; give exactly one")
    form = forms[0]

    if form == "values":
        _check_keys(spec, ("values",), path)
        values = spec["values"]
        if not isinstance(values, list):
            raise StudyError(f"{path}.values", f"must be a list (got {_kind(values)})")
        if not values:
            raise StudyError(f"{path}.values", "is empty; list at least one value")
        for i, v in enumerate(values):
            if not isinstance(v, (str, int, float, bool)) or v is None:
                raise StudyError(f"{path}.values[{i}]", f"must be a string, number or boolean (got {_kind(v)})")
            _check_train_config({**fixed, name: v}, lambda f, i=i: f"{path}.values[{i}]")
        if len(set(map(repr, values))) != len(values):
            raise StudyError(f"{path}.values", "lists a value twice")
        return Parameter(name, "values", values=tuple(values))

    if form == "distribution":
        _check_keys(spec, ("distribution", "min", "max", "q"), path)
        dist = _choice(spec["distribution"], DISTRIBUTIONS, f"{path}.distribution")
        for bound in ("min", "max"):
            if bound not in spec:
                raise StudyError(f"{path}.{bound}", f"missing; {dist} needs min and max")
        is_int = dist == "int_uniform"
        conv = (lambda v, p: _int(v, p)) if is_int else _number
        low, high = conv(spec["min"], f"{path}.min"), conv(spec["max"], f"{path}.max")
        step = None
        if "q" in spec or dist.startswith("q_"):
            if "q" not in spec:
                raise StudyError(f"{path}.q", f"missing; {dist} needs a step q")
            step = conv(spec["q"], f"{path}.q")
            if step <= 0:
                raise StudyError(f"{path}.q", f"must be > 0 (got {step})")
        if "log" in dist and low <= 0:
            raise StudyError(f"{path}.min", f"must be > 0 for {dist} (got {low})")
        if low > high:
            raise StudyError(path, f"min must be <= max (got min {low}, max {high})")
        if low == high:
            raise StudyError(path, f"min and max are both {low}: an empty range (put the value in fixed instead)")
        if step is not None and step > high - low:
            raise StudyError(f"{path}.q", f"step {step} is larger than the range {low}..{high}")
        if "log" in dist and step is not None:
            raise StudyError(f"{path}.q", "a log distribution cannot have a step q (Optuna does not support both)")
        for bound, v in (("min", low), ("max", high)):
            _check_train_config({**fixed, name: v}, lambda f, b=bound: f"{path}.{b}")
        kind = {"uniform": "uniform", "q_uniform": "uniform", "log_uniform": "log_uniform",
                "int_uniform": "int_uniform"}[dist]
        return Parameter(name, kind, low=low, high=high, step=step)

    # Augmentation sets: each candidate set is one categorical value, a sorted comma-joined string,
    # the same spelling the trials table uses for param.augmentations.
    if form == "subset_of":
        _check_keys(spec, ("subset_of", "min_size", "max_size"), path)
        names = _name_list(spec["subset_of"], f"{path}.subset_of", name, fixed)
        lo = _int(spec.get("min_size", 1), f"{path}.min_size", minimum=0)
        hi = _int(spec.get("max_size", len(names)), f"{path}.max_size", minimum=0)
        if hi > len(names):
            raise StudyError(f"{path}.max_size", f"must be <= {len(names)}, the number of augmentations listed (got {hi})")
        if lo > hi:
            raise StudyError(path, f"min_size must be <= max_size (got min_size {lo}, max_size {hi})")
        sets = [c for k in range(lo, hi + 1) for c in itertools.combinations(sorted(names), k)]
    else:
        _check_keys(spec, ("pairs_of",), path)
        names = _name_list(spec["pairs_of"], f"{path}.pairs_of", name, fixed)
        sets = [c for k in (1, 2) for c in itertools.combinations(sorted(names), k)]
    return Parameter(name, "subset", values=tuple(",".join(c) for c in sets))


def _when(value: Any, path: str, earlier: dict[str, Parameter]) -> tuple:
    """`when: {loss: nt_xent}` or `{loss: [nt_xent, nt_logistic]}`: conditions on earlier categorical parameters."""
    spec = _mapping(value, path)
    if not spec:
        raise StudyError(path, "is empty; name an earlier parameter and its value(s)")
    conditions = []
    for name, wanted in spec.items():
        if name not in earlier:
            raise StudyError(f"{path}.{name}", "must name a parameter declared above this one"
                             + (_suggest(str(name), tuple(earlier)) if earlier else ""))
        choices = earlier[name].values
        if earlier[name].kind not in ("values", "subset"):
            raise StudyError(f"{path}.{name}", "must name a parameter with values (a categorical one)")
        wanted = wanted if isinstance(wanted, list) else [wanted]
        for i, v in enumerate(wanted):
            if v not in choices:
                raise StudyError(f"{path}.{name}", f"{v!r} is not one of its values ({', '.join(map(str, choices))})")
        conditions.append((name, tuple(wanted)))
    return tuple(conditions)


def _name_list(value: Any, path: str, param: str, fixed: dict[str, Any]) -> list[str]:
    if not isinstance(value, list) or not value:
        raise StudyError(path, f"must be a non-empty list of augmentation names (got {_kind(value)})")
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise StudyError(f"{path}[{i}]", f"must be an augmentation name (got {_kind(v)})")
        _check_train_config({**fixed, param: [v]}, lambda f, i=i: f"{path}[{i}]")
    if len(set(value)) != len(value):
        raise StudyError(path, "lists an augmentation twice")
    return list(value)


# --- checks against the trainer --------------------------------------------------------------


def _train_fields() -> tuple[str, ...]:
    from trainers import TrainConfig

    return TrainConfig.option_names()


def _train_defaults() -> dict[str, Any]:
    from trainers import TrainConfig

    return TrainConfig.from_dict({}).to_dict()


def _check_train_field(key: Any, path: str) -> None:
    fields = _train_fields()
    if not isinstance(key, str) or key not in fields:
        raise StudyError(path, f"unknown training option{_suggest(str(key), fields)}")


def _check_train_config(values: dict[str, Any], path_of: Callable[[str], str]) -> None:
    """Let the trainer validate the values; report its complaint at the YAML path it concerns."""
    from trainers import ConfigError, TrainConfig

    try:
        TrainConfig.from_dict(values)
    except ConfigError as err:
        raise StudyError(path_of(err.field), err.message) from None


# --- small validators ------------------------------------------------------------------------


def _check_keys(spec: dict, allowed: tuple[str, ...], path: str) -> None:
    for key in spec:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise StudyError(where, f"unknown key{_suggest(str(key), allowed)}")


def _suggest(key: str, options: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; expected one of {', '.join(options)}"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _mapping(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise StudyError(path, f"must be a mapping (got {_kind(value)})")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise StudyError(path, f"must be a non-empty string (got {_kind(value)})")
    return value


def _int(value: Any, path: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StudyError(path, f"must be a whole number (got {_kind(value)})")
    if minimum is not None and value < minimum:
        raise StudyError(path, f"must be >= {minimum} (got {value})")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StudyError(path, f"must be a number (got {_kind(value)})")
    return value


def _choice(value: Any, options: tuple[str, ...], path: str) -> str:
    if not isinstance(value, str) or value not in options:
        raise StudyError(path, f"must be one of {', '.join(options)} (got {_kind(value)}){_near(value, options)}")
    return value


def _near(value: Any, options: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
