"""Learning curves: the study's metric (and the loss) against epoch for every trial, coloured by
status, so that early-stopped and diverged trials stand out."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.page import STATUS_COLOURS, Section, esc, figure_html, style
from reports.study_data import StudyData

# Above this many points per figure, curves are thinned (every k-th epoch, always the last one).
MAX_POINTS = 20_000
# Above this many trials of one status, single lines become a solid blob: such a status is drawn
# as its per-epoch median and 10-90% band, and the best trials are drawn on top one by one.
MAX_LINES = 150
TOP_LINES = 10
_DASH = {"early_stopped": "dash", "diverged": "solid", "failed": "dash", "running": "solid", "completed": "solid"}


def curves_section(data: StudyData) -> Section | None:
    """Metric-vs-epoch (and loss-vs-epoch) per trial; None before any epoch has been recorded."""
    metrics = [m for m in dict.fromkeys([data.metric, "loss"]) if _has(data.epochs, m)]
    if not metrics:
        return None
    status = data.trials.set_index("trial_id")["status"]
    frame = data.epochs.assign(status=data.epochs["trial_id"].map(status).fillna("running"))
    counts = data.trials["status"].value_counts()
    banded = [s for s in counts.index if counts[s] > MAX_LINES]
    body, notes = [], []
    if banded:
        names = " and ".join(s.replace("_", "-") for s in banded)
        notes.append(f"{names[0].upper()}{names[1:]} trials are shown as the median and 10-90% band per epoch "
                     f"(too many for single lines), with the {TOP_LINES} best trials drawn one by one.")
    for metric in metrics:
        points = frame[frame[metric].notna()]
        lines = points[~points["status"].isin(banded) | points["trial_id"].isin(_top_ids(data))]
        thinned, step = thin(lines, MAX_POINTS)
        if step > 1:
            notes.append(f"Curves show every {step}th epoch (and each trial's last) to keep the page light.")
        fig = _figure(thinned, metric, data)
        lines_drawn = len(fig.data)
        for status in banded:
            _add_band(fig, points[points["status"] == status], metric, status)
        fig.data = fig.data[lines_drawn:] + fig.data[:lines_drawn]  # bands underneath the lines
        body.append(figure_html(fig))
    return Section("curves", "Learning curves", _finding(data), body, " ".join(dict.fromkeys(notes)))


def _top_ids(data: StudyData) -> list[str]:
    return list(data.scored["trial_id"].head(TOP_LINES))


def _add_band(fig: go.Figure, group: pd.DataFrame, metric: str, status: str) -> None:
    """A status's trials as the per-epoch median line inside its 10-90% band."""
    quantiles = group.groupby("epoch")[metric].quantile([0.1, 0.5, 0.9]).unstack()
    epochs = quantiles.index.to_numpy(dtype=float)
    colour = STATUS_COLOURS[status]
    label = f"{status.replace('_', ' ')} ({group['trial_id'].nunique()}): median, 10-90%"
    fig.add_trace(go.Scatter(x=np.concatenate([epochs, epochs[::-1]]),
                             y=np.concatenate([quantiles[0.9].to_numpy(), quantiles[0.1].to_numpy()[::-1]]),
                             fill="toself", fillcolor=colour, opacity=0.25, line={"width": 0},
                             hoverinfo="skip", showlegend=False, legendgroup=status))
    fig.add_trace(go.Scatter(x=epochs, y=quantiles[0.5].to_numpy(), mode="lines", name=label,
                             legendgroup=status, line={"color": colour, "width": 2, "dash": _DASH[status]},
                             hovertemplate="median at epoch %{x}: %{y:.4g}<extra></extra>"))


def thin(points: pd.DataFrame, max_points: int) -> tuple[pd.DataFrame, int]:
    """Keep every k-th epoch of each trial (and its last) so at most ~max_points remain."""
    step = max(1, math.ceil(len(points) / max_points))
    if step == 1:
        return points, 1
    rank = points.groupby("trial_id").cumcount()
    last = ~points["trial_id"].duplicated(keep="last")
    return points[(rank % step == 0) | last], step


def _figure(points: pd.DataFrame, metric: str, data: StudyData) -> go.Figure:
    fig = go.Figure()
    for status in ("completed", "running", "early_stopped", "failed", "diverged"):
        group = points[points["status"] == status]
        if group.empty:
            continue
        x, y, text = _with_gaps(group, metric)
        fig.add_trace(go.Scatter(
            x=x, y=y, text=text, mode="lines", name=f"{status.replace('_', ' ')} ({group['trial_id'].nunique()})",
            line={"color": STATUS_COLOURS[status], "width": 1.5 if status != "completed" else 1.2,
                  "dash": _DASH[status]}, opacity=0.8,
            hovertemplate="%{text}<br>epoch %{x}<br>" + esc(metric) + " %{y:.4g}<extra></extra>"))
        if status == "diverged":
            ends = group.groupby("trial_id", sort=False).tail(1)
            fig.add_trace(go.Scatter(x=ends["epoch"].to_numpy(), y=ends[metric].to_numpy(), mode="markers",
                                     marker={"symbol": "x", "size": 9, "color": STATUS_COLOURS[status]},
                                     name="diverged here", text=[esc(t) for t in ends["trial_id"]],
                                     hovertemplate="%{text} diverged at epoch %{x}<extra></extra>"))
    if data.best is not None:
        best_id = data.best.trial_id
        best = points[points["trial_id"] == best_id]
        fig.add_trace(go.Scatter(x=best["epoch"].to_numpy(), y=best[metric].to_numpy(), mode="lines",
                                 name=f"best: {esc(best_id)}", line={"color": "#08306b", "width": 3},
                                 hovertemplate="best trial<br>epoch %{x}<br>%{y:.4g}<extra></extra>"))
    return style(fig, height=380, xaxis_title="epoch", yaxis_title=esc(metric))


def _with_gaps(group: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All trials of a group as one line trace, NaN between trials (one SVG path, fast to draw)."""
    ids = group["trial_id"].to_numpy()
    breaks = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    # float32 halves the embedded arrays; a metric needs no more than 7 significant digits on screen
    x = np.insert(group["epoch"].to_numpy(dtype=np.float32), breaks, np.nan)
    y = np.insert(group[metric].to_numpy(dtype=np.float32), breaks, np.nan)
    text = np.insert(np.array([esc(t) for t in ids], dtype=object), breaks, "")
    return x, y, text


def _finding(data: StudyData) -> str:
    trials = data.trials
    counts = trials["status"].value_counts()
    parts = [f"{int(counts.get('completed', 0))} of {len(trials)} trials ran to the end"]
    stopped = trials[trials["status"] == "early_stopped"]
    if len(stopped):
        parts.append(f"{len(stopped)} were stopped early (median at epoch {stopped['epochs_run'].median():.0f})")
    for status in ("diverged", "failed", "running"):
        if counts.get(status, 0):
            parts.append(f"{int(counts[status])} {status.replace('_', ' ')}")
    sentence = "; ".join(parts)
    if data.best is None:
        return sentence + "."
    best = data.best.trial
    at = data.epochs[data.epochs["trial_id"] == best["trial_id"]]
    epoch = ""
    if _has(at, data.metric):
        target = at[data.metric].idxmax() if data.maximize else at[data.metric].idxmin()
        epoch = f" at epoch {int(at.loc[target, 'epoch'])}"
    return f"{sentence}; the best trial, {best['trial_id']}, reached {data.metric} {data.fmt(best['score'])}{epoch}."


def _has(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and bool(frame[column].notna().any())
