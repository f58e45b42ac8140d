"""The YAML study language: parse a declaration, validate every field, name the path of any fault.

A study is refused before anything starts. Every error is a `trainers.checks.ConfigError` whose
text is one line, ``<yaml.path>: <what is wrong and what would be right>``, for example
``parameters.temperature.min: must be > 0 for log_uniform (got -0.1)``.

Validation is a structural pass over the YAML (keys, kinds, ranges) and then one check of the
values by the trainer (`TrainConfig`), which imports torch: a driver that only schedules trials
validates in a child process (`load_study_in_child`) and never holds torch.
"""

from __future__ import annotations

import itertools
import math
import os
import pickle
import re
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from simclr_sweep.loggers import LOGGERS, not_installed
from study_files.vocabulary import BASELINES, METRICS
from trainers.checks import (
    ConfigError, described, finite, hint, known_keys, mapping, one_of, read_yaml, text, unknown, whole_number,
)

METHODS = ("tpe", "random", "grid", "cmaes", "gp", "qmc")
GOALS = {"maximize": "max", "minimize": "min"}
SCHEDULERS = ("asha", "hyperband", "median", "none")
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "q_uniform")  # Optuna has no stepped log range
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # whole names only: use fullmatch (`$` lets a newline end one)

# Where each value a searched parameter can take sits in the YAML: (yaml path, value), first one first.
Values = list[tuple[str, Any]]


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
class Segmentation:
    """`finetune.segmentation`: fine-tune the best encoder's trunk on `image,labelmap` pairs, scored by mean IoU."""

    file_list: str  # absolute: the workers read it
    test_list: str | None = None  # None: a seeded share of file_list is held out
    num_classes: int | None = None  # None: the largest class id in the maps + 1
    image_size: int | None = None  # None: trainers.evaluation.protocols.SEGMENTATION_IMAGE_SIZE


@dataclass(frozen=True)
class Finetune:
    """`finetune:` what the best trial's encoder is fine-tuned on after the trials (None: FinetuneConfig's default)."""

    labels: tuple[float, ...] = ()  # fractions of the labelled training set, class-balanced
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    segmentation: Segmentation | None = None


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
    epochs: int  # the fixed epochs, else the trainer's default (what the schedulers' rungs count to)
    sampler_seed: int | None = None
    max_failures: int = 1
    time_budget_s: float | None = None
    baselines: tuple[str, ...] = ()  # evaluated once after the trials, with the trials' probes
    embeddings: int = 0  # test images whose h and g(h) of the best trial are exported (0: none)
    finetune: Finetune | None = None  # fine-tuning of the best trial's encoder after the trials
    loggers: tuple[str, ...] = ()  # experiment trackers Tune logs every trial to (simclr_sweep.loggers)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def mode(self) -> str:
        """Ray Tune's spelling of the goal: "max" or "min"."""
        return GOALS[self.goal]

    @property
    def num_trials(self) -> int:
        """Tune trials in all: configurations times seeds."""
        return self.trials * self.seeds

    def grid_size(self) -> int:
        return _grid_size(self.parameters.values())


# --- reading ---------------------------------------------------------------------------------


def load_study(path: str | Path) -> Study:
    """Read and validate a study file; raise `ConfigError` naming the file or the YAML path."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(str(path), "a study must be a YAML mapping of keys such as name, metric, parameters "
                                     f"(got {described(data)})")
    return parse_study(data)


def load_study_in_child(path: str | Path) -> Study:
    """`load_study` in a fresh process, so that this one (a driver) never imports torch."""
    return _in_child(load_study, path)


def parse_study_in_child(data: dict[str, Any]) -> Study:
    """`parse_study` in a fresh process, so that this one (a driver) never imports torch."""
    return _in_child(parse_study, data)


def _in_child(check: Callable[[Any], Study], argument: Any) -> Study:
    # A plain child interpreter (not multiprocessing, which re-runs the caller's main script): the
    # argument goes in and the Study, or the ConfigError, comes back pickled.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    child = subprocess.run([sys.executable, "-c", _CHILD, check.__name__], input=pickle.dumps(argument),
                           capture_output=True, env=env)
    if child.returncode != 0:
        raise RuntimeError(f"validating in a child process failed:\n{child.stderr.decode(errors='replace')}")
    done, value = pickle.loads(child.stdout)
    if not done:
        raise value
    return value


_CHILD = """
import pickle, sys
from simclr_sweep import study
try:
    out = (True, getattr(study, sys.argv[1])(pickle.load(sys.stdin.buffer)))
