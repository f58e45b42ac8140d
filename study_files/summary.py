"""One trial's row as the trials table holds it: its metrics summed up (``best.<m>``, ``last.<m>``)
and its configuration flattened into ``param.<name>`` columns."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from study_files.schema import AUGMENTATIONS_COLUMN, PARAM_PREFIX, best_column, last_column
from study_files.vocabulary import METRIC_GOALS, METRICS


def summarize_metrics(epoch_rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> dict[str, float | None]:
    """``best.<m>`` and ``last.<m>`` for every metric in METRICS from one trial's epoch rows.

    best follows METRIC_GOALS over finite values; last is the value of the latest epoch that
    reported the metric (a diverged trial's NaN loss counts as reported when given as dicts;
    in a DataFrame NaN cannot be told from "not reported" and is skipped). None when never seen.
    """
    rows = _rows_from(epoch_rows)
    rows.sort(key=lambda r: (r.get("epoch") is None, r.get("epoch") or 0))
    summary: dict[str, float | None] = {}
    for metric in METRICS:
        seen = [float(r[metric]) for r in rows if r.get(metric) is not None]
        finite = [v for v in seen if math.isfinite(v)]
        pick = max if METRIC_GOALS[metric] == "max" else min
        summary[best_column(metric)] = pick(finite) if finite else None
        summary[last_column(metric)] = seen[-1] if seen else None
    return summary


def flatten_params(config: Mapping[str, Any], prefix: str = PARAM_PREFIX) -> dict[str, Any]:
    """A trial's configuration as ``param.<name>`` columns: nested keys joined with dots,
    augmentations as a sorted comma-joined string, other lists comma-joined in order."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = param_value(name, value)
    return flat


def param_value(name: str, value: Any) -> Any:
    """One ``param.<name>`` cell as stored: lists comma-joined (augmentations and sets sorted), numpy scalars plain."""
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [str(v) for v in value]
        if name == AUGMENTATIONS_COLUMN or isinstance(value, (set, frozenset)):
            items.sort()
        return ",".join(items)
    if name == AUGMENTATIONS_COLUMN and isinstance(value, str):
        return ",".join(sorted(p.strip() for p in value.split(",") if p.strip()))
    item = getattr(value, "item", None)  # numpy scalar -> Python scalar
    if callable(item) and not isinstance(value, (str, bytes)):
        return item()
    return value


def _rows_from(epoch_rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> list[dict[str, Any]]:
    if isinstance(epoch_rows, pd.DataFrame):
        frame = epoch_rows.astype(object)
        return frame.where(frame.notna(), None).to_dict("records")
    return [dict(r) for r in epoch_rows]
