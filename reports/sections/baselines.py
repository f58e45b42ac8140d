"""What the trials are measured against (random-init encoder, PCA of the pixels) and what the best
trial learned: t-SNE maps of its representation h and of its projection g(h), side by side."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.page import Section, esc, figure_html, style, table_html
from reports.study_data import StudyData
from study_files.schema import BASELINE_METRICS, best_column

BASELINE_NAMES = {"random_init": "random-init encoder", "pca": "PCA of the pixels"}
NEIGHBOURS = 10
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf")


def baselines_section(data: StudyData) -> Section | None:
    """The best trial beside each baseline, metric by metric; None when the study asked for none."""
    baselines = data.baselines
    if baselines is None or baselines.empty:
        return None
    metrics = [m for m in BASELINE_METRICS if m in baselines and baselines[m].notna().any()]
    best = {m: _best(data, m) for m in metrics}
    fig = go.Figure()
    fig.add_bar(name="best trial", x=metrics, y=[best[m] for m in metrics], marker_color="#1f77b4",
                hovertemplate="best trial, %{x}: %{y:.4f}<extra></extra>")
    for colour, row in zip(("#9aa0a6", "#d0a060", "#7f7f7f"), baselines.to_dict("records")):
        label = BASELINE_NAMES.get(row["baseline"], row["baseline"])
        fig.add_bar(name=esc(label), x=metrics, y=[row.get(m) for m in metrics], marker_color=colour,
                    hovertemplate=esc(label) + ", %{x}: %{y:.4f}<extra></extra>")
    style(fig, height=340, barmode="group", yaxis_title="score (higher is better)")
    headers = ["", *metrics]
    rows = [["best trial", *[data.fmt(best[m]) for m in metrics]]]
    rows += [[BASELINE_NAMES.get(r["baseline"], r["baseline"]), *[data.fmt(_float(r.get(m))) for m in metrics]]
             for r in baselines.to_dict("records")]
    note = (f"The best trial is {_which_trial(data)}. "
            "Baselines are scored once, after the trials, on the best trial's data with the trials' "
            "probes (weighted kNN on h; the linear probe on standardised h with its L2 strength chosen on a "
            "validation split). A trial's score is its best over epochs; a blank means the trials did not "
            "compute that metric (linear_top1 needs linear_eval: true).")
    return Section("baselines", "Against the baselines", _baselines_finding(data, baselines, best),
                   [figure_html(fig), table_html(headers, rows)], note)


def embeddings_section(data: StudyData) -> Section | None:
    """t-SNE of h and of g(h) for a sample of the best trial's test images; None without an export."""
    arrays = data.embeddings
    if not arrays:
        return None
    labels = np.asarray(arrays["labels"])
    regression = labels.ndim == 2 or labels.dtype.kind == "f"
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.06,
                        subplot_titles=("h: the representation (encoder output)", "z = g(h): the projection"))
    for col, key in ((1, "tsne_h"), (2, "tsne_z")):
        points = np.asarray(arrays[key])
        if regression:
            target = labels[:, 0] if labels.ndim == 2 else labels
            name = _target_name(arrays)
            fig.add_scatter(x=points[:, 0], y=points[:, 1], mode="markers", row=1, col=col, showlegend=False,
                            marker={"size": 5, "color": target, "colorscale": "Viridis",
                                    "showscale": col == 2, "colorbar": {"title": {"text": esc(name)}}},
                            hovertemplate=esc(name) + " %{marker.color:.3f}<extra></extra>")
            continue
        names = arrays.get("target_names")
        for k, cls in enumerate(np.unique(labels)):
            mask = labels == cls
            name = esc(names[int(cls)]) if names is not None and int(cls) < len(names) else f"class {int(cls)}"
            fig.add_scatter(x=points[mask, 0], y=points[mask, 1], mode="markers", row=1, col=col,
                            name=name, legendgroup=name, showlegend=col == 1,
                            marker={"size": 5, "color": _PALETTE[k % len(_PALETTE)]},
                            hovertemplate=name + "<extra></extra>")
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    style(fig, height=500)
    # The legend above the two panels' titles.
    fig.update_layout(margin={"l": 20, "r": 20, "t": 90, "b": 20}, legend={"y": 1.14})
    note = (f"{len(labels)} test images of {_which_trial(data, str(arrays.get('trial_id', '')) or None)}, "
            "embedded by its last checkpoint and mapped to 2-D "
            "by t-SNE (perplexity 30), each space on its own. Distances between clusters in a t-SNE map "
            "are not meaningful; which points share a cluster is.")
    return Section("embeddings", "What the best trial learned: h against g(h)",
                   _embeddings_finding(arrays, labels, regression), [figure_html(fig)], note)


