"""Design choices: categorical parameters as box/strip plots (similarity x hidden_norm together),
the temperature x batch size heatmap, and the score against each numeric parameter."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.page import Section, esc, figure_html, show, style
from reports.stats import groups_p_value, holm, spans_decades
from reports.study_data import MAX_LEVELS, StudyData

ALPHA = 0.05
_PAIRED = ("param.similarity", "param.hidden_norm")
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def choice_sections(data: StudyData) -> list[Section]:
    """One section per categorical parameter; similarity and hidden_norm share one when both vary."""
    columns = list(data.categorical)
    sections = []
    if all(c in columns for c in _PAIRED):
        sections.append(_choice_section(data, list(_PAIRED)))
        columns = [c for c in columns if c not in _PAIRED]
    sections += [_choice_section(data, [c]) for c in columns]
    return sections


def temperature_batch_section(data: StudyData) -> Section | None:
    """Mean score per (temperature, batch size) cell; None unless both vary."""
    if not {"param.temperature", "param.batch_size"} <= set(data.varying):
        return None
    scored = data.scored
    t_bins, b_bins = binned(scored["param.temperature"]), binned(scored["param.batch_size"])
    cells = scored.groupby([b_bins, t_bins], observed=True)["score"].agg(["mean", "count"])
    t_labels = list(t_bins.cat.categories)
    b_labels = list(b_bins.cat.categories)
    z = np.full((len(b_labels), len(t_labels)), np.nan)
    text = np.full(z.shape, "", dtype=object)
    for (b, t), row in cells.iterrows():
        i, j = b_labels.index(b), t_labels.index(t)
        z[i, j], text[i, j] = row["mean"], f"{row['mean']:.3f}<br>n={int(row['count'])}"
    fig = go.Figure(go.Heatmap(z=z, x=[esc(t) for t in t_labels], y=[esc(b) for b in b_labels], text=text,
                               texttemplate="%{text}", colorscale="Viridis" if data.maximize else "Viridis_r",
                               colorbar={"title": {"text": esc(data.metric)}},
                               hovertemplate="batch %{y}, temperature %{x}: %{z:.4f}<extra></extra>"))
    style(fig, height=160 + 55 * len(b_labels), xaxis_title="temperature", yaxis_title="batch size",
          yaxis={"type": "category"}, xaxis={"type": "category"})
    return Section("temperature-batch", "Temperature x batch size", _heatmap_finding(data, cells),
                   [figure_html(fig)], "Mean score of the trials in each cell; blank cells were not sampled.")


def numeric_section(data: StudyData) -> Section | None:
    """Score against each numeric parameter, one panel each; None when none varies."""
    columns = data.numeric
    if not columns:
        return None
    scored = data.scored
    fig = make_subplots(rows=1, cols=len(columns), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[esc(data.label(c)) for c in columns])
    for k, column in enumerate(columns, start=1):
        fig.add_trace(go.Scatter(x=scored[column].to_numpy(dtype=float), y=scored["score"].to_numpy(),
                                 mode="markers", marker={"size": 6, "color": _PALETTE[0], "opacity": 0.6},
                                 text=[esc(t) for t in scored["trial_id"]], showlegend=False,
                                 hovertemplate="%{text}<br>%{x:.4g}: %{y:.4f}<extra></extra>"), row=1, col=k)
        if spans_decades(scored[column]):
            fig.update_xaxes(type="log", row=1, col=k)
    style(fig, height=340, yaxis_title=esc(data.metric))
    return Section("numeric", "Numeric parameters", _numeric_finding(data), [figure_html(fig)],
                   "Each point is a trial; marginal over the other parameters.")


def binned(column: pd.Series) -> pd.Series:
    """A parameter as ordered categories: its values when few, else 5 (log-)equal-width bins."""
    if column.nunique() <= MAX_LEVELS:
        levels = sorted(column.dropna().unique())
        return pd.Series(pd.Categorical(column.map(show), categories=[show(v) for v in levels], ordered=True),
                         index=column.index, name=column.name)
    values = column.to_numpy(dtype=float)
    log = spans_decades(column)
    edges = np.linspace(*(np.log([values.min(), values.max()]) if log else (values.min(), values.max())), 6)
    edges = np.exp(edges) if log else edges
    labels = [f"{edges[i]:.3g}-{edges[i + 1]:.3g}" for i in range(5)]
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, 4)
    return pd.Series(pd.Categorical([labels[i] for i in index], categories=labels, ordered=True),
                     index=column.index, name=column.name)


def _choice_section(data: StudyData, columns: list[str]) -> Section:
    scored = data.scored
    first = scored[columns[0]].map(show)
    fig = go.Figure()
    if len(columns) == 1:
        fig.add_trace(_box(first, scored, _PALETTE[0], name=data.label(columns[0])))
    else:
        second = scored[columns[1]].map(show)
        for k, level in enumerate(sorted(second.unique())):
            mask = second == level
            fig.add_trace(_box(first[mask], scored[mask], _PALETTE[k % len(_PALETTE)],
                               name=f"{data.label(columns[1])} = {level}"))
        fig.update_layout(boxmode="group")
    style(fig, height=380, xaxis_title=esc(data.label(columns[0])), yaxis_title=esc(data.metric))
    title = " x ".join(data.label(c) for c in columns)
    note = ("Boxes over trials (every trial is a point); tests use each configuration's mean over seeds, "
            "marginal over the other parameters, with Holm's correction across the factors shown.")
    return Section(f"choice-{'-'.join(data.label(c) for c in columns)}", title,
                   _choice_finding(data, columns), [figure_html(fig)], note)


def _box(x: pd.Series, frame: pd.DataFrame, colour: str, *, name: str) -> go.Box:
    return go.Box(x=[esc(v) for v in x], y=frame["score"].to_numpy(), name=esc(name), boxpoints="all",
                  jitter=0.4, pointpos=0, marker={"size": 4, "color": colour, "opacity": 0.6},
                  line={"color": colour}, text=[esc(t) for t in frame["trial_id"]],
                  hovertemplate="%{text}: %{y:.4f}<extra></extra>")


def _choice_finding(data: StudyData, columns: list[str]) -> str:
    configs = data.configs
    keys = configs[columns].apply(lambda r: ", ".join(f"{data.label(c)}={show(r[c])}" for c in columns)
                                  if len(columns) > 1 else show(r[columns[0]]), axis=1)
    means = configs.groupby(keys)["mean"].agg(["mean", "count"]).sort_values("mean", ascending=not data.maximize)
    best, worst = means.index[0], means.index[-1]
    sentence = (f"{best} is best ({means.loc[best, 'mean']:.3f} {data.metric}, {int(means.loc[best, 'count'])} "
                f"configs) and {worst} worst ({means.loc[worst, 'mean']:.3f})")
    p_values = {c: _factor_p_value(configs, c) for c in columns}
    tested = {c: p for c, p in p_values.items() if not math.isnan(p)}
    if not tested:
        return sentence + "; too few configurations to test whether the choice matters."
    adjusted = dict(zip(tested, holm(list(tested.values()))))
    verdicts = [f"{data.label(c)} {'matters' if p < ALPHA else 'makes no significant difference'} (p = {p:.3g})"
                for c, p in adjusted.items()]
    return f"{sentence}; {'; '.join(verdicts)}."


def _factor_p_value(configs: pd.DataFrame, column: str) -> float:
    groups = [g["mean"].to_numpy() for _, g in configs.groupby(configs[column].map(show))]
    if len(groups) < 2 or sum(len(g) for g in groups) < len(groups) + 2:
        return math.nan
    return groups_p_value(groups, np.random.default_rng(0))


def _heatmap_finding(data: StudyData, cells: pd.DataFrame) -> str:
    ordered = cells.sort_values("mean", ascending=not data.maximize)
    (b, t), best = ordered.index[0], ordered.iloc[0]
    sentence = (f"The best cell is temperature {t} with batch size {b}: {best['mean']:.3f} {data.metric} "
                f"(n={int(best['count'])})")
    per_batch = ordered.reset_index().groupby(ordered.index.names[0], observed=True).head(1)
    if len(per_batch) > 1:
        best_t = "; ".join(f"{row.iloc[0]}: {row.iloc[1]}" for _, row in per_batch.sort_values(
            per_batch.columns[0]).iterrows())
        sentence += f"; the best temperature per batch size is {best_t}"
    return sentence + "."


def _numeric_finding(data: StudyData) -> str:
    scored = data.scored
    top = scored.head(max(1, math.ceil(len(scored) / 10)))
    facts = []
    for column in data.numeric[:3]:
        low, high = top[column].min(), top[column].max()
        where = f"{low:.3g}" if low == high else f"{low:.3g}-{high:.3g}"
        facts.append(f"{data.label(column)} {where} (all trials {scored[column].min():.3g}-{scored[column].max():.3g})")
    who = f"The top {len(top)} trials by {data.metric} have" if len(top) > 1 else f"The best trial by {data.metric} has"
    return f"{who} " + ", ".join(facts) + "."

