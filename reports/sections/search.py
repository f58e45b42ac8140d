"""How the search went: parallel coordinates, parameter importance, the optimisation history and
the score against compute with its Pareto front."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.importance import FANOVA_MAX_TRIALS, parameter_importance
from reports.page import GOOD, STATUS_COLOURS, Section, esc, figure_html, show, style
from reports.stats import pareto_front, spans_decades
from reports.study_data import StudyData, is_categorical

_BANDS = ("#d9d9d9", "#a6bddb", "#67a9cf", "#1c9099", "#016c59")  # worst to best fifth of the trials
_BAND_NAMES = ("bottom 20%", "20-40%", "40-60%", "60-80%", "top 20%")


def parallel_section(data: StudyData) -> Section | None:
    """Parallel coordinates over every varying parameter and the score; lines by score band.

    Drawn as SVG lines (one trace per band) rather than plotly's WebGL parcoords, so the chart
    renders on machines without WebGL and stays small for thousands of trials.
    """
    features = data.features
    if features.shape[1] < 2 or len(features) < 3:
        return None
    axes = list(features.columns) + [data.metric]
    columns = [_normalise(features[c]) for c in features.columns] + [_normalise(data.scored["score"])]
    positions = np.column_stack([c[0] for c in columns])
    rank = data.scored["score"].rank(method="first", ascending=data.maximize).to_numpy()
    band = np.minimum((rank - 1) * len(_BANDS) // len(rank), len(_BANDS) - 1).astype(int)
    fig = go.Figure()
    xs = np.arange(len(axes), dtype=float)
    for k in range(len(_BANDS)):
        rows = positions[band == k]
        if len(rows) == 0:
            continue
        x = np.tile(np.append(xs, np.nan), len(rows))
        y = np.hstack([rows, np.full((len(rows), 1), np.nan)]).ravel()
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=_BAND_NAMES[k], hoverinfo="skip",
                                 line={"color": _BANDS[k], "width": 1.6 if k == len(_BANDS) - 1 else 1}))
    fig.update_layout(annotations=[  # one update: add_annotation copies the layout each time
        {"x": i, "y": value, "text": esc(label), "showarrow": False, "xanchor": "left", "xshift": 3,
         "font": {"size": 10, "color": "#444"}, "bgcolor": "rgba(255,255,255,0.7)"}
        for i, (_, ticks) in enumerate(columns) for value, label in ticks])
    style(fig, height=420, xaxis={"tickvals": xs, "ticktext": [esc(a) for a in axes], "showgrid": True,
                                  "gridcolor": "#888", "zeroline": False, "range": [-0.2, len(axes) - 0.6]},
          yaxis={"visible": False, "range": [-0.05, 1.05]})
    return Section("parallel", "Parallel coordinates", _parallel_finding(data),
                   [figure_html(fig)], "Each line is a scored trial, coloured by its score's fifth of the study.")


def importance_section(data: StudyData) -> Section | None:
    """Parameter importance as a bar chart; None when fewer than two parameters vary."""
    importance = parameter_importance(data.features, data.scored["score"])
    if importance is None:
        return None
    names = list(importance.values)
    fig = go.Figure(go.Bar(x=[importance.values[n] for n in names], y=[esc(n) for n in names], orientation="h",
                           marker={"color": GOOD}, hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    style(fig, height=max(220, 60 + 30 * len(names)), xaxis={"tickformat": ".0%", "title": {"text": "importance"}},
          yaxis={"autorange": "reversed"})
    top = names[0]
    finding = f"{top} explains the most variation in {data.metric} ({importance.values[top]:.0%})"
    if len(names) > 1:
        finding += f", then {names[1]} ({importance.values[names[1]]:.0%})"
    minor = [n for n in names if importance.values[n] < 0.05]
    if minor:
        finding += f"; {len(minor)} of {len(names)} explain under 5% each"
    if len(data.scored) < 10:
        finding += f" (from only {len(data.scored)} trials: a rough estimate)"
    if importance.sampled_from:
        finding += f" (fANOVA on a random {FANOVA_MAX_TRIALS} of the {importance.sampled_from} scored trials)"
    return Section("importance", "Parameter importance", finding + ".", [figure_html(fig)],
                   f"Estimated by {importance.method}; +name columns are an augmentation's presence.")


def history_section(data: StudyData) -> Section | None:
    """Score by trial in the order trials started, with the best so far; None under 2 trials."""
    scored = data.scored.sort_values(["started_at", "trial_id"], kind="stable")
    if len(scored) < 2:
        return None
    order = np.arange(1, len(scored) + 1)
    score = scored["score"].to_numpy()
    best = np.maximum.accumulate(score) if data.maximize else np.minimum.accumulate(score)
    fig = go.Figure()
    for status in scored["status"].unique():
        mask = (scored["status"] == status).to_numpy()
        fig.add_trace(go.Scatter(x=order[mask], y=score[mask], mode="markers", name=status.replace("_", " "),
                                 marker={"color": STATUS_COLOURS.get(status, "#555"), "size": 6, "opacity": 0.7},
                                 text=[esc(t) for t in scored["trial_id"][mask]],
                                 hovertemplate="%{text} (#%{x}): %{y:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=order, y=best, mode="lines", name="best so far", line={"color": "#08306b",
                                                                                      "shape": "hv"}))
    style(fig, height=340, xaxis_title="trial (in the order started)", yaxis_title=esc(data.metric))
    return Section("history", "Optimisation history", _history_finding(data, scored, best),
                   [figure_html(fig)])


def cost_section(data: StudyData) -> Section | None:
    """Score against GPU-seconds (wall-clock seconds when no GPU was used), Pareto front drawn."""
    scored = data.scored
    used_gpu = bool((scored["gpu_s"].fillna(0) > 0).any())
    column, unit = ("gpu_s", "GPU-seconds") if used_gpu else ("wall_s", "wall-clock seconds")
    scored = scored[np.isfinite(scored[column].to_numpy(dtype=float))]
    if len(scored) < 2:
        return None
    cost, score = scored[column].to_numpy(dtype=float), scored["score"].to_numpy()
    front = pareto_front(cost, score, maximize=data.maximize)
    order = np.argsort(cost[front])
    fig = go.Figure([
        go.Scatter(x=cost, y=score, mode="markers", name="trials", text=[esc(t) for t in scored["trial_id"]],
                   marker={"color": "#9ecae1", "size": 6},
                   hovertemplate="%{text}: %{y:.4f} for %{x:.4g}<extra></extra>"),
        go.Scatter(x=cost[front][order], y=score[front][order], mode="lines+markers", name="Pareto front",
                   line={"color": "#d62728", "shape": "hv"}, marker={"size": 8},
                   text=[esc(t) for t in scored["trial_id"].to_numpy()[front][order]],
                   hovertemplate="%{text}: %{y:.4f} for %{x:.4g}<extra></extra>")])
    style(fig, height=360, xaxis={"title": {"text": unit}, "type": "log" if spans_decades(cost, 100) else "linear"},
          yaxis_title=esc(data.metric))
    return Section("cost", f"{data.metric} against {unit}", _cost_finding(data, scored, cost, score, front, unit),
                   [figure_html(fig)])


def _normalise(column: pd.Series) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Positions in [0, 1] for one axis, and the (position, label) ticks to write beside it."""
    if is_categorical(column):
        levels = sorted(column.dropna().unique(), key=lambda v: (str(type(v)), v))
        where = {v: (i / (len(levels) - 1) if len(levels) > 1 else 0.5) for i, v in enumerate(levels)}
        return column.map(where).to_numpy(dtype=float), [(where[v], show(v)) for v in levels]
    values = column.to_numpy(dtype=float)
    low, high = np.nanmin(values), np.nanmax(values)
    scale = np.log if spans_decades(values) else (lambda v: v)
    span = scale(high) - scale(low) or 1.0
    return (scale(values) - scale(low)) / span, [(0.0, show(float(low))), (1.0, show(float(high)))]


