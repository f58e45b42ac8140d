"""The report in a real headless Chromium: it loads cleanly, every chart renders, text is escaped."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from reports.report import build_report
from synthetic_study import XSS, make_study

pytest.importorskip("selenium")


def _open(browser, page: Path) -> None:
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && [...document.querySelectorAll('.plotly-graph-div')]"
        ".every(div => div.querySelector('.plot-container') && div.querySelector('svg'))"))


def _console_errors(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> Path:
    return build_report(make_study(tmp_path_factory.mktemp("study") / "ablation"))


def test_page_loads_without_console_errors_and_renders_every_chart(browser, full_report, tmp_path):
    _open(browser, full_report)
    assert _console_errors(browser) == []
    plots = browser.find_elements(By.CSS_SELECTOR, ".plotly-graph-div")
    assert len(plots) >= 4
    assert browser.execute_script("return typeof window.alert") == "function"
    browser.set_window_size(1280, 900)
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(tmp_path / "report_top.png"))
    shutil.copy(tmp_path / "report_top.png", "/tmp/report_top.png")
    assert (tmp_path / "report_top.png").stat().st_size > 10_000


def test_script_in_a_trial_error_shows_as_text(browser, full_report):
    _open(browser, full_report)
    assert XSS in browser.find_element(By.TAG_NAME, "body").text
    assert browser.execute_script("return document.querySelectorAll('script').length") == \
        full_report.read_text().count("<script")


@pytest.mark.parametrize("statuses", [["completed"], ["failed"], ["early_stopped", "completed"],
                                      ["completed", "early_stopped", "diverged", "failed"]])
def test_tiny_studies_render_without_errors(browser, tmp_path, statuses):
    study = make_study(tmp_path / "tiny", configs=len(statuses), seeds=1, epochs=4, statuses=statuses)
    _open(browser, build_report(study))
    assert _console_errors(browser) == []
