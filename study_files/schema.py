"""The study tables' schema: their columns and Arrow types (the words they use are `study_files.vocabulary`'s).

``trials.parquet`` has one row per trial; ``epochs/`` has one row per (trial_id, epoch).
Parameter columns (``param.<name>``) depend on the study, so their types are inferred from the
values written (see :func:`param_type`); every other column has a fixed type.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import pyarrow as pa

from study_files.vocabulary import METRICS

PARAM_PREFIX = "param."
AUGMENTATIONS_COLUMN = "param.augmentations"

TIMESTAMP = pa.timestamp("us", tz="UTC")

TRIAL_KEY_FIELDS: tuple[pa.Field, ...] = (
    pa.field("trial_id", pa.string(), nullable=False),
    pa.field("config_id", pa.string()),
    pa.field("seed", pa.int64()),
    pa.field("status", pa.string()),
)
TRIAL_METRIC_FIELDS: tuple[pa.Field, ...] = tuple(
    pa.field(f"{kind}.{metric}", pa.float64()) for metric in METRICS for kind in ("best", "last")
)
TRIAL_TAIL_FIELDS: tuple[pa.Field, ...] = (
    pa.field("epochs_run", pa.int64()),
    pa.field("wall_s", pa.float64()),
    pa.field("gpu_s", pa.float64()),
    pa.field("error", pa.string()),
    pa.field("started_at", TIMESTAMP),
    pa.field("ended_at", TIMESTAMP),
)

EPOCH_FIELDS: tuple[pa.Field, ...] = (
    pa.field("trial_id", pa.string(), nullable=False),
    pa.field("epoch", pa.int64(), nullable=False),
    *(pa.field(metric, pa.float64()) for metric in METRICS if metric != "epoch"),
)
EPOCHS_SCHEMA = pa.schema(EPOCH_FIELDS)
EPOCH_COLUMNS: tuple[str, ...] = tuple(f.name for f in EPOCH_FIELDS)

TRIAL_FIXED_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in (*TRIAL_KEY_FIELDS, *TRIAL_METRIC_FIELDS, *TRIAL_TAIL_FIELDS)
)


def best_column(metric: str) -> str:
    """Name of the trials column holding a metric's best value (``best.<metric>``)."""
    return f"best.{metric}"


def last_column(metric: str) -> str:
    """Name of the trials column holding a metric's last value (``last.<metric>``)."""
    return f"last.{metric}"


def param_type(values: Iterable[object]) -> pa.DataType:
    """The one Arrow type a ``param.<name>`` column gets for these values (None ignored).

    bool stays bool; int stays int64; ints mixed with floats become float64; anything else, or
    a mix of kinds, becomes string, so a column never changes meaning between rows.
    """
    kinds = {_kind(v) for v in values if v is not None and not _is_nan(v)}
    if not kinds:
        return pa.string()
    if kinds == {"bool"}:
        return pa.bool_()
    if kinds == {"int"}:
        return pa.int64()
    if kinds <= {"int", "float"}:
        return pa.float64()
    return pa.string()


def trials_schema(param_types: dict[str, pa.DataType]) -> pa.Schema:
    """The trials.parquet schema: fixed columns, with the ``param.*`` columns after the keys."""
    params = [pa.field(name, param_types[name]) for name in sorted(param_types)]
    return pa.schema([*TRIAL_KEY_FIELDS, *params, *TRIAL_METRIC_FIELDS, *TRIAL_TAIL_FIELDS])


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    # numpy scalars arrive from pandas; classify them by their Python equivalent.
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes)):
        try:
            return _kind(item())
        except (TypeError, ValueError):
            return "str"
    return "str"


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


# tables/baselines.parquet: one row per baseline a study declared (simclr_sweep.analysis), scored
# with the trials' probes; a metric the data set does not give (linear_r2 on classes) is null.
BASELINE_METRICS: tuple[str, ...] = ("knn_top1", "linear_top1", "linear_r2")
BASELINES_SCHEMA = pa.schema([pa.field("baseline", pa.string(), nullable=False),
                              *(pa.field(m, pa.float64()) for m in BASELINE_METRICS)])

# tables/finetune.parquet: one row per (encoder, protocol, label fraction) a study's `finetune` key
# asked for (simclr_sweep.analysis): `encoder` is `trial` (the best trial's, `trial_id`) or `random_init`
# (the same network from its initial weights); `metric` is finetune_top1 or mean_iou, scored on the
# held-out split after `epochs` of fine-tuning on `train_images` images (`labels` of the labelled set).
FINETUNE_SCHEMA = pa.schema([
    pa.field("encoder", pa.string(), nullable=False),
    pa.field("trial_id", pa.string()),
    pa.field("protocol", pa.string(), nullable=False),
    pa.field("labels", pa.float64()),
    pa.field("metric", pa.string(), nullable=False),
    pa.field("value", pa.float64()),
    pa.field("epochs", pa.int64()),
    pa.field("train_images", pa.int64()),
    pa.field("test_images", pa.int64()),
])
