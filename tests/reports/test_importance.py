"""Parameter importance is fANOVA in a plain install (scikit-learn, which Optuna's fANOVA needs, is a
runtime dependency), and the page names the method it used."""
import subprocess
import sys
import tomllib
from pathlib import Path

from report_html import section

from reports.importance import FANOVA

REPO = Path(__file__).resolve().parents[2]


def test_scikit_learn_is_a_runtime_dependency_not_only_a_test_one():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(req.startswith("scikit-learn") for req in project["dependencies"])


def test_a_plain_import_estimates_importance_by_fanova():
    # A fresh interpreter imports reports.importance as `report` does: nothing imported beforehand.
    code = """
import numpy as np, pandas as pd
from reports.importance import parameter_importance
rng = np.random.default_rng(0)
features = pd.DataFrame({"temperature": rng.uniform(0.1, 1.0, 30), "batch_size": rng.choice([128, 256], 30)})
score = pd.Series(-(features["temperature"] - 0.3) ** 2 + 0.001 * rng.normal(size=30))
importance = parameter_importance(features, score)
print(importance.method)
print(max(importance.values, key=importance.values.get))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [FANOVA, "temperature"]


def test_the_page_names_the_method_it_used(page):
    assert f"Estimated by {FANOVA};" in section(page, "importance")
