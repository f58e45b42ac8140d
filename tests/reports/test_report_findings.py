"""The numbers and names in each section's finding, against references computed here in float64
from the trials written (never from the report's own helpers)."""
from __future__ import annotations

import html
import itertools
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from reports.report import build_report
from reports.sections.augmentations import Effect, _effects_finding
from reports.stats import Difference
from reports.tables import StudyTables

FOUR = ("crop", "flip", "color_jitter", "blur")
SUBSETS = [s for k in range(1, 5) for s in itertools.combinations(FOUR, k)]  # 15 non-empty subsets


def _finding(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}"><h2>.*?</h2><p class="finding">(.*?)</p>', page)
    assert match, f"no section {section_id}"
    return html.unescape(match.group(1))


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
    finding = _finding(build_report(_write_study(tmp_path / "s", rows)).read_text(), "augmentations")
    diff = _effect_of(rows, "blur", "best.knn_top1")
    assert diff == pytest.approx(-0.2)
    # every configuration with blur scores the same, and every one without: the bootstrap CI is a point
    assert finding == (f"blur matters most, and it hurts: {diff:+.3f} knn_top1 with it than without "
                       f"(95% CI [{diff:+.3f}, {diff:+.3f}]); 1 of 4 effects is real after Holm's correction "
                       "(p < 0.05): blur.")


def test_a_strongly_helpful_augmentation_is_the_headline(tmp_path):
    rows = [{"param.augmentations": ",".join(s), "best.knn_top1": 0.4 + 0.25 * ("crop" in s)} for s in SUBSETS]
    finding = _finding(build_report(_write_study(tmp_path / "s", rows)).read_text(), "augmentations")
    diff = _effect_of(rows, "crop", "best.knn_top1")
    assert finding == (f"crop matters most, and it helps: {diff:+.3f} knn_top1 with it than without "
                       f"(95% CI [{diff:+.3f}, {diff:+.3f}]); 1 of 4 effects is real after Holm's correction "
                       "(p < 0.05): crop.")


def test_lowering_a_minimised_metric_helps(tmp_path):
    rows = [{"param.augmentations": ",".join(s), "best.loss": 2.0 - 0.5 * ("crop" in s)} for s in SUBSETS]
    page = build_report(_write_study(tmp_path / "s", rows, metric="loss", goal="minimize")).read_text()
    diff = _effect_of(rows, "crop", "best.loss")
    assert diff == pytest.approx(-0.5)
    assert _finding(page, "augmentations") == (
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
