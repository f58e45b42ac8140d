"""A local run starts Ray's dashboard where ray[default] is installed and prints its address;
`--no-dashboard` switches it off; without ray[default] the run says how to get it."""
import io
import urllib.request
from types import SimpleNamespace

import pytest
import ray
from ray._private.utils import get_dashboard_dependency_error

from simclr_sweep import runner
from simclr_sweep.cli import build_parser


@pytest.fixture
def fake_ray(monkeypatch):
    """ray.init recorded, not run: what start_ray asks of Ray and what it prints."""
    calls = []

    def init(**kwargs):
        calls.append(kwargs)
        return SimpleNamespace(dashboard_url="127.0.0.1:8265" if kwargs.get("include_dashboard") else None)

    monkeypatch.setattr(runner.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(runner.ray, "init", init)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


def test_no_dashboard_starts_ray_without_it_and_prints_nothing(fake_ray):
    out = io.StringIO()
    assert runner.start_ray(None, dashboard=False, stream=out)
    assert fake_ray[0]["include_dashboard"] is False and out.getvalue() == ""


def test_with_ray_default_the_dashboards_address_is_printed(fake_ray, monkeypatch):
    monkeypatch.setattr(runner, "get_dashboard_dependency_error", lambda: None)
    out = io.StringIO()
    runner.start_ray(None, stream=out)
    assert fake_ray[0]["include_dashboard"] is True
    assert out.getvalue() == "ray dashboard: http://127.0.0.1:8265\n"


def test_without_ray_default_the_run_says_how_to_get_the_dashboard(fake_ray, monkeypatch):
    monkeypatch.setattr(runner, "get_dashboard_dependency_error", lambda: ModuleNotFoundError("aiohttp"))
    out = io.StringIO()
    runner.start_ray(None, stream=out)
    assert fake_ray[0]["include_dashboard"] is False
    assert out.getvalue() == ("ray dashboard: not installed; pip install 'simclr-sweep[dashboard]' "
                              "(or run with --no-dashboard)\n")


@pytest.mark.parametrize("command", [["run", "s.yaml"], ["resume", "studies/s"]])
def test_run_and_resume_take_no_dashboard(command):
    parser = build_parser()
    assert parser.parse_args(command).dashboard is True
    assert parser.parse_args([*command, "--no-dashboard"]).dashboard is False


@pytest.mark.skipif(get_dashboard_dependency_error() is not None,
                    reason="the dashboard needs ray[default]: pip install 'simclr-sweep[dashboard]'")
def test_a_local_ray_serves_the_dashboard_at_the_printed_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 1)
    out = io.StringIO()
    assert runner.start_ray(None, stream=out)
    try:
        url = out.getvalue().strip().removeprefix("ray dashboard: ")
        with urllib.request.urlopen(url, timeout=60) as page:  # the page; its API asks for Ray's token
            assert page.status == 200 and b"<html" in page.read()
    finally:
        ray.shutdown()
