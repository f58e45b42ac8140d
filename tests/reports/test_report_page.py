"""The report in a real headless Chromium: it loads cleanly, every chart renders, text is escaped."""
from __future__ import annotations

import os
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
    assert len(plots) == full_report.read_text().count('class="plotly-graph-div"') >= 10
    browser.set_window_size(1280, 900)
    browser.execute_script("window.scrollTo(0, 0)")
    folder = Path(os.environ.get("SIMCLR_SWEEP_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "report_top.png"
    assert browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000


@pytest.fixture
def alert_sentinel(browser):
    """From the next page load on, window.alert records its argument in window.__alerts instead of
    showing a dialog; removed after the test."""
    script = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {
        "source": "window.__alerts = []; window.alert = m => window.__alerts.push(String(m));"})
    yield
    browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})


def test_the_sentinel_sees_a_script_that_does_run(browser, alert_sentinel, tmp_path):
    """The control: an unescaped <script> calling alert is recorded, so the next test can fail."""
    page = tmp_path / "unescaped.html"
    page.write_text(f"<!DOCTYPE html><html><body><p>error: {XSS}</p></body></html>")
    browser.get(page.as_uri())
    assert browser.execute_script("return window.__alerts") == ["1"]


def test_script_in_a_trial_error_shows_as_text_and_never_runs(browser, alert_sentinel, full_report):
    _open(browser, full_report)
    assert browser.execute_script("return window.__alerts") == []
    assert XSS in browser.find_element(By.TAG_NAME, "body").text
    # by design the page has exactly one script for plotly.js and one per figure, nothing else
    scripts = browser.execute_script("return [...document.scripts].map(s => s.text)")
    figures = browser.execute_script("return document.querySelectorAll('.plotly-graph-div').length")
    assert len(scripts) == 1 + figures
    assert "plotly.js" in scripts[0][:1000]
    assert all(text.strip().startswith("window.PLOTLYENV=window.PLOTLYENV") for text in scripts[1:])


@pytest.mark.parametrize("statuses", [["completed"], ["failed"], ["early_stopped", "completed"],
                                      ["completed", "early_stopped", "diverged", "failed"]])
def test_tiny_studies_render_without_errors(browser, tmp_path, statuses):
    study = make_study(tmp_path / "tiny", configs=len(statuses), seeds=1, epochs=4, statuses=statuses)
    _open(browser, build_report(study))
    assert _console_errors(browser) == []
