"""What the report says, read from its HTML: findings, sections shown only when relevant, escaping."""
from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import plotly.offline
import pytest
import yaml

from reports.report import build_report
from reports.sections import curves
from reports.study_data import load_study
from study_files.tables import StudyTables
from report_html import finding, section_ids
from synthetic_study import XSS, make_study


def test_plotly_js_is_embedded_once_and_nothing_is_fetched(page):
    first_line = plotly.offline.get_plotlyjs().splitlines()[1]
    assert page.count(first_line) == 1
    assert "<script src" not in page and "<link" not in page and "@import" not in page
    assert page.count("Plotly.newPlot(") >= 10


def test_every_varied_choice_has_its_section(page):
    """What each section's finding says is checked in test_report_findings.py."""
    assert section_ids(page) == {
        "summary", "leaderboard", "curves", "augmentations", "pairs", "choice-similarity-hidden_norm",
        "choice-batch_size", "temperature-batch", "numeric", "importance", "parallel", "history", "cost", "failures"}


def test_sections_for_unvaried_parameters_are_left_out(tmp_path):
    page = build_report(make_study(tmp_path / "fixed", configs=4, seeds=3, epochs=4, vary=False)).read_text()
    ids = section_ids(page)
    assert {"summary", "leaderboard", "curves"} <= ids
    assert not ids & {"augmentations", "pairs", "temperature-batch", "numeric", "importance", "parallel"}
    assert not any(i.startswith("choice-") for i in ids)


def test_crop_is_found_to_matter_and_flip_not(study, page):
    trials = StudyTables(study).read_trials()
    scored = trials[(trials["status"] != "failed") & trials["best.knn_top1"].notna()]
    configs = scored.groupby("config_id").agg(mean=("best.knn_top1", "mean"), augs=("param.augmentations", "first"))
    has_crop = configs["augs"].str.split(",").map(lambda a: "crop" in a)
    diff = configs["mean"][has_crop].mean() - configs["mean"][~has_crop].mean()
    text = finding(page, "augmentations")
    assert text.startswith(f"crop matters most, and it helps: {diff:+.3f} knn_top1 with it compared with without it (95% CI [")
    real = text.split("(p < 0.05): ")[1].rstrip(".").split(", ")
    assert real[0] == "crop" and "flip" not in real


def test_leaderboard_is_best_first_with_seed_statistics(study, page):
    trials = StudyTables(study).read_trials()
    scored = trials[(trials["status"] != "failed") & trials["best.knn_top1"].notna()]
    means = scored.groupby("config_id")["best.knn_top1"].agg(["mean", "std"]).sort_values("mean", ascending=False)
    top = means.index[0]
    table = page.split('<section id="leaderboard">')[1].split("</section>")[0]
    first_row = table.split("<tbody><tr>")[1].split("</tr>")[0]
    assert f"<td>{top}</td>" in first_row
    assert f"{means.loc[top, 'mean']:.3f}" in first_row and f"{means.loc[top, 'std']:.3f}" in first_row
    assert all(t in first_row for t in scored[scored["config_id"] == top]["trial_id"])


def test_reproduce_config_is_the_best_trials_config(study, page):
    block = re.search(r'<pre class="config">(.*?)</pre>', page, re.S).group(1)
    config = yaml.safe_load(html.unescape(block))
    trials = StudyTables(study).read_trials()
    scored = trials[trials["status"] != "failed"]
    top_config = scored.groupby("config_id")["best.knn_top1"].mean().idxmax()
    best = trials.loc[scored[scored["config_id"] == top_config]["best.knn_top1"].idxmax()]
    assert config["augmentations"] == best["param.augmentations"].split(",")
    assert config["temperature"] == pytest.approx(best["param.temperature"])
    assert config["hidden_norm"] is bool(best["param.hidden_norm"]) and config["seed"] == best["seed"]
    assert "simclr-sweep train best_config.yaml" in page


def test_text_from_the_tables_is_escaped(tmp_path):
    study = make_study(tmp_path / "xss", configs=3, seeds=1, epochs=3, name="<b>bold</b> & co",
                       statuses=["completed", "failed", "diverged"])
    page = build_report(study).read_text()
    assert XSS not in page and html.escape(XSS) in page
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page


def test_huge_studies_get_thinned_curves_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(curves, "MAX_POINTS", 50)
    page = build_report(make_study(tmp_path / "big", configs=10, seeds=1, epochs=20)).read_text()
    assert "Curves show every" in page


def test_study_without_declaration_or_epochs_still_builds(tmp_path):
    tables = StudyTables(tmp_path)
    tables.upsert_trials([{"trial_id": "t1", "config_id": "c1", "seed": 0, "status": "running"}])
    page = build_report(tmp_path).read_text()
    assert "study.yaml is missing" in page and "none has reported knn_top1 yet" in page


def test_report_is_replaced_atomically_and_leaves_no_temp_files(study):
    target = build_report(study)
    build_report(study)
    assert [p.name for p in target.parent.iterdir()] == ["index.html"]


def test_tables_copied_elsewhere_build_the_same_report(study, tmp_path):
    copy = tmp_path / "laptop"
    shutil.copytree(study / "tables", copy / "tables")
    shutil.copy(study / "study.yaml", copy / "study.yaml")
    copied, original = build_report(copy).read_text(), build_report(study).read_text()
    ids = section_ids(original)
    assert section_ids(copied) == ids and len(ids) == 14
    assert {i: finding(copied, i) for i in ids} == {i: finding(original, i) for i in ids}


