"""The best trial's encoder fine-tuned (a study's `finetune:`), beside the same network trained from its
initial weights on the same labels and beside the baselines' frozen-feature probes."""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from reports.page import Section, esc, figure_html, style, table_html
from reports.sections.baselines import BASELINE_NAMES, _best, _float, _which_trial
from reports.study_data import StudyData

FROZEN = {"knn_top1": "kNN on frozen h (all labels)", "linear_top1": "linear probe on frozen h (all labels)"}
COLUMNS = ("trial", "random_init", "pca")  # the encoders compared, left to right
HEADERS = {"trial": "best trial", **BASELINE_NAMES}


def finetune_section(data: StudyData) -> Section | None:
    """Fine-tuning scores per protocol and label fraction, with the frozen probes above them; None without
    a `finetune` result."""
    tuned = data.finetune
    if tuned is None or tuned.empty:
        return None
    baselines = data.baselines if data.baselines is not None else pd.DataFrame(columns=["baseline"])
    rows: list[tuple[str, dict[str, float]]] = []
    for metric, label in FROZEN.items():
        values = {"trial": _best(data, metric)}
        for row in baselines.to_dict("records"):
            values[row["baseline"]] = _float(row.get(metric))
        if any(math.isfinite(v) for v in values.values()):
            rows.append((label, values))
    for (protocol, labels), group in tuned.groupby(["protocol", "labels"], sort=True, dropna=False):
        values = {str(r["encoder"]): _float(r["value"]) for r in group.to_dict("records")}
        rows.append((_label(protocol, labels, group.iloc[0]), values))
    shown = [c for c in COLUMNS if any(math.isfinite(v.get(c, math.nan)) for _, v in rows)]
    fig = go.Figure()
    for colour, column in zip(("#1f77b4", "#9aa0a6", "#d0a060"), shown):
        fig.add_bar(name=esc(HEADERS[column]), x=[esc(label) for label, _ in rows],
                    y=[v.get(column) for _, v in rows], marker_color=colour,
                    hovertemplate=esc(HEADERS[column]) + ", %{x}: %{y:.4f}<extra></extra>")
    style(fig, height=360, barmode="group", yaxis_title="score (higher is better)")
    table = table_html(["", *(HEADERS[c] for c in shown)],
                       [[label, *(data.fmt(v.get(c, math.nan)) for c in shown)] for label, v in rows])
    note = (f"The fine-tuned encoder is {_which_trial(data)}, from its last checkpoint; a copy of it and a linear "
            "layer (a 1x1 convolution for segmentation) are trained with SGD (Nesterov momentum, cosine decay, "
            "no weight decay) on a class-balanced fraction of the labelled training set, with random crops and "
            "flips, and scored on the held-out split. The random-init encoder (when the study declares that "
            "baseline) is the same network trained from its initial weights the same way: supervised training "
            "on those labels alone. The frozen-feature rows are the trial's own probes and the baselines'.")
    return Section("finetune", "Fine-tuned: the best encoder on few labels", _finding(data, tuned),
                   [figure_html(fig), table], note)


def _label(protocol: str, labels: float, row: pd.Series) -> str:
    if protocol == "segmentation":
        return f"segmentation, mean IoU ({int(row['train_images'])} images)"
    return f"fine-tuned, {_percent(labels)} of the labels ({int(row['train_images'])} images)"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _finding(data: StudyData, tuned: pd.DataFrame) -> str:
    parts = []
    for (protocol, labels), group in tuned.groupby(["protocol", "labels"], sort=True, dropna=False):
        values = {str(r["encoder"]): _float(r["value"]) for r in group.to_dict("records")}
        trial, scratch = values.get("trial", math.nan), values.get("random_init", math.nan)
        what = "mean IoU in segmentation" if protocol == "segmentation" else f"top-1 with {_percent(labels)} of the labels"
        text = f"{what} {data.fmt(trial)}"
        if math.isfinite(scratch):
            gap = trial - scratch
            text += f" ({'+' if gap >= 0 else '-'}{data.fmt(abs(gap))} against training from scratch, {data.fmt(scratch)})"
        parts.append(text)
    return f"Fine-tuned, the best trial's encoder reaches {'; '.join(parts)}."
