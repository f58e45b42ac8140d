"""The numbers and names in each section's finding, against references computed here in float64
from the trials written (never from the report's own helpers)."""
from __future__ import annotations

import itertools
import math
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
from reports.stats import Difference
from reports.tables import StudyTables

FOUR = ("crop", "flip", "color_jitter", "blur")
SUBSETS = [s for k in range(1, 5) for s in itertools.combinations(FOUR, k)]  # 15 non-empty subsets


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("findings") / "ablation", configs=30, seeds=2, epochs=6)


@pytest.fixture(scope="module")
def page(study) -> str:
    return build_report(study).read_text()


@pytest.fixture(scope="module")
def scored(study) -> pd.DataFrame:
    """The trials the report's statistics use (finite score, not failed), scored as float64."""
    trials = StudyTables(study).read_trials()
    trials = trials[(trials["status"] != "failed") & np.isfinite(trials["best.knn_top1"].astype(float))].copy()
    trials["score"] = trials["best.knn_top1"].astype(np.float64)
    return trials


def _write_study(folder: Path, rows: list[dict], metric: str = "knn_top1", goal: str = "maximize") -> Path:
    """A study of one completed trial per row (``config_id`` defaults to the trial's index)."""
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
    assert text == (f"blur matters most, and it hurts: {diff:+.3f} knn_top1 with it than without "
                       f"(95% CI [{diff:+.3f}, {diff:+.3f}]); 1 of 4 effects is real after Holm's correction "
                       "(p < 0.05): blur.")


def test_a_strongly_helpful_augmentation_is_the_headline(tmp_path):
    rows = [{"param.augmentations": ",".join(s), "best.knn_top1": 0.4 + 0.25 * ("crop" in s)} for s in SUBSETS]
    text = finding(build_report(_write_study(tmp_path / "s", rows)).read_text(), "augmentations")
    diff = _effect_of(rows, "crop", "best.knn_top1")
    assert text == (f"crop matters most, and it helps: {diff:+.3f} knn_top1 with it than without "
                       f"(95% CI [{diff:+.3f}, {diff:+.3f}]); 1 of 4 effects is real after Holm's correction "
                       "(p < 0.05): crop.")


def test_lowering_a_minimised_metric_helps(tmp_path):
    rows = [{"param.augmentations": ",".join(s), "best.loss": 2.0 - 0.5 * ("crop" in s)} for s in SUBSETS]
    page = build_report(_write_study(tmp_path / "s", rows, metric="loss", goal="minimize")).read_text()
    diff = _effect_of(rows, "crop", "best.loss")
    assert diff == pytest.approx(-0.5)
    assert finding(page, "augmentations") == (
        f"crop matters most, and it helps: {diff:+.3f} loss with it than without (95% CI [{diff:+.3f}, "
        f"{diff:+.3f}]); 1 of 4 effects is real after Holm's correction (p < 0.05): crop.")


def _effect(name: str, diff: float, p_holm: float) -> Effect:
    return Effect(name, 0.5 + diff, 0.5, Difference(diff, diff - 0.05, diff + 0.05, p_holm, 6, 6), p_holm)


def test_the_headline_is_the_largest_significant_effect_not_the_largest_positive_one():
    effects = [_effect("crop", 0.30, 0.2), _effect("flip", 0.05, 0.03), _effect("blur", -0.10, 0.01)]
    data = SimpleNamespace(metric="knn_top1", maximize=True)
    assert _effects_finding(data, effects) == (
        "blur matters most, and it hurts: -0.100 knn_top1 with it than without (95% CI [-0.150, -0.050]); "
        "2 of 3 effects are real after Holm's correction (p < 0.05): blur, flip.")


def test_without_a_significant_effect_the_largest_is_named_as_unproven():
    effects = [_effect("crop", 0.02, 0.6), _effect("blur", -0.04, 0.3)]
    data = SimpleNamespace(metric="knn_top1", maximize=True)
    assert _effects_finding(data, effects) == (
        "No augmentation's effect is significant after Holm's correction (p < 0.05); the largest is blur's, "
        "which would hurt: -0.040 knn_top1 with it than without (95% CI [-0.090, +0.010]).")


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
    StudyTables(folder).upsert_trials([{"trial_id": f"t{i:03d}", "status": "completed", **r} for i, r in enumerate(rows)])
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