except study.ConfigError as err:
    out = (False, err)
pickle.dump(out, sys.stdout.buffer)
"""


def parse_study(data: dict[str, Any]) -> Study:
    """Validate a study given as a mapping (the parsed YAML): its structure, then the trainer's check of its values."""
    known_keys("", data, _TOP_KEYS)
    for required in ("name", "metric"):
        if required not in data:
            raise ConfigError(required, "missing; every study needs it")
    name = text("name", data["name"])
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError("name", f"must be letters, digits, '.', '_' or '-' (it names a folder), got {name!r}")
    metric, goal = _metric(data["metric"])
    settings = _settings(data)
    fixed = _fixed(data.get("fixed", {}) or {}, settings["seeds"])
    parameters, values = _parameters(data.get("parameters", {}) or {}, fixed)
    _check_with_trainer(fixed, values)
    method = settings.pop("method")
    _check_method(method, parameters)
    _check_divisible(settings["workers_per_trial"], fixed, parameters)
    return Study(name=name, metric=metric, goal=goal, method=method, trials=_trials(data, method, parameters),
                 fixed=fixed, parameters=parameters, epochs=int(fixed.get("epochs", _trainer().epochs)),
                 raw=data, **settings)


# --- the structural pass ---------------------------------------------------------------------

_TOP_KEYS = (
    "name", "description", "metric", "method", "trials", "seeds", "max_concurrent", "resources",
    "workers_per_trial", "early_stopping", "fixed", "parameters", "sampler_seed", "max_failures",
    "time_budget", "baselines", "embeddings", "finetune", "loggers",
)


def _settings(data: dict[str, Any]) -> dict[str, Any]:
    """The top-level settings besides name, metric, trials and the options: Study's fields by name."""
    cpu, gpu = _resources(data.get("resources", {}))
    time_budget = None
    if data.get("time_budget") is not None:
        time_budget = finite("time_budget", data["time_budget"])
        if time_budget <= 0:
            raise ConfigError("time_budget", f"must be > 0 seconds (got {time_budget})")
    if data.get("description"):
        text("description", data["description"])  # shown to people reading the YAML; nothing uses it
    return dict(
        method=one_of(METHODS)("method", data.get("method", "tpe")),
        seeds=whole_number(1)("seeds", data.get("seeds", 1)),
        max_concurrent=whole_number(1)("max_concurrent", data.get("max_concurrent", 2)),
        cpu=cpu,
        gpu=gpu,
        workers_per_trial=whole_number(1)("workers_per_trial", data.get("workers_per_trial", 1)),
        early_stopping=_early_stopping(data.get("early_stopping")),
        sampler_seed=None if data.get("sampler_seed") is None else whole_number(0)("sampler_seed", data["sampler_seed"]),
        max_failures=whole_number(0)("max_failures", data.get("max_failures", 1)),
        time_budget_s=time_budget,
        baselines=_baselines(data.get("baselines")),
        embeddings=_embeddings(data.get("embeddings")),
        finetune=_finetune(data.get("finetune")),
        loggers=_loggers(data.get("loggers")),
    )


