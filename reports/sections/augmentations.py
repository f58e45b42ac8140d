"""Augmentations: each one's marginal effect (with vs without, bootstrap CI, permutation test with
Holm's correction) and the pair heatmap in the style of the SimCLR paper's Figure 5."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from reports.page import GOOD, NEUTRAL, Section, esc, figure_html, style, table_html
from reports.stats import Difference, compare_means, holm, mean_ci
from reports.study_data import StudyData, split_augmentations
from study_files.schema import AUGMENTATIONS_COLUMN
from study_files.vocabulary import SIMCLR_AUGMENTATIONS

ALPHA = 0.05


@dataclass(frozen=True)
class Effect:
    """One augmentation's effect on the score: with it minus without it, over configurations."""

    name: str
    with_mean: float
    without_mean: float
    difference: Difference
    p_holm: float

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA


def augmentation_effects(data: StudyData) -> list[Effect]:
    """Every augmentation's marginal effect, largest first; configuration means are the unit,
    so that seeds of one configuration do not count as independent evidence."""
    configs = data.configs
    sets = configs[AUGMENTATIONS_COLUMN].map(lambda v: set(split_augmentations(v)))
    rng = np.random.default_rng(0)
    raw = []
    for name in data.augmentations:
        has = sets.map(lambda s, n=name: n in s).to_numpy(dtype=bool)
        with_, without = configs["mean"].to_numpy()[has], configs["mean"].to_numpy()[~has]
        if len(with_) == 0 or len(without) == 0:
            continue
        if len(with_) >= 2 and len(without) >= 2:
            diff = compare_means(with_, without, rng)
        else:
            diff = Difference(float(with_.mean() - without.mean()), math.nan, math.nan, math.nan,
                              len(with_), len(without))
        raw.append((name, float(with_.mean()), float(without.mean()), diff))
    tested = [i for i, r in enumerate(raw) if not math.isnan(r[3].p_value)]
    adjusted = dict(zip(tested, holm([raw[i][3].p_value for i in tested]))) if tested else {}
    effects = [Effect(n, w, wo, d, adjusted.get(i, math.nan)) for i, (n, w, wo, d) in enumerate(raw)]
    sign = 1 if data.maximize else -1
    return sorted(effects, key=lambda e: -sign * e.difference.diff)


def effects_section(data: StudyData) -> Section | None:
    """The marginal-effect chart and table; None unless the study varied its augmentations."""
    if not data.augmentations:
        return None
    effects = augmentation_effects(data)
    if not effects:
        return None
    fig = go.Figure(go.Scatter(
        x=[e.difference.diff for e in effects], y=[esc(e.name) for e in effects], mode="markers",
        marker={"size": 11, "color": [GOOD if e.significant else NEUTRAL for e in effects]},
        error_x={"type": "data", "symmetric": False, "color": "#555",
                 "array": [_nan0(e.difference.hi - e.difference.diff) for e in effects],
                 "arrayminus": [_nan0(e.difference.diff - e.difference.lo) for e in effects]},
        customdata=[[e.with_mean, e.without_mean, e.p_holm] for e in effects],
        hovertemplate="%{y}: %{x:+.4f}<br>with %{customdata[0]:.4f}, without %{customdata[1]:.4f}"
                      "<br>Holm p = %{customdata[2]:.3g}<extra></extra>", showlegend=False))
    fig.add_vline(x=0, line={"color": "#888", "dash": "dash"})
    style(fig, height=max(220, 60 + 42 * len(effects)),
          xaxis_title=f"effect on mean {esc(data.metric)} (with - without), 95% bootstrap CI",
          yaxis={"autorange": "reversed"})
    rows = [[e.name, data.fmt(e.with_mean), data.fmt(e.without_mean), f"{e.difference.diff:+.4f}",
             _interval(e.difference), f"{e.difference.n_a} / {e.difference.n_b}", _p(e.difference.p_value),
             _p(e.p_holm), "yes" if e.significant else ("untested" if math.isnan(e.p_holm) else "no")]
            for e in effects]
    table = table_html(["augmentation", "with", "without", "difference", "95% CI", "configs with / without",
                        "p", "p (Holm)", f"real at {ALPHA:g}"], rows, css_class="plain")
    note = ("Each configuration's mean over its seeds is one observation. p: two-sided permutation test of "
            "equal means; Holm's correction across augmentations. Blue points are significant.")
    return Section("augmentations", "Augmentations: marginal effects", _effects_finding(data, effects),
                   [figure_html(fig), table], note)


