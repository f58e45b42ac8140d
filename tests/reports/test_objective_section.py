"""The objectives section: one curve per objective against colour strength, means and CIs in float64."""
from __future__ import annotations

import math

import numpy as np
import yaml
from report_html import finding, section, section_ids, traces

from reports.report import build_report
from study_files.tables import StudyTables

STRENGTHS = (0.125, 0.25, 0.5, 1.0)
# Made-up scores with the paper's Table 1 shape: SimCLR rises with strength, supervised falls.
SCORE = {"simclr": (0.60, 0.62, 0.64, 0.66), "supervised": (0.78, 0.77, 0.76, 0.75)}


def _study(folder):
    folder.mkdir(parents=True)
    (folder / "study.yaml").write_text(yaml.safe_dump(
        {"name": "objectives", "metric": {"name": "knn_top1", "goal": "maximize"}, "method": "grid"}))
    rows, i = [], 0
    for objective, scores in SCORE.items():
        for s, base in zip(STRENGTHS, scores):
            for seed, noise in enumerate((-0.01, 0.0, 0.013)):
                rows.append({"trial_id": f"t{i:03d}", "config_id": f"{objective}-{s}", "seed": seed,
                             "status": "completed", "param.objective": objective,
                             "param.color_jitter.strength": s, "best.knn_top1": base + noise})
                i += 1
    StudyTables(folder).upsert_trials(rows)
    return folder


def test_objective_section_draws_each_objective_s_mean_and_ci(tmp_path):
    study = _study(tmp_path / "study")
    page = _page(study)
    assert "objectives" in section_ids(page)
    drawn = {t["name"]: t for t in traces(section(page, "objectives"))}
    assert set(drawn) == {"simclr", "supervised"}
    noise = np.array([-0.01, 0.0, 0.013], dtype=np.float64)
    t975_2 = 4.302652729911275  # Student's t, 97.5%, 2 degrees of freedom
    for objective, scores in SCORE.items():
        trace = drawn[objective]
        np.testing.assert_allclose(np.asarray(trace["x"], dtype=float), STRENGTHS)
        expected = np.array(scores, dtype=np.float64) + noise.mean()
        np.testing.assert_allclose(np.asarray(trace["y"], dtype=float), expected, rtol=1e-12)
        half = t975_2 * noise.std(ddof=1) / math.sqrt(3)
        # The report's t table has 4 figures.
        np.testing.assert_allclose(np.asarray(trace["error_y"]["array"], dtype=float), half, rtol=2e-4)
    text = finding(page, "objectives")
    assert "simclr at color_jitter.strength 1" in text and "supervised at color_jitter.strength 0.125" in text


def _page(study):
    path = build_report(study)
    return path.read_text() if hasattr(path, "read_text") else open(path).read()


def test_no_objective_section_when_the_objective_does_not_vary(tmp_path):
    study = _study(tmp_path / "study")
    tables = StudyTables(study)
    trials = tables.read_trials()
    kept = trials[trials["param.objective"] == "simclr"]
    other = tmp_path / "one"
    other.mkdir()
    (other / "study.yaml").write_text((study / "study.yaml").read_text())
    StudyTables(other).upsert_trials(kept.to_dict("records"))
    assert "objectives" not in section_ids(_page(other))