# -- findings -------------------------------------------------------------------------------------


def _best(data: StudyData, metric: str) -> float:
    """The best trial's (`study_files.best`: the best configuration's best seed) own value of ``metric``."""
    if data.best is None:
        return math.nan
    return _float(data.best.trial.get(best_column(metric)))


def _which_trial(data: StudyData, trial_id: str | None = None) -> str:
    """Names the trial shown as the best one, and what makes it so."""
    if data.best is None:
        return f"trial {trial_id}" if trial_id else "the best trial"
    if trial_id and trial_id != data.best.trial_id:
        return f"trial {trial_id} (the best configuration's best seed is now trial {data.best.trial_id})"
    if data.best.seeds > 1:
        return (f"trial {data.best.trial_id} (the best of the {data.best.seeds} seeds of the best configuration, "
                f"{data.best.name}, best by its mean)")
    return f"trial {data.best.trial_id} (the best configuration, {data.best.name})"


def _float(value: object) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _baselines_finding(data: StudyData, baselines: pd.DataFrame, best: dict[str, float]) -> str:
    metric = data.metric if data.metric in best and math.isfinite(best[data.metric]) else next(
        (m for m in best if math.isfinite(best[m])), None)
    if metric is None:
        return "No trial has a score comparable with the baselines yet."
    parts, beaten = [], []
    for row in baselines.to_dict("records"):
        value = _float(row.get(metric))
        if not math.isfinite(value):
            continue
        label = BASELINE_NAMES.get(row["baseline"], row["baseline"])
        gap = best[metric] - value
        parts.append(f"{'+' if gap >= 0 else '-'}{data.fmt(abs(gap))} against the {label} ({data.fmt(value)})")
        beaten.append(gap > 0)
    if not parts:
        return f"The baselines have no {metric} to compare with."
    verdict = ("it beats every baseline" if all(beaten) else
               "it does not beat every baseline: the training has not yet learned more than the baseline gives")
    return f"The best trial's {metric} is {data.fmt(best[metric])}: {'; '.join(parts)}; {verdict}."


def _embeddings_finding(arrays: dict, labels: np.ndarray, regression: bool) -> str:
    if regression:
        return ("Each map is coloured by the first generative factor; a smooth colour gradient means the "
                "space keeps that factor, which SimCLR's g(h) tends to discard in favour of invariance.")
    # Fewer neighbours than half the smallest class, so that a small sample can still vote right.
    k = int(max(1, min(NEIGHBOURS, np.unique(labels, return_counts=True)[1].min() // 2)))
    h = knn_agreement(np.asarray(arrays["h"]), labels, k)
    z = knn_agreement(np.asarray(arrays["z"]), labels, k)
    # Two binomial standard errors of a rate on this many images: a smaller gap is sampling noise.
    noise = 2 * math.sqrt(max((h + z) / 2 * (1 - (h + z) / 2), 1e-12) / len(labels))
    if h - z > noise:
        verdict = "h separates the classes better than g(h), as the SimCLR paper found (its section 4.2)"
    elif z - h > noise:
        verdict = "here g(h) separates the classes better than h, unlike what the SimCLR paper found"
    else:
        verdict = (f"on {len(labels)} images that gap is within sampling noise (±{noise:.0%}), so neither "
                   "space separates the classes clearly better")
    return (f"A {k}-nearest-neighbour vote (cosine, leave-one-out) recovers the class of "
            f"{h:.0%} of these images in h and {z:.0%} in g(h): {verdict}.")


def knn_agreement(features: np.ndarray, labels: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Leave-one-out accuracy of a majority vote among each point's k nearest (cosine) neighbours;
    ties go to the smallest label."""
    x = features.astype(np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    k = min(k, len(x) - 1)
    nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    classes, codes = np.unique(labels, return_inverse=True)
    votes = np.zeros((len(x), len(classes)), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(x)), k), codes[nearest].ravel()), 1)
    return float((votes.argmax(axis=1) == codes).mean())


def _target_name(arrays: dict) -> str:
    names = arrays.get("target_names")
    if names is not None and len(np.atleast_1d(names)):
        return str(np.atleast_1d(names)[0])
    return "target 0"
