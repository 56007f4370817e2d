"""One real-browser walk through the dashboard: launch a study, watch it finish, compare it.

Runs `kdx dashboard` on a free loopback port and drives Debian's Chromium through Playwright.
Skipped when Chromium is not installed, except in CI (CI=true), where `.ci/run` installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kdcore.study import Study
from kdcore.tracking import MlflowTracker, list_studies
from tests.helpers import tiny_config

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("CI") != "true", reason="Debian's chromium is not installed"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dashboard(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    Study(tiny_config("train.epochs=2", "tracking.study_name=earlier study"), MlflowTracker(uri), progress=False).run()
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "KDX_JOBS_DIR": str(tmp_path / "jobs")}
    kdx = shutil.which("kdx", path=str(Path(sys.executable).parent))
    server = subprocess.Popen([kdx, "dashboard", "--port", str(port), "--no-samples"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail(f"dashboard did not start: {server.stdout.read().decode()[-2000:]}")
    yield url, uri
    server.terminate()
    server.wait(timeout=30)


def test_launch_watch_and_compare_in_a_real_browser(dashboard, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, uri = dashboard
    shots = Path(os.environ.get("KDX_SCREENSHOT_DIR") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)  # the first render imports torch and MLflow

        page.goto(f"{url}/launch")
        expect(page.get_by_text("Launch a study")).to_be_visible()
        epochs = page.get_by_label("epochs", exact=True)
        epochs.fill("3")
        epochs.press("Enter")
        name = page.get_by_label("study name", exact=True)
        name.fill("browser study")
        name.press("Enter")
        page.wait_for_timeout(1500)
        page.get_by_role("button", name="Launch", exact=True).click()
        expect(page.get_by_text("browser study").first).to_be_visible()
        page.screenshot(path=str(shots / "launch.png"), full_page=True)
        expect(page.get_by_text("FINISHED").first).to_be_visible(timeout=150_000)
        studies = list_studies(uri)
        assert set(studies["name"]) == {"earlier study", "browser study"}
        assert set(studies["status"]) == {"FINISHED"}

        page.goto(f"{url}/")
        grid = page.locator("[data-testid='stDataFrame']").first
        expect(grid).to_be_visible()
        page.wait_for_timeout(1500)
        box = grid.bounding_box()
        for row in range(2):  # the row-selection checkboxes sit in the first column of the canvas grid
            page.mouse.click(box["x"] + 18, box["y"] + 35 * (row + 1) + 17)
            page.wait_for_timeout(800)
        expect(page.get_by_text("2 selected")).to_be_visible()
        page.screenshot(path=str(shots / "studies.png"), full_page=True)

        page.get_by_role("button", name="Compare selected").click()
        expect(page.get_by_text("2 studies, 6 runs")).to_be_visible()
        plots = page.locator(".js-plotly-plot")
        expect(plots.nth(5)).to_be_visible()
        assert plots.count() == 6
        assert page.locator(".js-plotly-plot .scatterlayer .trace").count() > 0
        page.screenshot(path=str(shots / "compare.png"), full_page=True)

        page.goto(f"{url}/study")
        expect(page.get_by_text("Findings and quality gates")).to_be_visible()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / "study.png"), full_page=True)
        browser.close()