def pairs_section(data: StudyData) -> Section | None:
    """The Figure-5 heatmap: pairs off the diagonal, singles on it; None without such trials."""
    if not data.augmentations:
        return None
    cells = _pair_cells(data)
    if len(cells) < 2 or not any(len(k) == 2 for k in cells):
        return None
    names = sorted({n for k in cells for n in k}, key=_paper_rank)
    index = {n: i for i, n in enumerate(names)}
    z = np.full((len(names), len(names)), np.nan)
    text = np.full((len(names), len(names)), "", dtype=object)
    for key, ci in cells.items():
        i, j = (index[key[0]], index[key[-1]])
        label = f"{ci.mean:.3f}" + (f"<br>±{ci.std:.3f}" if ci.n > 1 else "")
        for a, b in {(i, j), (j, i)}:
            z[a, b], text[a, b] = ci.mean, label
    labels = [esc(n) for n in names]
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=labels, text=text, texttemplate="%{text}",
                               colorscale="Greens" if data.maximize else "Greens_r",
                               colorbar={"title": {"text": esc(data.metric)}},
                               hovertemplate="%{y} + %{x}: %{z:.4f}<extra></extra>"))
    style(fig, height=140 + 70 * len(names), xaxis_title="augmentation", yaxis_title="augmentation",
          yaxis={"autorange": "reversed", "showgrid": False},
          xaxis={"showgrid": False, "scaleanchor": "y", "constrain": "domain"},
          plot_bgcolor="#f3f4f7")
    note = "Mean score over the seeds of each single augmentation (diagonal) or pair; blank cells were not run."
    return Section("pairs", "Augmentation pairs", _pairs_finding(data, cells), [figure_html(fig)], note)


def _pair_cells(data: StudyData) -> dict[tuple[str, ...], object]:
    sets = data.scored[AUGMENTATIONS_COLUMN].map(lambda v: tuple(sorted(split_augmentations(v), key=_paper_rank)))
    cells = {}
    for key, group in data.scored.groupby(sets, sort=False):
        if 1 <= len(key) <= 2:
            cells[key] = mean_ci(group["score"].to_numpy())
    return cells


def _pairs_finding(data: StudyData, cells: dict) -> str:
    pairs = {k: v for k, v in cells.items() if len(k) == 2}
    pick = max if data.maximize else min
    key = pick(pairs, key=lambda k: pairs[k].mean)
    best = pairs[key]
    seeds = f" ± {best.std:.3f}" if best.n > 1 else ""
    sentence = (f"{' + '.join(key)} is the best pair: {best.mean:.3f}{seeds} {data.metric} over "
                f"{best.n} trial{'s' if best.n != 1 else ''}")
    singles = [cells[(n,)] for n in key if (n,) in cells]
    if singles:
        alone = pick(singles, key=lambda c: c.mean)
        which = [n for n in key if (n,) in cells and cells[(n,)] is alone][0]
        gap = best.mean - alone.mean
        better = gap > 0 if data.maximize else gap < 0
        sentence += f", {abs(gap):.3f} {'better' if better else 'worse'} than {which} alone"
    return sentence + "."


def _effects_finding(data: StudyData, effects: list[Effect]) -> str:
    """Headline the augmentation with the largest absolute significant effect, helping or hurting;
    without a significant one, the largest absolute effect, said to be unproven."""
    tested = [e for e in effects if not math.isnan(e.p_holm)]
    real = sorted((e for e in effects if e.significant), key=lambda e: -abs(e.difference.diff))
    top = real[0] if real else max(effects, key=lambda e: abs(e.difference.diff))
    amount = (f"{top.difference.diff:+.3f} {data.metric} with it compared with without it"
              + (f" (95% CI {_interval(top.difference)})" if not math.isnan(top.difference.lo) else ""))
    if real:
        verb = "is" if len(real) == 1 else "are"
        return (f"{top.name} matters most, and it {_direction(data, top)}: {amount}; {len(real)} of "
                f"{len(tested)} effects {verb} real after Holm's correction (p < {ALPHA:g}): "
                f"{', '.join(e.name for e in real)}.")
    would = _direction(data, top, would=True)
    if not tested:
        return (f"{top.name} has the largest effect, and it {would}: {amount}; too few configurations "
                "to test whether any difference is real.")
    return (f"No augmentation's effect is significant after Holm's correction (p < {ALPHA:g}); the largest "
            f"is {top.name}'s, which {would}: {amount}.")


def _direction(data: StudyData, effect: Effect, *, would: bool = False) -> str:
    diff = effect.difference.diff
    if diff == 0:
        return "would make no difference" if would else "makes no difference"
    helps = (diff > 0) == data.maximize
    if would:
        return "would help" if helps else "would hurt"
    return "helps" if helps else "hurts"


def _paper_rank(name: str) -> tuple[int, str]:
    order = SIMCLR_AUGMENTATIONS
    return (order.index(name) if name in order else len(order), name)


def _interval(diff: Difference) -> str:
    return "n/a" if math.isnan(diff.lo) else f"[{diff.lo:+.3f}, {diff.hi:+.3f}]"


def _p(p: float) -> str:
    return "n/a" if math.isnan(p) else (f"{p:.3f}" if p >= 0.001 else "<0.001")


def _nan0(value: float) -> float:
    return 0.0 if math.isnan(value) else value

