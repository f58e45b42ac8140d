"""benchmarks/findings.py on a study folder written through StudyTables with known scores: each arm's
and each seed-by-seed difference's 95% t-interval against a float64 reference, and the verdicts."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from study_files.tables import StudyTables

ROOT = Path(__file__).resolve().parents[2]
SCORES = {"crop": [0.40, 0.42, 0.38], "color_jitter,grayscale": [0.60, 0.62, 0.58],
          "color_jitter,crop,grayscale": [0.50, 0.53, 0.49]}


def _t_interval(values):
    x = np.asarray(values, dtype=np.float64)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return x.mean() - half, x.mean() + half


def test_findings_reads_a_study_and_says_which_comparisons_hold(tmp_path):
    study_dir = tmp_path / "shapes-crop-colour"
    rows = [{"trial_id": f"{c}-{seed}", "config_id": f"c{c}", "seed": seed, "status": "completed",
             "param.augmentations": augs, "best.knn_top1": score}
            for c, (augs, scores) in enumerate(SCORES.items()) for seed, score in enumerate(scores)]
    # A failed trial of the winning arm is left out, as everywhere "best" is asked.
    rows.append({"trial_id": "failed", "config_id": "c2", "seed": 0, "status": "failed",
                 "param.augmentations": "color_jitter,crop,grayscale", "best.knn_top1": 0.99})
    StudyTables(study_dir).upsert_trials(rows)
    proc = subprocess.run([sys.executable, "benchmarks/findings.py", str(study_dir), "--results", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads((tmp_path / "findings.json").read_text())["findings"]
    over_crop, over_colour = result["comparisons"]
    combo = np.array(SCORES["color_jitter,crop,grayscale"])
    for row, other, verdict in ((over_crop, "crop", "holds"), (over_colour, "color_jitter,grayscale", "does not hold")):
        diff = combo - np.array(SCORES[other])
        assert (row["difference"]["lo"], row["difference"]["hi"]) == pytest.approx(_t_interval(diff), abs=1e-5)
        assert (row["arm_b"]["lo"], row["arm_b"]["hi"]) == pytest.approx(_t_interval(SCORES[other]), abs=1e-5)
        assert row["difference"]["mean"] == pytest.approx(diff.mean(), abs=1e-12)
        assert row["verdict"] == verdict and row["seeds"] == [0, 1, 2]
    assert result["verdict"] == "does not hold"
    md = (tmp_path / "findings.md").read_text()
    assert "| (a) crop + colour > crop | Figure 5:" in md and "| 10.7 [9.2, 12.1] | holds |" in md
