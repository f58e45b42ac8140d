"""The numbers and names in each section's finding, against references computed here in float64
from the trials written (never from the report's own helpers)."""
from __future__ import annotations

import itertools
import math
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from report_html import finding, section, traces
from synthetic_study import make_study

from reports.report import build_report
from reports.sections.augmentations import Effect, _effects_finding
from reports.sections.search import saving
from reports.stats import Difference
from study_files.tables import StudyTables

FOUR = ("crop", "flip", "color_jitter", "blur")
SUBSETS = [s for k in range(1, 5) for s in itertools.combinations(FOUR, k)]  # 15 non-empty subsets


@pytest.fixture(scope="module")
def scored(study) -> pd.DataFrame:
    """The trials the report's statistics use (finite score, not failed), scored as float64."""
    trials = StudyTables(study).read_trials()
    trials = trials[(trials["status"] != "failed") & np.isfinite(trials["best.knn_top1"].astype(float))].copy()
    trials["score"] = trials["best.knn_top1"].astype(np.float64)
    return trials


def _write_study(folder: Path, rows: list[dict], metric: str = "knn_top1", goal: str = "maximize") -> Path:
    """A study of one completed trial per row, each trial a configuration of its own."""
    folder.mkdir(parents=True)
    (folder / "study.yaml").write_text(yaml.safe_dump(
        {"name": "findings", "metric": {"name": metric, "goal": goal}, "method": "grid"}))
    StudyTables(folder).upsert_trials([
        {"trial_id": f"t{i:03d}", "config_id": f"c{i:03d}", "seed": 0, "status": "completed", **row}
        for i, row in enumerate(rows)])
    return folder


def _effect_of(rows: list[dict], name: str, column: str) -> float:
    """Mean score of the configurations with ``name`` minus the mean of those without, in float64."""
    with_ = [r[column] for r in rows if name in r["param.augmentations"].split(",")]
    without = [r[column] for r in rows if name not in r["param.augmentations"].split(",")]
    return float(np.mean(np.array(with_, dtype=np.float64)) - np.mean(np.array(without, dtype=np.float64)))


# -- augmentations: the headline is the largest absolute significant effect, helping or hurting --


def test_a_strongly_harmful_augmentation_is_the_headline(tmp_path):
    rows = [{"param.augmentations": ",".join(s), "best.knn_top1": 0.5 - 0.2 * ("blur" in s)} for s in SUBSETS]
    text = finding(build_report(_write_study(tmp_path / "s", rows)).read_text(), "augmentations")
    diff = _effect_of(rows, "blur", "best.knn_top1")
    assert diff == pytest.approx(-0.2)
    # every configuration with blur scores the same, and every one without: the bootstrap CI is a point
    assert text == (f"blur matters most, and it hurts: {diff:+.3f} knn_top1 with it compared with without it "
                       f"(95% CI [{diff:+.3f}, {diff:+.3f}]); 1 of 4 effects is real after Holm's correction "
                       "(p < 0.05): blur.")


def test_a_strongly_helpful_augmentation_is_the_headline(tmp_path):
    rows = [{"param.augmentations": ",".join(s), "best.knn_top1": 0.4 + 0.25 * ("crop" in s)} for s in SUBSETS]
    text = finding(build_report(_write_study(tmp_path / "s", rows)).read_text(), "augmentations")
    diff = _effect_of(rows, "crop", "best.knn_top1")
    assert text == (f"crop matters most, and it helps: {diff:+.3f} knn_top1 with it compared with without it "
                       f"(95% CI [{diff:+.3f}, {diff:+.3f}]); 1 of 4 effects is real after Holm's correction "
                       "(p < 0.05): crop.")


def test_lowering_a_minimised_metric_helps(tmp_path):
    rows = [{"param.augmentations": ",".join(s), "best.loss": 2.0 - 0.5 * ("crop" in s)} for s in SUBSETS]
    page = build_report(_write_study(tmp_path / "s", rows, metric="loss", goal="minimize")).read_text()
    diff = _effect_of(rows, "crop", "best.loss")
    assert diff == pytest.approx(-0.5)
    assert finding(page, "augmentations") == (
        f"crop matters most, and it helps: {diff:+.3f} loss with it compared with without it (95% CI [{diff:+.3f}, "
        f"{diff:+.3f}]); 1 of 4 effects is real after Holm's correction (p < 0.05): crop.")


