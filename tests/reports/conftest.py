"""A real headless Chromium (through selenium and the system chromedriver) for report tests."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# the tests import synthetic_study from this folder under any --import-mode (importlib adds nothing)
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _missing_browser_reason() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    return f"headless browser tests need {', '.join(missing)}" if missing else None


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium that cannot reach the network; quit (with its profile removed) at the end.

    Skips when Chromium, chromedriver or selenium is missing, unless SIMCLR_SWEEP_REQUIRE_BROWSER=1.
    """
    reason = _missing_browser_reason()
    if reason:
        if os.environ.get("SIMCLR_SWEEP_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (SIMCLR_SWEEP_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="simclr-sweep-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1280,900",
                # any attempt to fetch from the network fails, and shows up as a console error
                "--host-resolver-rules=MAP * ~NOTFOUND"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> Path:
    """The synthetic ablation study (30 configurations x 2 seeds, 6 epochs) that content tests read."""
    from synthetic_study import make_study

    return make_study(tmp_path_factory.mktemp("content") / "ablation", configs=30, seeds=2, epochs=6)


@pytest.fixture(scope="session")
def page(study) -> str:
    """The report of ``study``, as HTML."""
    from reports.report import build_report

    return build_report(study).read_text()