def _parallel_finding(data: StudyData) -> str:
    features, score = data.features, data.scored["score"]
    top = features.iloc[: max(2, math.ceil(len(features) / 10))]  # scored is sorted best first
    facts: list[tuple[float, str]] = []
    for column in features.columns:
        if is_categorical(features[column]):
            shares = top[column].value_counts(normalize=True)
            value, share = shares.index[0], float(shares.iloc[0])
            overall = float((features[column] == value).mean())
            facts.append((share - overall, f"{column} = {show(value)} ({share:.0%} of them vs {overall:.0%} of all)"))
        else:
            low, high = top[column].min(), top[column].max()
            width = (_width(top[column]) / _width(features[column])) if _width(features[column]) else 1.0
            facts.append((1 - width, f"{column} in {low:.3g}-{high:.3g} (all {features[column].min():.3g}-"
                                     f"{features[column].max():.3g})"))
    facts.sort(key=lambda f: -f[0])
    picked = [text for lift, text in facts[:2] if lift > 0.1]
    if not picked:
        return f"The top {len(top)} trials share no parameter value much more often than the rest of the study."
    return f"The top {len(top)} trials by {data.metric} have " + " and ".join(picked) + "."


def _history_finding(data: StudyData, scored: pd.DataFrame, best: np.ndarray) -> str:
    n = len(best)
    final = best[-1]
    first_at = int(np.flatnonzero(best == final)[0]) + 1
    sentence = (f"The best {data.metric}, {data.fmt(final)}, came at trial {first_at} of {n} "
                f"({scored['trial_id'].iloc[first_at - 1]})")
    quarter = n - max(1, n // 4)
    gain = abs(final - best[quarter - 1]) if quarter >= 1 else 0.0
    if quarter >= 1 and n >= 4:
        sentence += (f"; the last quarter of the trials improved it by {gain:.3f}" if gain > 0
                     else "; the last quarter of the trials did not improve it")
    return sentence + "."


def _cost_finding(data: StudyData, scored: pd.DataFrame, cost: np.ndarray, score: np.ndarray,
                  front: np.ndarray, unit: str) -> str:
    best = int(np.argmax(score) if data.maximize else np.argmin(score))
    tolerance = 0.01 * abs(score[best])
    near = np.flatnonzero(np.abs(score - score[best]) <= tolerance)
    cheapest = int(near[np.argmin(cost[near])])
    sentence = f"{int(front.sum())} of {len(score)} trials are on the Pareto front"
    ids = scored["trial_id"].to_numpy()
    if cheapest != best and cost[cheapest] < cost[best]:
        sentence += (f"; {ids[cheapest]} comes within 1% of the best {data.metric} ({data.fmt(score[cheapest])} vs "
                     f"{data.fmt(score[best])}) for {cost[cheapest]:.3g} {unit}, "
                     f"{saving(cost[cheapest], cost[best])} than the best trial's {cost[best]:.3g}")
    else:
        sentence += f"; the best trial, {ids[best]}, is also the cheapest within 1% of it ({cost[best]:.3g} {unit})"
    return sentence + "."


def saving(cheaper: float, dearer: float) -> str:
    """How much less ``cheaper`` costs than ``dearer``: "3.2x less" for big savings, "12% less" for small."""
    if cheaper <= 0 or dearer / cheaper >= 1.5:
        return f"{dearer / max(cheaper, 1e-12):.1f}x less"
    return f"{100 * (1 - cheaper / dearer):.0f}% less"


def _width(column: pd.Series) -> float:
    values = column.to_numpy(dtype=float)
    if spans_decades(values):
        values = np.log(values)
    return float(np.nanmax(values) - np.nanmin(values))