def _effect(name: str, diff: float, p_holm: float) -> Effect:
    return Effect(name, 0.5 + diff, 0.5, Difference(diff, diff - 0.05, diff + 0.05, p_holm, 6, 6), p_holm)


def test_the_headline_is_the_largest_significant_effect_not_the_largest_positive_one():
    effects = [_effect("crop", 0.30, 0.2), _effect("flip", 0.05, 0.03), _effect("blur", -0.10, 0.01)]
    data = SimpleNamespace(metric="knn_top1", maximize=True)
    assert _effects_finding(data, effects) == (
        "blur matters most, and it hurts: -0.100 knn_top1 with it compared with without it (95% CI [-0.150, -0.050]); "
        "2 of 3 effects are real after Holm's correction (p < 0.05): blur, flip.")


def test_without_a_significant_effect_the_largest_is_named_as_unproven():
    effects = [_effect("crop", 0.02, 0.6), _effect("blur", -0.04, 0.3)]
    data = SimpleNamespace(metric="knn_top1", maximize=True)
    assert _effects_finding(data, effects) == (
        "No augmentation's effect is significant after Holm's correction (p < 0.05); the largest is blur's, "
        "which would hurt: -0.040 knn_top1 with it compared with without it (95% CI [-0.090, +0.010]).")


# -- the pair heatmap ------------------------------------------------------------------------------