def _names(field: str, value: Any, options: Iterable[str]) -> tuple[str, ...]:
    """A list of names from `options`, each once (one name alone, or nothing, also do)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(field, f"must be a list of {', '.join(options)} (got {described(value)})")
    for i, name in enumerate(value):
        one_of(options)(f"{field}[{i}]", name)
    if len(set(value)) != len(value):
        raise ConfigError(field, f"names must not repeat (got {', '.join(map(str, value))})")
    return tuple(value)


def _baselines(value: Any) -> tuple[str, ...]:
    return _names("baselines", value, BASELINES)


def _loggers(value: Any) -> tuple[str, ...]:
    """`loggers: [tensorboard, mlflow, wandb]`: each known, named once, and installed on this machine (the driver logs)."""
    loggers = _names("loggers", value, LOGGERS)
    for i, name in enumerate(loggers):
        problem = not_installed(name)
        if problem:
            raise ConfigError(f"loggers[{i}]", problem)
    return loggers


def _embeddings(value: Any) -> int:
    """`embeddings: N` exports N test images of the best trial; true means 500, false or 0 none."""
    if value is None or value is False:
        return 0
    if value is True:
        return 500
    sample = whole_number(0)("embeddings", value)
    if 0 < sample < 10:
        raise ConfigError("embeddings", f"must be 0 (none) or at least 10 test images for a t-SNE (got {sample})")
    return sample


def _finetune(value: Any) -> Finetune | None:
    """`finetune: {labels: [0.01, 0.1], epochs, lr, batch_size, segmentation: {file_list, ...}}`."""
    if value is None:
        return None
    spec = mapping("finetune", value)
    known_keys("finetune", spec, ("labels", "epochs", "lr", "batch_size", "segmentation"))
    labels = spec.get("labels", [])
    labels = labels if isinstance(labels, list) else [labels]
    fractions = []
    for i, fraction in enumerate(labels):
        fraction = finite(f"finetune.labels[{i}]", fraction)
        if not 0 < fraction <= 1:
            raise ConfigError(f"finetune.labels[{i}]", f"must be a fraction in (0, 1], e.g. 0.01 or 0.1 (got {fraction})")
        fractions.append(float(fraction))
    if len(set(fractions)) != len(fractions):
        raise ConfigError("finetune.labels", f"fractions must not repeat (got {', '.join(map(str, fractions))})")
    lr = None
    if spec.get("lr") is not None:
        lr = finite("finetune.lr", spec["lr"])
        if lr <= 0:
            raise ConfigError("finetune.lr", f"must be > 0 (got {lr})")
    segmentation = _segmentation(spec["segmentation"]) if spec.get("segmentation") is not None else None
    if not fractions and segmentation is None:
        raise ConfigError("finetune", "give labels (e.g. [0.01, 0.1]) or segmentation: {file_list: pairs.txt}")
    return Finetune(labels=tuple(fractions),
                    epochs=None if spec.get("epochs") is None else whole_number(1)("finetune.epochs", spec["epochs"]),
                    lr=lr,
                    batch_size=(None if spec.get("batch_size") is None
                                else whole_number(1)("finetune.batch_size", spec["batch_size"])),
                    segmentation=segmentation)


def _segmentation(value: Any) -> Segmentation:
    path = "finetune.segmentation"
    spec = mapping(path, value)
    known_keys(path, spec, ("file_list", "test_list", "num_classes", "image_size"))
    if "file_list" not in spec:
        raise ConfigError(f"{path}.file_list", "missing; a file of `image,labelmap` lines")
    lists = {}
    for key in ("file_list", "test_list"):
        if spec.get(key) is None:
            continue
        where = Path(text(f"{path}.{key}", spec[key])).expanduser()
        if not where.is_file():
            raise ConfigError(f"{path}.{key}", f"no such file: {where} (a relative path is read from the folder "
                                               "simclr-sweep runs in)")
        lists[key] = str(where.resolve())
    return Segmentation(
        file_list=lists["file_list"], test_list=lists.get("test_list"),
        num_classes=None if spec.get("num_classes") is None else whole_number(1)(f"{path}.num_classes", spec["num_classes"]),
        image_size=None if spec.get("image_size") is None else whole_number(8)(f"{path}.image_size", spec["image_size"]))


def _metric(value: Any) -> tuple[str, str]:
    if isinstance(value, str):
        value = {"name": value}
    spec = mapping("metric", value)
    known_keys("metric", spec, ("name", "goal"))
    if "name" not in spec:
        raise ConfigError("metric.name", f"missing; one of {', '.join(METRICS)}")
    name = one_of(METRICS)("metric.name", spec["name"])
    goal = one_of(GOALS)("metric.goal", spec.get("goal", "maximize" if name != "loss" else "minimize"))
    return name, goal


def _resources(value: Any) -> tuple[float, float]:
    spec = mapping("resources", value or {})
    known_keys("resources", spec, ("cpu", "gpu"))
    cpu = finite("resources.cpu", spec.get("cpu", 1))
    gpu = finite("resources.gpu", spec.get("gpu", 0))
    if cpu <= 0:
        raise ConfigError("resources.cpu", f"must be > 0 (got {cpu})")
    if gpu < 0:
        raise ConfigError("resources.gpu", f"must be >= 0 (got {gpu})")
    if gpu > 1 and gpu != int(gpu):
        raise ConfigError("resources.gpu", f"must be a fraction <= 1 or a whole number of GPUs (got {gpu})")
    return cpu, gpu


def _early_stopping(value: Any) -> EarlyStopping:
    if value is None or value == "none":
        return EarlyStopping()
    if isinstance(value, str):
        value = {"type": value}
    spec = mapping("early_stopping", value)
    known_keys("early_stopping", spec, ("type", "grace_period", "reduction_factor"))
    kind = one_of(SCHEDULERS)("early_stopping.type", spec.get("type", "asha"))
    grace = whole_number(1)("early_stopping.grace_period", spec.get("grace_period", 1))
    factor = finite("early_stopping.reduction_factor", spec.get("reduction_factor", 3))
    if factor <= 1:
        raise ConfigError("early_stopping.reduction_factor", f"must be > 1 (got {factor})")
    return EarlyStopping(type=kind, grace_period=grace, reduction_factor=float(factor))


def _fixed(value: Any, seeds: int) -> dict[str, Any]:
    fixed = mapping("fixed", value)
    for key in fixed:
        _check_option_name(key, f"fixed.{key}")
    if "seed" in fixed and seeds > 1:
        raise ConfigError("fixed.seed", "cannot be fixed when seeds > 1 (each repeat draws its own seed)")
    return fixed


def _parameters(value: Any, fixed: dict[str, Any]) -> tuple[dict[str, Parameter], dict[str, Values]]:
    """The searched parameters, and where each value they can take sits in the YAML."""
    raw = mapping("parameters", value)
    if not raw:
        raise ConfigError("parameters", "must declare at least one parameter to search over")
    for name in raw:  # every name first: a misspelt option is the likelier fault
        _check_option_name(name, f"parameters.{name}")
    parameters: dict[str, Parameter] = {}
    values: dict[str, Values] = {}
    for name, spec in raw.items():
        path = f"parameters.{name}"
        if name in fixed:
            raise ConfigError(path, "is also in fixed; a parameter is either fixed or searched")
        if name == "seed":
            raise ConfigError(path, "cannot be searched; use `seeds: N` to repeat configurations")
        when = ()
        if isinstance(spec, dict) and "when" in spec:
            when = _when(spec["when"], f"{path}.when", parameters)
            spec = {k: v for k, v in spec.items() if k != "when"}
        parameter, values[name] = _parameter(name, spec, path)
        parameters[name] = replace(parameter, when=when)
    return parameters, values


def _parameter(name: str, spec: Any, path: str) -> tuple[Parameter, Values]:
    if not isinstance(spec, dict):
        raise ConfigError(path, "must be a mapping such as {values: [...]} or {distribution: uniform, min: ..., "
                                f"max: ...}} (got {described(spec)})")
    forms = [k for k in ("values", "distribution", "subset_of", "pairs_of") if k in spec]
    if not forms:
        known_keys(path, spec, ("values", "distribution", "min", "max", "q", "subset_of", "pairs_of",
                                "min_size", "max_size"))
        raise ConfigError(path, "needs one of values, distribution, subset_of or pairs_of")
    if len(forms) > 1:
        raise ConfigError(path, f"has both {forms[0]} and {forms[1]}; give exactly one")
    if forms[0] == "values":
        return _categorical(name, spec, path)
    if forms[0] == "distribution":
        return _distribution(name, spec, path)
    return _augmentation_sets(name, spec, path, forms[0])


def _categorical(name: str, spec: dict, path: str) -> tuple[Parameter, Values]:
    known_keys(path, spec, ("values",))
    values = spec["values"]
    if not isinstance(values, list):
        raise ConfigError(f"{path}.values", f"must be a list (got {described(values)})")
    if not values:
        raise ConfigError(f"{path}.values", "is empty; list at least one value")
    for i, v in enumerate(values):
        if not isinstance(v, (str, int, float, bool)):
            raise ConfigError(f"{path}.values[{i}]", f"must be a string, number or boolean (got {described(v)})")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"{path}.values", "lists a value twice")
    return Parameter(name, "values", values=tuple(values)), [(f"{path}.values[{i}]", v) for i, v in enumerate(values)]


def _distribution(name: str, spec: dict, path: str) -> tuple[Parameter, Values]:
    known_keys(path, spec, ("distribution", "min", "max", "q"))
    dist = one_of(DISTRIBUTIONS)(f"{path}.distribution", spec["distribution"])
    for bound in ("min", "max"):
        if bound not in spec:
            raise ConfigError(f"{path}.{bound}", f"missing; {dist} needs min and max")
    conv = whole_number() if dist == "int_uniform" else finite
    low, high = conv(f"{path}.min", spec["min"]), conv(f"{path}.max", spec["max"])
    step = None
    if "q" in spec or dist.startswith("q_"):
        if "q" not in spec:
            raise ConfigError(f"{path}.q", f"missing; {dist} needs a step q")
        step = conv(f"{path}.q", spec["q"])
        if step <= 0:
            raise ConfigError(f"{path}.q", f"must be > 0 (got {step})")
    if "log" in dist and low <= 0:
        raise ConfigError(f"{path}.min", f"must be > 0 for {dist} (got {low})")
    if low > high:
        raise ConfigError(path, f"min must be <= max (got min {low}, max {high})")
    if low == high:
        raise ConfigError(path, f"min and max are both {low}: an empty range (put the value in fixed instead)")
    if step is not None and step > high - low:
        raise ConfigError(f"{path}.q", f"step {step} is larger than the range {low}..{high}")
    if "log" in dist and step is not None:
        raise ConfigError(f"{path}.q", "a log distribution cannot have a step q (Optuna does not support both)")
    kind = {"uniform": "uniform", "q_uniform": "uniform", "log_uniform": "log_uniform",
            "int_uniform": "int_uniform"}[dist]
    return Parameter(name, kind, low=low, high=high, step=step), [(f"{path}.min", low), (f"{path}.max", high)]


def _augmentation_sets(name: str, spec: dict, path: str, form: str) -> tuple[Parameter, Values]:
    """Each candidate set is one categorical value, a sorted comma-joined string, the same spelling the
    trials table uses for param.augmentations."""
    if form == "subset_of":
        known_keys(path, spec, ("subset_of", "min_size", "max_size"))
    else:
        known_keys(path, spec, ("pairs_of",))
    names = spec[form]
    where = f"{path}.{form}"
    if not isinstance(names, list) or not names:
        raise ConfigError(where, f"must be a non-empty list of augmentation names (got {described(names)})")
    for i, v in enumerate(names):
        if not isinstance(v, str):
            raise ConfigError(f"{where}[{i}]", f"must be an augmentation name (got {described(v)})")
    if len(set(names)) != len(names):
        raise ConfigError(where, "lists an augmentation twice")
    sizes: Iterable[int] = (1, 2)
    if form == "subset_of":
        lo = whole_number(0)(f"{path}.min_size", spec.get("min_size", 1))
        hi = whole_number(0)(f"{path}.max_size", spec.get("max_size", len(names)))
        if hi > len(names):
            raise ConfigError(f"{path}.max_size", f"must be <= {len(names)}, the number of augmentations listed (got {hi})")
        if lo > hi:
            raise ConfigError(path, f"min_size must be <= max_size (got min_size {lo}, max_size {hi})")
        sizes = range(lo, hi + 1)
    sets = [c for k in sizes for c in itertools.combinations(sorted(names), k)]
    return (Parameter(name, "subset", values=tuple(",".join(c) for c in sets)),
            [(f"{where}[{i}]", [v]) for i, v in enumerate(names)])


def _when(value: Any, path: str, earlier: dict[str, Parameter]) -> tuple:
    """`when: {loss: nt_xent}` or `{loss: [nt_xent, nt_logistic]}`: conditions on earlier categorical parameters."""
    spec = mapping(path, value)
    if not spec:
        raise ConfigError(path, "is empty; name an earlier parameter and its value(s)")
    conditions = []
    for name, wanted in spec.items():
        if name not in earlier:
            raise ConfigError(f"{path}.{name}", "must name a parameter declared above this one"
                              + (hint(name, earlier) if earlier else ""))
        choices = earlier[name].values
        if earlier[name].kind not in ("values", "subset"):
            raise ConfigError(f"{path}.{name}", "must name a parameter with values (a categorical one)")
        wanted = wanted if isinstance(wanted, list) else [wanted]
        for v in wanted:
            if v not in choices:
                raise ConfigError(f"{path}.{name}", f"{v!r} is not one of its values ({', '.join(map(str, choices))})")
        conditions.append((name, tuple(wanted)))
    return tuple(conditions)


# --- checks across fields --------------------------------------------------------------------


def _check_method(method: str, parameters: dict[str, Parameter]) -> None:
    if method == "grid":
        for p in parameters.values():
            if p.when:
                raise ConfigError(f"parameters.{p.name}.when",
                                  "method grid cannot search conditional parameters (use tpe or random)")
            if not p.is_discrete:
                raise ConfigError(f"parameters.{p.name}",
                                  "method grid needs discrete parameters (values, int_uniform or an augmentation "
                                  f"set), got distribution {p.kind}")
    if method in ("cmaes", "qmc") and all(p.kind in ("values", "subset") for p in parameters.values()):
        raise ConfigError("method", f"{method} samples numeric ranges; every parameter here is categorical "
                                    "(use tpe, random or grid)")


def _trials(data: dict[str, Any], method: str, parameters: dict[str, Parameter]) -> int:
    if "trials" in data:
        return whole_number(1)("trials", data["trials"])
    if method == "grid":
        return _grid_size(parameters.values())
    raise ConfigError("trials", "missing; say how many configurations to try (e.g. trials: 16)")


def _grid_size(parameters: Iterable[Parameter]) -> int:
    return math.prod(len(p.grid_values()) for p in parameters)


def declared_trials(data: dict[str, Any]) -> int | None:
    """The trials a frozen declaration asks for (configurations x seeds), read without the trainer so
    that `status` stays light; None when the declaration does not tell (a damaged or partial one)."""
    try:
        seeds = whole_number(1)("seeds", data.get("seeds", 1))
        if "trials" in data:
            return whole_number(1)("trials", data["trials"]) * seeds
        if data.get("method") != "grid":
            return None
        specs = mapping("parameters", data.get("parameters"))
        parameters = [_parameter(name, {k: v for k, v in spec.items() if k != "when"} if isinstance(spec, dict)
                                 else spec, f"parameters.{name}")[0] for name, spec in specs.items()]
        return _grid_size(parameters) * seeds if parameters else None
    except ConfigError:
        return None


def _check_divisible(workers: int, fixed: dict[str, Any], parameters: dict[str, Parameter]) -> None:
    """The global batch is split evenly over a trial's DDP workers."""
    if workers == 1:
        return
    sizes = [("fixed.batch_size", fixed["batch_size"])] if "batch_size" in fixed else []
    if "batch_size" in parameters and parameters["batch_size"].kind == "values":
        sizes += [(f"parameters.batch_size.values[{i}]", v) for i, v in enumerate(parameters["batch_size"].values)]
    for path, size in sizes:
        if size % workers:
            raise ConfigError(path, f"must be divisible by workers_per_trial {workers} (got {size})")