def test_importance_without_optuna_falls_back_to_own_estimate(study, monkeypatch):
    from reports.importance import parameter_importance

    data = load_study(study)
    with_optuna = parameter_importance(data.features, data.scored["score"])
    monkeypatch.setitem(sys.modules, "optuna", None)
    fallback = parameter_importance(data.features, data.scored["score"])
    assert with_optuna.method.startswith("fANOVA") and fallback.method.startswith("share of variance")
    for result in (with_optuna, fallback):
        assert next(iter(result.values)) == "+crop"
        assert sum(result.values.values()) == pytest.approx(1.0)


def test_best_pair_is_the_one_the_synthetic_model_rewards(page):
    assert finding(page, "pairs").startswith("crop + color_jitter is the best pair: ")


def test_early_stopped_and_diverged_curves_are_drawn_differently(page):
    curves_html = page.split('<section id="curves">')[1].split("</section>")[0]
    assert re.search(r'"line":\{[^}]*"dash":"dash"[^}]*\}[^{}]*"name":"early stopped \(\d+\)"', curves_html)
    assert '"name":"diverged here"' in curves_html and '"symbol":"x"' in curves_html


def test_report_builds_where_torch_and_ray_cannot_be_imported(study, tmp_path):
    code = ("import sys\n"
            "class NoSuchPackage:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'torchvision', 'ray'):\n"
            "            raise ImportError(f'no {name} on this laptop')\n"
            "sys.meta_path.insert(0, NoSuchPackage())\n"
            "from reports.report import build_report\n"
            "print(build_report(sys.argv[1]))\n")
    run = subprocess.run([sys.executable, "-c", code, str(study)], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("report/index.html")


def test_many_trials_are_drawn_as_bands_with_the_best_on_top(tmp_path, monkeypatch):
    monkeypatch.setattr(curves, "MAX_LINES", 5)
    monkeypatch.setattr(curves, "TOP_LINES", 2)
    study = make_study(tmp_path / "many", configs=8, seeds=1, epochs=5, statuses=["completed"] * 8)
    page = build_report(study).read_text()
    curves_html = page.split('<section id="curves">')[1].split("</section>")[0]
    assert "Completed trials are shown as the median and 10-90% band" in curves_html
    assert '"name":"completed (8): median, 10-90%"' in curves_html and '"fill":"toself"' in curves_html
    assert '"name":"completed (2)"' in curves_html  # only the two best as single lines


def test_a_minimised_metric_ranks_lowest_first(tmp_path):
    study = make_study(tmp_path / "min", configs=6, seeds=2, epochs=4)
    declaration = yaml.safe_load((study / "study.yaml").read_text())
    declaration["metric"] = {"name": "loss", "goal": "minimize"}
    (study / "study.yaml").write_text(yaml.safe_dump(declaration))
    page = build_report(study).read_text()
    trials = StudyTables(study).read_trials()
    means = trials[trials["status"] != "failed"].groupby("config_id")["best.loss"].mean()
    first_row = page.split('<section id="leaderboard">')[1].split("<tbody><tr>")[1].split("</tr>")[0]
    assert f"<td>{means.idxmin()}</td>" in first_row
    assert "mean loss" in page and "(minimize)" in page


def test_ragged_tables_still_build(tmp_path):
    """Missing params, timestamps and config ids, and epochs of a trial the trials table lacks."""
    tables = StudyTables(tmp_path)
    (tmp_path / "study.yaml").write_text("name: ragged\nmetric: knn_top1\n")
    rows = [{"trial_id": f"t{i}", "config_id": None if i == 0 else f"c{i}", "seed": 0, "status": "completed",
             "param.similarity": ["cosine", "dot"][i % 2], "best.knn_top1": 0.1 * i + 0.05, "gpu_s": 10.0 * (i + 1)}
            for i in range(5)]
    rows[1]["param.temperature"] = 0.1
    rows[2]["started_at"] = "2025-01-01T00:00:00"
    tables.upsert_trials(rows)
    tables.append_epochs([{"trial_id": "t3", "epoch": 1, "knn_top1": 0.3}, {"trial_id": "ghost", "epoch": 1}])
    page = build_report(tmp_path).read_text()
    assert {"summary", "leaderboard", "curves", "cost", "choice-similarity"} <= section_ids(page)
    assert "<h1>ragged</h1>" in page


def test_best_trial_without_config_id_is_its_own_configuration(tmp_path):
    tables = StudyTables(tmp_path)
    (tmp_path / "study.yaml").write_text("name: no-config-ids\nmetric: knn_top1\n")
    scores = {"t0": (None, 0.9, 0.2), "t1": ("c1", 0.5, 0.5), "t2": ("c1", 0.6, 0.5), "t3": (None, 0.3, 0.8)}
    tables.upsert_trials([{"trial_id": t, "config_id": c, "seed": 0, "status": "completed",
                           "param.temperature": temp, "best.knn_top1": best} for t, (c, best, temp) in scores.items()])
    page = build_report(tmp_path).read_text()
    assert finding(page, "summary") == ("4 trials (4 finished) of an unknown study; the best configuration "
                                         "(no config_id: t0) reaches knn_top1 0.900.")
    assert "simclr-sweep train best_config.yaml --out runs/t0" in page
    config = yaml.safe_load(html.unescape(re.search(r'<pre class="config">(.*?)</pre>', page, re.S).group(1)))
    assert config == {"temperature": 0.2, "seed": 0}
    rows = page.split('<section id="leaderboard">')[1].split("<tbody>")[1].split("</tbody>")[0].split("</tr>")[:-1]
    # t0 and t3 are two configurations, not one pooled "None" configuration; c1 averages 0.5 and 0.6
    assert [re.findall(r"<td>(.*?)</td>", r)[1] for r in rows] == \
        ["(no config_id: t0)", "c1", "(no config_id: t3)"]
    assert "0.550" in rows[1]