def _set_means(scored: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std and count of the score over the trials of each augmentation set, indexed by
    the set as the tables write it (sorted, comma-joined)."""
    return scored.groupby("param.augmentations")["score"].agg(["mean", "std", "count"])


def _key(*names: str) -> str:
    return ",".join(sorted(set(names)))


def test_pair_heatmap_holds_singles_on_the_diagonal_and_pairs_off_it(page, scored):
    (heatmap,) = traces(section(page, "pairs"))
    names = heatmap["x"]
    assert heatmap["y"] == names and sorted(names) == sorted(["crop", "flip", "color_jitter", "grayscale", "blur"])
    means = _set_means(scored)["mean"]
    expected = np.array([[means.get(_key(a, b), math.nan) for b in names] for a in names])
    assert not np.isnan(expected).any()  # the synthetic study ran every single and every pair
    np.testing.assert_allclose(np.asarray(heatmap["z"], dtype=float), expected, rtol=1e-12)


def test_pairs_finding_names_the_best_pair_with_its_mean_and_its_gain_over_the_better_single(page, scored):
    stats = _set_means(scored)
    pairs = stats[stats.index.str.count(",") == 1]
    best = pairs["mean"].idxmax()
    a, b = sorted(best.split(","), key=["crop", "flip", "color_jitter", "grayscale", "blur"].index)  # paper order
    singles = {n: stats.loc[n, "mean"] for n in (a, b)}
    alone = max(singles, key=singles.get)
    gap = pairs.loc[best, "mean"] - singles[alone]
    n = int(pairs.loc[best, "count"])
    assert finding(page, "pairs") == (
        f"{a} + {b} is the best pair: {pairs.loc[best, 'mean']:.3f} ± {pairs.loc[best, 'std']:.3f} knn_top1 over "
        f"{n} trials, {abs(gap):.3f} {'better' if gap > 0 else 'worse'} than {alone} alone.")


# -- loss and projection head: generic categorical sections ---------------------------------------

LOSS_EFFECT = {"nt_xent": 0.10, "nt_logistic": 0.04, "margin_triplet": 0.0}
HEAD_EFFECT = {"nonlinear": 0.08, "linear": 0.03, "none": 0.0}
PROJECTION_DIMS = (64, 128, 256)  # no effect


@pytest.fixture(scope="module")
def loss_head_study(tmp_path_factory) -> tuple[str, list[dict]]:
    rng = np.random.default_rng(7)
    rows = []
    for loss, head, dim in itertools.product(LOSS_EFFECT, HEAD_EFFECT, PROJECTION_DIMS):
        for seed in range(2):
            rows.append({"config_id": f"{loss}-{head}-{dim}", "seed": seed, "param.loss": loss, "param.head": head,
                         "param.projection_dim": dim,
                         "best.knn_top1": 0.5 + LOSS_EFFECT[loss] + HEAD_EFFECT[head] + rng.normal(0, 0.01)})
    folder = tmp_path_factory.mktemp("loss-head")
    (folder / "study.yaml").write_text(yaml.safe_dump({"name": "heads", "metric": "knn_top1", "method": "grid"}))
    StudyTables(folder).upsert_trials([{"trial_id": f"t{i:03d}", "status": "completed", **r}
                                       for i, r in enumerate(rows)])
    return build_report(folder).read_text(), rows


@pytest.mark.parametrize(("column", "section_id", "best", "worst"), [
    ("param.loss", "choice-loss", "nt_xent", "margin_triplet"),
    ("param.head", "choice-head", "nonlinear", "none"),
])
def test_loss_and_head_sections_name_the_best_and_worst_choice_with_their_means(
        loss_head_study, column, section_id, best, worst):
    page, rows = loss_head_study
    frame = pd.DataFrame(rows)
    configs = frame.groupby("config_id").agg(mean=("best.knn_top1", "mean"), level=(column, "first"))
    levels = configs.groupby("level")["mean"].agg(["mean", "count"])  # a level's mean over its configurations
    label = column.removeprefix("param.")
    text = finding(page, section_id)
    assert text.startswith(f"{best} is best ({levels.loc[best, 'mean']:.3f} knn_top1, {levels.loc[best, 'count']} "
                           f"configs) and {worst} worst ({levels.loc[worst, 'mean']:.3f}); {label} matters (p = ")
    assert float(text.split("(p = ")[1].removesuffix(").")) < 0.05


def test_an_unimportant_projection_dim_gets_its_section_and_no_verdict_that_it_matters(loss_head_study):
    page, rows = loss_head_study
    frame = pd.DataFrame(rows)
    levels = frame.groupby("config_id").agg(mean=("best.knn_top1", "mean"), dim=("param.projection_dim", "first")) \
        .groupby("dim")["mean"].mean().sort_values(ascending=False)
    text = finding(page, "choice-projection_dim")
    assert text.startswith(f"{levels.index[0]} is best ({levels.iloc[0]:.3f} knn_top1, 9 configs) and "
                           f"{levels.index[-1]} worst ({levels.iloc[-1]:.3f}); projection_dim makes no significant "
                           "difference (p = ")


# -- every other finding of the synthetic study, against the trials ---------------------------------


@pytest.fixture(scope="module")
def trials(study) -> pd.DataFrame:
    return StudyTables(study).read_trials()


@pytest.fixture(scope="module")
def config_means(scored) -> pd.DataFrame:
    """Per configuration: mean, sample std and count of the score, and its (first) parameters."""
    params = [c for c in scored.columns if c.startswith("param.")]
    groups = scored.groupby("config_id")
    return groups["score"].agg(["mean", "std", "count"]).join(groups[params].first())


def test_summary_names_the_best_configuration_with_its_seed_spread(page, trials, config_means):
    finished = trials["status"].isin(["completed", "early_stopped", "diverged", "failed"]).sum()
    top = config_means["mean"].idxmax()
    best = config_means.loc[top]
    assert finding(page, "summary") == (
        f"{len(trials)} trials ({finished} finished) of a tpe study; the best configuration {top} reaches "
        f"knn_top1 {best['mean']:.3f} ± {best['std']:.3f} over {best['count']} seeds.")


def test_leaderboard_finding_compares_the_top_two_intervals(page, config_means):
    from scipy import stats as scipy_stats

    ranked = config_means.sort_values("mean", ascending=False)
    (first, a), (second, b) = ranked.iloc[:2].iterrows()
    half = [scipy_stats.t.ppf(0.975, r["count"] - 1) * r["std"] / math.sqrt(r["count"]) for r in (a, b)]
    overlap = a["mean"] - half[0] <= b["mean"] + half[1] and b["mean"] - half[1] <= a["mean"] + half[0]
    gap = a["mean"] - b["mean"]
    expected = (f"{first} leads with {a['mean']:.3f}, {gap:.3f} above {second}, but their 95% intervals overlap, "
                "so the order of the top two is not settled." if overlap else
                f"{first} leads with {a['mean']:.3f}, ahead of the runner-up by {gap:.3f} knn_top1.")
    assert finding(page, "leaderboard") == expected


def test_curves_finding_counts_statuses_and_dates_the_best_trials_peak(page, study, trials, scored):
    counts = trials["status"].value_counts()
    stopped = trials[trials["status"] == "early_stopped"]
    top_config = scored.groupby("config_id")["score"].mean().idxmax()  # best = best mean over seeds
    best = scored.loc[scored.loc[scored["config_id"] == top_config, "score"].idxmax()]  # its best seed
    epochs = StudyTables(study).read_epochs()
    mine = epochs[epochs["trial_id"] == best["trial_id"]]
    peak = int(mine.loc[mine["knn_top1"].idxmax(), "epoch"])
    assert finding(page, "curves") == (
        f"{counts['completed']} of {len(trials)} trials ran to the end; {len(stopped)} were stopped early (median "
        f"at epoch {np.median(stopped['epochs_run']):.0f}); {counts['diverged']} diverged; {counts['failed']} failed; "
        f"{counts['running']} running; the best trial, {best['trial_id']}, reached knn_top1 {best['score']:.3f} "
        f"at epoch {peak}.")


def _best_and_worst(config_means: pd.DataFrame, columns: list[str], key) -> str:
    levels = config_means.groupby([config_means[c] for c in columns])["mean"].agg(["mean", "count"])
    best, worst = levels["mean"].idxmax(), levels["mean"].idxmin()
    return (f"{key(best)} is best ({levels.loc[best, 'mean']:.3f} knn_top1, {levels.loc[best, 'count']} configs) "
            f"and {key(worst)} worst ({levels.loc[worst, 'mean']:.3f}); ")


def _verdicts(text: str, names: list[str]) -> None:
    """Each factor named once, with 'matters' exactly when its (Holm) p-value is under 0.05."""
    tail = text.split("); ", 1)[1]
    for name in names:
        verdict, p = re.search(rf"{name} (matters|makes no significant difference) \(p = ([0-9.e-]+)\)", tail).groups()
        assert (verdict == "matters") == (float(p) < 0.05)


def test_similarity_and_hidden_norm_share_a_finding_over_their_combinations(page, config_means):
    text = finding(page, "choice-similarity-hidden_norm")
    prefix = _best_and_worst(config_means, ["param.similarity", "param.hidden_norm"],
                             lambda k: f"similarity={k[0]}, hidden_norm={k[1]}")
    assert text.startswith(prefix)
    _verdicts(text, ["similarity", "hidden_norm"])


def test_batch_size_finding_names_the_best_and_worst_batch(page, config_means):
    text = finding(page, "choice-batch_size")
    assert text.startswith(_best_and_worst(config_means, ["param.batch_size"], str))
    _verdicts(text, ["batch_size"])


def test_temperature_batch_finding_names_the_best_cell_and_the_best_temperature_per_batch(page, scored):
    t = scored["param.temperature"].to_numpy(dtype=np.float64)
    edges = np.exp(np.linspace(np.log(t.min()), np.log(t.max()), 6))  # five log-width bins (20x range)
    labels = [f"{edges[i]:.3g}-{edges[i + 1]:.3g}" for i in range(5)]
    cells = scored.assign(t_bin=np.digitize(t, edges[1:-1])).groupby(["param.batch_size", "t_bin"])["score"] \
        .agg(["mean", "count"])
    (b, k), best = cells["mean"].idxmax(), cells.loc[cells["mean"].idxmax()]
    per_batch = "; ".join(f"{batch}: {labels[cells.loc[batch, 'mean'].idxmax()]}"
                          for batch in sorted(scored["param.batch_size"].unique()))
    assert finding(page, "temperature-batch") == (
        f"The best cell is temperature {labels[k]} with batch size {b}: {best['mean']:.3f} knn_top1 "
        f"(n={int(best['count'])}); the best temperature per batch size is {per_batch}.")


def test_numeric_finding_gives_the_temperature_range_of_the_top_tenth(page, scored):
    ranked = scored.sort_values("score", ascending=False, kind="stable")
    top = ranked.head(math.ceil(len(ranked) / 10))["param.temperature"]
    t = scored["param.temperature"]
    assert finding(page, "numeric") == (
        f"The top {len(top)} trials by knn_top1 have temperature {top.min():.3g}-{top.max():.3g} "
        f"(all trials {t.min():.3g}-{t.max():.3g}).")


def _features(scored: pd.DataFrame) -> pd.DataFrame:
    """The importance section's inputs: varying parameters by name, +<augmentation> yes/no."""
    frame = pd.DataFrame({c.removeprefix("param."): scored[c] for c in scored.columns
                          if c.startswith("param.") and c != "param.augmentations" and scored[c].nunique() > 1})
    for name in ("crop", "flip", "color_jitter", "grayscale", "blur"):
        frame[f"+{name}"] = scored["param.augmentations"].str.split(",").map(lambda a, n=name: n in a)
    return frame


def test_importance_finding_without_optuna_is_each_parameters_share_of_variance(study, scored, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # the estimate a laptop without optuna gets
    text = finding(build_report(study).read_text(), "importance")
    y = scored["score"].to_numpy(dtype=np.float64)
    shares = {}
    for name, column in _features(scored).items():
        groups = (pd.qcut(column.rank(method="first"), 5, labels=False) if column.dtype.kind == "f" else column)
        masks = [(groups == g).to_numpy() for g in groups.unique()]
        between = sum(mask.sum() * (y[mask].mean() - y.mean()) ** 2 for mask in masks)
        shares[name] = between / ((y - y.mean()) ** 2).sum()
    total = sum(shares.values())
    share = {k: v / total for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}
    (first, a), (second, b) = list(share.items())[:2]
    minor = sum(v < 0.05 for v in share.values())
    assert text == (f"{first} explains the most variation in knn_top1 ({a:.0%}), then {second} ({b:.0%}); "
                    f"{minor} of {len(share)} explain under 5% each.")
    assert first == "+crop"  # the synthetic model's largest term


def test_importance_finding_with_fanova_leads_with_the_models_two_largest_terms(page):
    (bars,) = traces(section(page, "importance"))
    values = dict(zip(bars["y"], np.asarray(bars["x"], dtype=float)))
    assert list(values)[:2] == ["+crop", "+color_jitter"] and sum(values.values()) == pytest.approx(1.0)
    minor = sum(v < 0.05 for v in values.values())
    assert finding(page, "importance") == (
        f"+crop explains the most variation in knn_top1 ({values['+crop']:.0%}), then +color_jitter "
        f"({values['+color_jitter']:.0%}); {minor} of {len(values)} explain under 5% each.")


def test_parallel_finding_states_true_shares_and_ranges_of_the_top_trials(page, scored):
    ranked = scored.sort_values("score", ascending=False, kind="stable")
    features = _features(ranked)
    top = features.head(max(2, math.ceil(len(ranked) / 10)))
    text = finding(page, "parallel")
    assert text.startswith(f"The top {len(top)} trials by knn_top1 have ")
    claims = text.removeprefix(f"The top {len(top)} trials by knn_top1 have ").removesuffix(".").split(" and ")
    assert len(claims) == 2
    for claim in claims:
        if shares := re.fullmatch(r"(\S+) = (\S+) \((\d+)% of them vs (\d+)% of all\)", claim):
            name, value, share, overall = shares.groups()
            column = features[name].map({True: "yes", False: "no"}) if name.startswith("+") \
                else features[name].astype(str)
            assert int(share) == round(100 * (column.head(len(top)) == value).mean())
            assert int(overall) == round(100 * (column == value).mean())
        else:
            name, low, high, all_low, all_high = re.fullmatch(
                r"(\S+) in ([0-9.e-]+)-([0-9.e-]+) \(all ([0-9.e-]+)-([0-9.e-]+)\)", claim).groups()
            assert (low, high) == (f"{top[name].min():.3g}", f"{top[name].max():.3g}")
            assert (all_low, all_high) == (f"{features[name].min():.3g}", f"{features[name].max():.3g}")


def test_history_finding_says_when_the_best_came_and_what_the_last_quarter_added(page, scored):
    ordered = scored.sort_values(["started_at", "trial_id"])
    best_so_far = np.maximum.accumulate(ordered["score"].to_numpy())
    n, final = len(best_so_far), best_so_far[-1]
    at = int(np.argmax(best_so_far == final))
    gain = final - best_so_far[n - n // 4 - 1]
    last = (f"the last quarter of the trials improved it by {gain:.3f}" if gain > 0
            else "the last quarter of the trials did not improve it")
    assert finding(page, "history") == (f"The best knn_top1, {final:.3f}, came at trial {at + 1} of {n} "
                                        f"({ordered['trial_id'].iloc[at]}); {last}.")


def test_cost_finding_counts_the_pareto_front_and_the_cheapest_near_best_trial(page, scored):
    cost, score, ids = (scored["gpu_s"].to_numpy(dtype=float), scored["score"].to_numpy(),
                        scored["trial_id"].to_numpy())
    dominated = [any((cost[j] <= cost[i] and score[j] >= score[i]) and (cost[j] < cost[i] or score[j] > score[i])
                     for j in range(len(cost))) for i in range(len(cost))]
    best = int(np.argmax(score))
    near = np.flatnonzero(np.abs(score - score[best]) <= 0.01 * score[best])
    cheapest = near[np.argmin(cost[near])]
    ratio = cost[best] / cost[cheapest]
    less = f"{ratio:.1f}x less" if ratio >= 1.5 else f"{100 * (1 - 1 / ratio):.0f}% less"
    tail = (f"the best trial, {ids[best]}, is also the cheapest within 1% of it ({cost[best]:.3g} GPU-seconds)"
            if cost[cheapest] >= cost[best] else
            f"{ids[cheapest]} comes within 1% of the best knn_top1 ({score[cheapest]:.3f} vs {score[best]:.3f}) for "
            f"{cost[cheapest]:.3g} GPU-seconds, {less} than the best trial's {cost[best]:.3g}")
    front = len(cost) - sum(dominated)
    assert finding(page, "cost") == f"{front} of {len(cost)} trials are on the Pareto front; {tail}."


@pytest.mark.parametrize("cheaper, dearer, text", [
    (10.0, 32.0, "3.2x less"), (20.0, 30.0, "1.5x less"), (31.0, 32.0, "3% less"), (24.0, 30.0, "20% less"),
])
def test_a_saving_reads_as_a_factor_when_large_and_a_percentage_when_small(cheaper, dearer, text):
    assert saving(cheaper, dearer) == text


def test_failures_finding_counts_bad_trials_and_quotes_the_commonest_error(page, trials):
    failed, diverged = trials[trials["status"] == "failed"], trials[trials["status"] == "diverged"]
    errors = failed["error"].dropna().map(lambda e: e.strip().splitlines()[0]).value_counts()
    assert len(diverged) == 1  # one diverged trial shares nothing with itself worth reporting
    assert finding(page, "failures") == (
        f"{len(failed)} failed and {len(diverged)} diverged of {len(trials)} trials; the most common error "
        f"({errors.iloc[0]}x) is \"{errors.index[0]}\".")


# -- parameter importance above 300 scored trials: fANOVA on a seeded sample ------------------------


def test_fanova_sees_a_seeded_sample_of_300_trials_above_that_many(monkeypatch):
    from reports import importance

    rng = np.random.default_rng(3)
    n = 420
    features = pd.DataFrame({"strong": rng.uniform(0, 1, n), "weak": rng.choice(["a", "b", "c"], n)})
    score = pd.Series(2.0 * features["strong"] + 0.1 * (features["weak"] == "a") + rng.normal(0, 0.05, n))
    seen = []
    fanova = importance._fanova
    monkeypatch.setattr(importance, "_fanova", lambda f, s: seen.append(list(s.index)) or fanova(f, s))
    first = importance.parameter_importance(features, score)
    again = importance.parameter_importance(features, score)
    assert [len(rows) for rows in seen] == [300, 300] and seen[0] == seen[1] and len(set(seen[0])) == 300
    assert first == again and first.sampled_from == n
    assert first.method == "fANOVA (optuna.importance) on a seeded random sample of 300 of the 420 scored trials"
    assert list(first.values) == ["strong", "weak"] and first.values["strong"] > 0.8


def test_a_large_studys_importance_finding_says_it_was_sampled(tmp_path):
    study = make_study(tmp_path / "large", configs=160, seeds=2, epochs=2, statuses=["completed"] * 320)
    page = build_report(study).read_text()
    text = finding(page, "importance")
    assert text.startswith("+crop explains the most variation in knn_top1 (")
    assert text.endswith("(fANOVA on a random 300 of the 320 scored trials).")
    assert "Estimated by fANOVA (optuna.importance) on a seeded random sample of 300 of the 320 scored trials" \
        in section(page, "importance")