# --- the trainer's check ---------------------------------------------------------------------


def _trainer():
    # Imported here, not at the top: TrainConfig brings torch, which the driver must not hold (a Ray
    # driver imports this module for Study and validates in a child: load_study_in_child).
    from trainers.config import TrainConfig

    return TrainConfig


def _check_option_name(key: Any, path: str) -> None:
    options = _trainer().option_names()
    if not isinstance(key, str) or key not in options:
        raise unknown(path, "training option", key, options)


def _check_with_trainer(fixed: dict[str, Any], values: dict[str, Values]) -> None:
    """The trainer checks the fixed values with the first value of each searched parameter, then, in
    that configuration, each other value a parameter can take; a fault is reported at its YAML path.

    Fixed and searched values are checked together so that a check across fields
    (warmup_epochs <= epochs) sees a real configuration, not the trainer's defaults.
    """
    first = {name: at[0] for name, at in values.items()}
    base = {**fixed, **{name: value for name, (_, value) in first.items()}}
    _train_config(base, lambda field: first[field][0] if field in first else f"fixed.{field}")
    for name, at in values.items():
        for path, value in at[1:]:
            _train_config({**base, name: value}, lambda field, path=path: path)


def _train_config(options: dict[str, Any], path_of: Callable[[str], str]) -> None:
    try:
        _trainer().from_dict(options)
    except ConfigError as err:
        raise ConfigError(path_of(err.field), err.message) from None
