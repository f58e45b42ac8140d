"""``TrainConfig``: every option of one SimCLR run, validated once, with one-line errors naming the field."""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from trainers.augment import AUGMENTATIONS, PAPER_ORDER, SIMCLR_AUGMENTATIONS
from trainers.datasets import DATASETS
from trainers.losses import LOSSES, SIMILARITIES
from trainers.models import BACKBONES, HEADS, STEMS
from trainers.optim import LR_SCALINGS, OPTIMIZERS, SCHEDULES

PRECISIONS = ("fp32", "bf16", "fp16")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ConfigError(ValueError):
    """A refused configuration value: ``str(err) == f"{field}: {message}"``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self):
        # Pickled across processes (a Ray worker's error reaching the driver): rebuild from both parts.
        return ConfigError, (self.field, self.message)


@dataclass(frozen=True)
class TrainConfig:
    """One SimCLR run. Defaults: a run that trains in seconds on a CPU (shapes, convnet, Adam).

    Sizes of 0 mean "the natural default": ``dataset_size`` the data set's own size,
    ``projection_hidden_dim`` the representation's size; ``eval_every: 0`` evaluates only at the end.
    """

    # data
    dataset: str = "shapes"
    data_root: str = "data"
    download: bool = False
    dataset_size: int = 0
    # model
    backbone: str = "convnet"
    stem: str = "cifar"
    width: int = 1
    head: str = "nonlinear"
    head_layers: int = 2
    projection_dim: int = 128
    projection_hidden_dim: int = 0
    # optimisation
    epochs: int = 8
    batch_size: int = 256
    optimizer: str = "adam"
    lr: float = 1e-3
    lr_scaling: str = "none"
    warmup_epochs: float = 0.0
    schedule: str = "cosine"
    weight_decay: float = 1e-6
    momentum: float = 0.9
    # objective
    loss: str = "nt_xent"
    temperature: float = 0.5
    similarity: str = "cosine"
    hidden_norm: bool = True
    margin: float = 1.0
    semi_hard: bool = False
    # augmentation
    augmentations: tuple[str, ...] = SIMCLR_AUGMENTATIONS
    color_jitter_strength: float = 1.0
    crop_min_scale: float = 0.08
    # runtime
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = True
    compile: bool = False
    global_bn: bool = True
    # evaluation
    eval_every: int = 1
    knn_k: int = 200
    knn_temperature: float = 0.1
    linear_eval: bool = False

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _RULES[f.name](f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        if self.warmup_epochs > self.epochs:
            raise ConfigError("warmup_epochs", f"must be <= epochs ({self.epochs}) (got {self.warmup_epochs:g})")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Build and validate from a mapping of field names; unknown keys are refused."""
        if not isinstance(values, Mapping):
            raise ConfigError("config", f"must be a mapping of field names to values (got {type(values).__name__})")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else f"valid fields: {', '.join(names)}"
                raise ConfigError(str(key), f"unknown field; {hint}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (``augmentations`` as a list): ``from_dict(to_dict())`` gives this config back."""
        out = dataclasses.asdict(self)
        out["augmentations"] = list(self.augmentations)
        return out


def _type_name(value: Any) -> str:
    return f"{value!r}" if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__


def _boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, f"must be true or false (got {_type_name(value)})")
    return value


def _string(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(field, f"must be a non-empty string (got {_type_name(value)})")
    return value


def _integer(low: int, high: int | None = None) -> Callable[[str, Any], int]:
    def check(field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(field, f"must be an integer (got {_type_name(value)})")
        if value < low:
            raise ConfigError(field, f"must be >= {low} (got {value})")
        if high is not None and value > high:
            raise ConfigError(field, f"must be <= {high} (got {value})")
        return value
    return check


def _number(low: float, *, inclusive: bool, high: float | None = None) -> Callable[[str, Any], float]:
    def check(field: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(field, f"must be a number (got {_type_name(value)})")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(field, f"must be finite (got {value})")
        if value < low or (value == low and not inclusive):
            raise ConfigError(field, f"must be {'>=' if inclusive else '>'} {low:g} (got {value:g})")
        if high is not None and value >= high:
            raise ConfigError(field, f"must be < {high:g} (got {value:g})")
        return value
    return check


def _choice(options: Callable[[], Any]) -> Callable[[str, Any], str]:
    def check(field: str, value: Any) -> str:
        valid = list(options())
        if value not in valid:
            raise ConfigError(field, f"must be one of {', '.join(valid)} (got {_type_name(value)})")
        return value
    return check


def _device(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE.match(value):
        raise ConfigError(field, f"must be auto, cpu, cuda, cuda:<index> or mps (got {_type_name(value)})")
    return value


def _augmentations(field: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        names = list(value)
    else:
        raise ConfigError(field, f"must be a list of names or a comma-joined string (got {_type_name(value)})")
    for name in names:
        if name not in AUGMENTATIONS:
            raise ConfigError(field, f"each must be one of {', '.join(PAPER_ORDER)} (got {_type_name(name)})")
    if len(set(names)) != len(names):
        raise ConfigError(field, f"names must not repeat (got {', '.join(names)})")
    return tuple(name for name in PAPER_ORDER if name in names)


_RULES: dict[str, Callable[[str, Any], Any]] = {
    "dataset": _choice(lambda: DATASETS),
    "data_root": _string,
    "download": _boolean,
    "dataset_size": _integer(0),
    "backbone": _choice(lambda: BACKBONES),
    "stem": _choice(lambda: STEMS),
    "width": _integer(1, 16),
    "head": _choice(lambda: HEADS),
    "head_layers": _integer(1, 8),
    "projection_dim": _integer(1),
    "projection_hidden_dim": _integer(0),
    "epochs": _integer(1),
    "batch_size": _integer(2),
    "optimizer": _choice(lambda: OPTIMIZERS),
    "lr": _number(0.0, inclusive=False),
    "lr_scaling": _choice(lambda: LR_SCALINGS),
    "warmup_epochs": _number(0.0, inclusive=True),
    "schedule": _choice(lambda: SCHEDULES),
    "weight_decay": _number(0.0, inclusive=True),
    "momentum": _number(0.0, inclusive=True, high=1.0),
    "loss": _choice(lambda: LOSSES),
    "temperature": _number(0.0, inclusive=False),
    "similarity": _choice(lambda: SIMILARITIES),
    "hidden_norm": _boolean,
    "margin": _number(0.0, inclusive=True),
    "semi_hard": _boolean,
    "augmentations": _augmentations,
    "color_jitter_strength": _number(0.0, inclusive=True),
    "crop_min_scale": _number(0.0, inclusive=False, high=1.0),
    "seed": _integer(0),
    "device": _device,
    "precision": _choice(lambda: PRECISIONS),
    "channels_last": _boolean,
    "compile": _boolean,
    "global_bn": _boolean,
    "eval_every": _integer(0),
    "knn_k": _integer(1),
    "knn_temperature": _number(0.0, inclusive=False),
    "linear_eval": _boolean,
}
