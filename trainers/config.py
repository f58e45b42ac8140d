"""``TrainConfig``: every option of one SimCLR run, validated once, with one-line errors naming the field."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from study_files.vocabulary import SIMCLR_AUGMENTATIONS
from trainers.augmentation.kernels import AUGMENTATIONS, PAPER_ORDER, Param
from trainers.checks import ConfigError, boolean, choice, closest, integer, number, shown, string, type_name
from trainers.data.datasets import DATASETS
from trainers.losses import LOSSES, OBJECTIVES, REDUCTIONS, SIMILARITIES
from trainers.model.networks import BACKBONES, HEAD_INITS, HEADS, STEMS, min_image_size
from trainers.model.optim import LR_SCALINGS, OPTIMIZERS, SCHEDULES
from trainers.recipes import RECIPES
from trainers.training.device import AMP_DTYPES

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class TrainConfig:
    """One SimCLR run. Defaults: a run that trains in seconds on a CPU (shapes, convnet, Adam).

    Sizes of 0 mean "the natural default": ``dataset_size`` the data set's own size,
    ``projection_hidden_dim`` the representation's size; ``eval_every: 0`` evaluates only at the end.

    Each augmentation's own parameters are options named ``<augmentation>.<parameter>``
    (``color_jitter.strength: 0.5``, ``blur.sigma: [0.1, 2.0]``, ``crop.min_scale: 0.3``), declared
    with their kernel in ``trainers.augmentation.kernels``. ``from_dict`` takes them beside the fields
    and ``to_dict`` gives them back the same way; inside they are the ``augmentation_params`` mapping,
    which ``build_pipeline`` takes as it is.
    """

    # data
    dataset: str = "shapes"
    data_root: str = "data"
    download: bool = False
    dataset_size: int = 0
    image_size: int = 0
    """Side of the square images the model sees (0: the data set's own; image folders and file lists 32)."""
    stored_size: int = 0
    """Side the decoded images are stored at (0: image_size). Larger than image_size: pre-training
    random-resized-crops them to image_size on the device, evaluation takes their centre crop."""
    data_cache: str = ""
    """Directory of the memory-mapped decoded image folders and file lists, one per node
    ("": $SIMCLR_SWEEP_DATA_CACHE, else a folder under the node's temporary directory)."""
    # model
    backbone: str = "convnet"
    stem: str = "cifar"
    width: int = 1
    head: str = "nonlinear"
    """The projection head g: nonlinear (the paper's MLP), linear, or none (z = h)."""
    head_layers: int = 2
    """Linear layers of the nonlinear head; linear and none ignore it."""
    projection_dim: int = 128
    """Size of z, for the nonlinear and linear heads; none ignores it (z is h)."""
    projection_hidden_dim: int = 0
    """Hidden width of the nonlinear head (0: the representation's size), used when head_layers >= 2;
    linear and none ignore it."""
    zero_init_residual: bool = False
    """Start each residual block's last BN gamma at 0, as TF's ResNet does (the convnet has none)."""
    head_init: str = "torch"
    """The head's dense weights: torch (PyTorch's default) or tf (N(0, 0.01), TF SimCLR's)."""
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
    objective: str = "simclr"
    """simclr (the contrastive loss on two views) or supervised (cross-entropy of a linear classifier
    on h, in place of the head, on one augmented view of each labelled training image; the same
    backbone, augmentations and probes; needs a classification data set)."""
    loss: str = "nt_xent"
    """nt_xent, nt_logistic or margin_triplet (``trainers.losses``)."""
    temperature: float = 0.5
    """For nt_xent and nt_logistic; margin_triplet ignores it."""
    similarity: str = "cosine"
    """Similarity of two projections, for every loss."""
    hidden_norm: bool = True
    """l2-normalise z before the similarity, for every loss (cosine normalises anyway)."""
    margin: float = 1.0
    """For margin_triplet; nt_xent and nt_logistic ignore it."""
    semi_hard: bool = False
    """Semi-hard negative mining, for nt_logistic and margin_triplet (the paper's "(sh)" rows);
    nt_xent ignores it."""
    loss_reduction: str = "mean"
    """mean (over the 2N rows, the paper's) or sum_of_views (google-research's: twice the mean, the
    scale its LARS learning rate and weight decay were tuned at)."""
    # recipe
    recipe: str = "torch"
    """torch (the defaults) or tf (google-research's SimCLRv1 details at once); ``trainers.recipes``
    lists what each sets, and a detail's own key wins over the recipe. ``from_dict`` applies it."""
    # augmentation
    augmentations: tuple[str, ...] = SIMCLR_AUGMENTATIONS
    augmentation_params: Mapping[str, Any] = field(default_factory=dict)  # "<augmentation>.<parameter>" -> value
    # runtime
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = True
    compile: bool = False
    """Run the model through ``torch.compile``. On a CUDA device the augmentation pipeline's
    deterministic half is compiled too; on the CPU only the model is (inductor is slower than eager there)."""
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
        if self.image_size and self.image_size < min_image_size(self.backbone, self.stem):
            raise ConfigError("image_size", f"must be >= {min_image_size(self.backbone, self.stem)} for "
                                            f"backbone {self.backbone} with stem {self.stem} (got {self.image_size})")
        if self.stored_size and not 0 < self.image_size <= self.stored_size:
            raise ConfigError("stored_size", f"must be >= image_size, which must be set too "
                                             f"(got {self.stored_size} with image_size {self.image_size})")
        if self.warmup_epochs > self.epochs:
            raise ConfigError("warmup_epochs", f"must be <= epochs ({self.epochs}) (got {self.warmup_epochs:g})")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Build and validate from a mapping of field names; unknown keys are refused. The ``recipe``'s
        options fill in those the mapping does not give."""
        if not isinstance(values, Mapping):
            raise ConfigError("config", f"must be a mapping of field names to values (got {type(values).__name__})")
        names = [f.name for f in dataclasses.fields(cls)]
        fields, augmentation_params = {}, {}
        if "augmentation_params" in values:
            augmentation_params = dict(_augmentation_mapping("augmentation_params", values["augmentation_params"]))
        for key, value in values.items():
            if isinstance(key, str) and "." in key:
                if _declared(key) is None:
                    raise ConfigError(key, f"unknown augmentation parameter; {_augmentation_hint(key)}")
                augmentation_params[key] = value
            elif key not in names:
                close = closest(str(key), names)
                hint = f"did you mean {close!r}?" if close else f"valid fields: {', '.join(names)}"
                raise ConfigError(str(key), f"unknown field; {hint}")
            elif key != "augmentation_params":
                fields[key] = value
        recipe = _RULES["recipe"]("recipe", fields.get("recipe", "torch"))
        for key, value in RECIPES[recipe].items():
            if "." in key:
                augmentation_params.setdefault(key, value)
            else:
                fields.setdefault(key, value)
        return cls(**fields, augmentation_params=augmentation_params)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """Every key ``from_dict`` takes: the fields, then the augmentation parameters."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "augmentation_params") + _OPTIONS

    def to_dict(self) -> dict[str, Any]:
        """Plain values (``augmentations`` as a list, augmentation parameters as their own
        ``<augmentation>.<parameter>`` keys): ``from_dict(to_dict())`` gives this config back."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "augmentation_params"}
        out["augmentations"] = list(self.augmentations)
        for key, value in self.augmentation_params.items():
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


def _device(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE.match(value):
        raise ConfigError(field, f"must be auto, cpu, cuda, cuda:<index> or mps (got {type_name(value)})")
    return value


def _data_cache(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(field, f"must be a directory path, or empty for the node-local default (got {type_name(value)})")
    return value


def _augmentations(field: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        names = list(value)
    else:
        raise ConfigError(field, f"must be a list of names or a comma-joined string (got {type_name(value)})")
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(field, f"each entry must be an augmentation name (got {shown(name)})")
        if name not in AUGMENTATIONS:
            raise ConfigError(field, f"each must be one of {', '.join(PAPER_ORDER)} (got {type_name(name)})")
    if len(set(names)) != len(names):
        raise ConfigError(field, f"names must not repeat (got {', '.join(names)})")
    return tuple(name for name in PAPER_ORDER if name in names)


# -- augmentation parameters -----------------------------------------------------------------


# Every "<augmentation>.<parameter>" an augmentation declares, in PAPER_ORDER.
_OPTIONS: tuple[str, ...] = tuple(f"{name}.{param}" for name in PAPER_ORDER for param in AUGMENTATIONS[name].params)


def _declared(key: Any) -> Param | None:
    """The declaration (``Param``) of an "<augmentation>.<parameter>" key, None for any other key."""
    name, _, param = str(key).partition(".")
    return AUGMENTATIONS[name].params.get(param) if name in AUGMENTATIONS else None


def _augmentation_hint(key: str) -> str:
    name = key.split(".", 1)[0]
    if name not in AUGMENTATIONS:
        close = closest(key, _OPTIONS, cutoff=0.8)
        if close:
            return f"did you mean {close!r}?"
        return f"expected <augmentation>.<parameter> with an augmentation of {', '.join(PAPER_ORDER)}"
    own = [o for o in _OPTIONS if o.startswith(name + ".")]
    if not own:
        return f"{name} has no parameters"
    close = closest(key, own)
    return f"did you mean {close!r}?" if close else f"{name} has {', '.join(own)}"


def _augmentation_mapping(field: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(field, f"must be a mapping of <augmentation>.<parameter> to values (got {type_name(value)})")
    return value


def _augmentation_params(field: str, value: Any) -> dict[str, Any]:
    value = _augmentation_mapping(field, value)
    out = {}
    for key in sorted(value, key=str):
        declared = _declared(key)
        if declared is None:
            raise ConfigError(str(key), f"unknown augmentation parameter; {_augmentation_hint(str(key))}")
        out[key] = declared.rule(key, value[key])
    if "crop.scale" in out and "crop.min_scale" in out:
        raise ConfigError("crop.min_scale", "give crop.scale or crop.min_scale, not both")
    return out


_RULES: dict[str, Callable[[str, Any], Any]] = {
    "dataset": choice(lambda: DATASETS),
    "data_root": string,
    "download": boolean,
    "dataset_size": integer(0),
    "image_size": integer(0),
    "stored_size": integer(0),
    "data_cache": _data_cache,
    "backbone": choice(lambda: BACKBONES),
    "stem": choice(lambda: STEMS),
    "width": integer(1, 16),
    "head": choice(lambda: HEADS),
    "head_layers": integer(1, 8),
    "projection_dim": integer(1),
    "projection_hidden_dim": integer(0),
    "zero_init_residual": boolean,
    "head_init": choice(lambda: HEAD_INITS),
    "epochs": integer(1),
    "batch_size": integer(2),
    "optimizer": choice(lambda: OPTIMIZERS),
    "lr": number(0.0, inclusive=False),
    "lr_scaling": choice(lambda: LR_SCALINGS),
    "warmup_epochs": number(0.0, inclusive=True),
    "schedule": choice(lambda: SCHEDULES),
    "weight_decay": number(0.0, inclusive=True),
    "momentum": number(0.0, inclusive=True, high=1.0),
    "objective": choice(lambda: OBJECTIVES),
    "loss": choice(lambda: LOSSES),
    "temperature": number(0.0, inclusive=False),
    "similarity": choice(lambda: SIMILARITIES),
    "hidden_norm": boolean,
    "margin": number(0.0, inclusive=True),
    "semi_hard": boolean,
    "loss_reduction": choice(lambda: REDUCTIONS),
    "recipe": choice(lambda: RECIPES),
    "augmentations": _augmentations,
    "augmentation_params": _augmentation_params,
    "seed": integer(0),
    "device": _device,
    "precision": choice(lambda: AMP_DTYPES),
    "channels_last": boolean,
    "compile": boolean,
    "global_bn": boolean,
    "eval_every": integer(0),
    "knn_k": integer(1),
    "knn_temperature": number(0.0, inclusive=False),
    "linear_eval": boolean,
}
