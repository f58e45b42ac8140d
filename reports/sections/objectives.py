"""Objectives side by side: the score against a numeric parameter, one curve per objective (the
paper's Table 1: colour strength for SimCLR against supervised training)."""
from __future__ import annotations

import math

import plotly.graph_objects as go

from reports.page import Section, esc, figure_html, style
from reports.stats import mean_ci
from reports.study_data import StudyData
from study_files.schema import AUGMENTATIONS_COLUMN

OBJECTIVE_COLUMN = "param.objective"
# The parameter the paper sweeps against the objective; any other numeric one when it does not vary.
PREFERRED_X = "param.color_jitter.strength"
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def objective_section(data: StudyData) -> Section | None:
    """Mean score with its 95% CI at each value of a numeric parameter, one curve per objective (and
    per augmentation set when that varies too); None unless the objective and a numeric parameter vary."""
    if OBJECTIVE_COLUMN not in data.varying or not data.numeric:
        return None
    x_col = PREFERRED_X if PREFERRED_X in data.numeric else data.numeric[0]
    scored = data.scored
    split_by = [OBJECTIVE_COLUMN]
    if AUGMENTATIONS_COLUMN in scored and scored[AUGMENTATIONS_COLUMN].nunique() > 1:
        split_by.append(AUGMENTATIONS_COLUMN)
    fig = go.Figure()
    peaks = []
    for k, (key, group) in enumerate(scored.groupby(split_by, sort=True)):
        key = key if isinstance(key, tuple) else (key,)
        name = " / ".join(str(v) for v in key)
        cells = [(x, mean_ci(g["score"])) for x, g in group.groupby(x_col, sort=True)]
        xs = [x for x, _ in cells]
        means = [c.mean for _, c in cells]
        upper = [0.0 if math.isnan(c.hi) else c.hi - c.mean for _, c in cells]
        lower = [0.0 if math.isnan(c.lo) else c.mean - c.lo for _, c in cells]
        fig.add_scatter(x=xs, y=means, mode="lines+markers", name=esc(name),
                        line={"color": _PALETTE[k % len(_PALETTE)]},
                        error_y={"type": "data", "symmetric": False, "array": upper, "arrayminus": lower},
                        hovertemplate=esc(name) + " %{x}: %{y:.4f}<extra></extra>")
        best_x, best = max(cells, key=lambda c: c[1].mean if data.maximize else -c[1].mean)
        peaks.append(f"{name} at {data.label(x_col)} {best_x:g} ({data.fmt(best.mean)})")
    style(fig, xaxis_title=esc(data.label(x_col)), yaxis_title=esc(data.metric), xaxis={"type": "log"})
    finding = "Best " + data.metric + " per objective: " + "; ".join(peaks) + "."
    return Section("objectives", f"Objectives against {data.label(x_col)}", finding, [figure_html(fig)],
                   "Mean of each cell's trials with its 95% t interval (none for a single trial). The paper's "
                   "Table 1: stronger colour distortion helps SimCLR and not supervised training.")
