"""Driving the dashboard in a real browser: start ``kdx dashboard`` on a free loopback port, open Debian's
Chromium through Playwright, and act only when the app is idle.

Every click, fill or key press first waits until the app is idle (:func:`wait_idle`): a script run
still going replaces the elements it draws, so an element found during a run may be gone by the
time it is clicked (a select box whose options depend on another widget is redrawn with its
dropdown closed). Used by the browser tests and by ``scripts/screenshots.py``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


class DashboardDidNotStart(RuntimeError):
    """The dashboard never answered its health check."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_dashboard(tmp_path: Path, uri: str, *flags: str, timeout: float = 90):
    """``kdx dashboard`` on a free port over ``uri``, once it answers its health check: (server, url)."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "KDX_JOBS_DIR": str(tmp_path / "jobs")}
    kdx = shutil.which("kdx", path=str(Path(sys.executable).parent))
    server = subprocess.Popen([kdx, "dashboard", "--port", str(port), *flags], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise DashboardDidNotStart(f"dashboard did not start: {server.stdout.read().decode()[-2000:]}")


def screenshots(tmp_path: Path, name: str = "") -> Path:
    """The folder a test writes its screenshots to: ``$KDX_SCREENSHOT_DIR/<name>`` (or under ``tmp_path``)."""
    shots = Path(os.environ.get("KDX_SCREENSHOT_DIR") or tmp_path / "screenshots") / name
    shots.mkdir(parents=True, exist_ok=True)
    return shots


MAIN_HEIGHT = """() => { const main = document.querySelector('[data-testid="stMain"]');
                         return main ? main.scrollHeight : document.body.scrollHeight; }"""
MAX_HEIGHT = 12_000  # px of one full-page screenshot


def screenshot(page, path: Path, full_page: bool = False) -> None:
    """A screenshot once the page is ready (:func:`screenshot_ready`). Streamlit scrolls inside its main
    element, not the document, so a full page is taken by making the window as tall as that element."""
    screenshot_ready(page)
    if not full_page:
        page.screenshot(path=str(path))
        return
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(max(page.evaluate(MAIN_HEIGHT), size["height"]),
                                                                  MAX_HEIGHT)})
    screenshot_ready(page)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def screenshot_ready(page) -> None:
    """Wait until the app is idle and every plotly chart in view (not in a hidden tab) has been drawn at the
    current size."""
    wait_idle(page)
    page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .filter(plot => plot.getClientRects().length > 0)
        .every(plot => plot._fullLayout
               && Math.abs(plot._fullLayout.width - plot.getBoundingClientRect().width) < 2)""")


def open_browser(p):
    from playwright.sync_api import expect

    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)  # the first render imports torch and MLflow
    return browser, page


# The app is idle when no script runs or is asked for, the connection is up, no element is stale
# (left from the previous run, about to be replaced) and the status widget shows no "Running...".
IDLE = """({token, quiet}) => {
  const app = document.querySelector('[data-testid="stApp"]');
  const busy = !app || app.dataset.testScriptState !== "notRunning" || app.dataset.testConnectionState !== "CONNECTED"
    || document.querySelector('[data-stale="true"], [data-testid="stStatusWidgetRunningIcon"]') !== null;
  if (!window.__kdxIdle || window.__kdxIdle.token !== token) window.__kdxIdle = {token, since: null};
  const idle = window.__kdxIdle;
  if (busy) { idle.since = null; return false; }
  if (idle.since === null) idle.since = performance.now();
  return performance.now() - idle.since >= quiet;
}"""
_waits = itertools.count()


def wait_idle(page, quiet_ms: int = 400, timeout_ms: int = 120_000) -> None:
    """Wait until the app has been idle for ``quiet_ms`` in a row (a rerun asked for by the last action
    has started and ended by then)."""
    page.wait_for_function(IDLE, arg={"token": next(_waits), "quiet": quiet_ms}, polling=50, timeout=timeout_ms)


def click(locator) -> None:
    """Click once the app is idle, then wait until the run the click starts has ended."""
    wait_idle(locator.page)
    locator.click()
    wait_idle(locator.page)


def enter(locator, text: str) -> None:
    """Type ``text`` into a field and press Enter once the app is idle, then wait for the run it starts."""
    wait_idle(locator.page)
    locator.fill(text)
    locator.press("Enter")
    wait_idle(locator.page)


def choose(page, label: str, option: str, nth: int = 0) -> None:
    """Pick ``option`` in the ``nth`` selectbox labelled ``label``."""
    wait_idle(page)
    page.get_by_label(label, exact=True).nth(nth).click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


# Buttons (and page links) whose label is cut by an ellipsis: an element in them whose text is wider than
# its box. Charts whose legend, beside the plot, takes more than half the width.
BUTTONS = ", ".join(f'[data-testid="{kind}"]' for kind in (
    "stBaseButton-primary", "stBaseButton-secondary", "stBaseButton-tertiary", "stBaseButton-pills",
    "stBaseButton-pillsActive", "stPageLink-NavLink"))
TRUNCATED = """(selector) => [...document.querySelectorAll(selector)]
  .filter(button => button.getClientRects().length > 0)
  .filter(button => [button, ...button.querySelectorAll('*')].some(el => el.scrollWidth > el.clientWidth + 1
                                                                     && getComputedStyle(el).overflow !== 'visible'))
  .map(button => button.innerText.trim())"""
WIDE_LEGENDS = """() => [...document.querySelectorAll('.js-plotly-plot')]
  .filter(plot => plot.getClientRects().length > 0 && plot._fullLayout && plot.querySelector('g.legend'))
  .map(plot => ({width: plot.getBoundingClientRect().width, layout: plot._fullLayout,
                 legend: plot.querySelector('g.legend').getBoundingClientRect().width}))
  .filter(({width, layout, legend}) => (layout.legend.orientation !== 'h' && legend > width / 2)
                                       || layout._size.w < width / 2)
  .map(({width, layout, legend}) => `${(layout.title && layout.title.text) || 'untitled'}: legend `
       + `${Math.round(legend)} px, plot area ${Math.round(layout._size.w)} of ${Math.round(width)} px`)"""


def layout_problems(page) -> list[str]:
    """What a reader of this page cannot read: truncated button labels and legends wider than half their chart."""
    screenshot_ready(page)
    cut = [f"truncated button: {label!r}" for label in page.evaluate(TRUNCATED, BUTTONS)]
    return cut + [f"wide legend: {text}" for text in page.evaluate(WIDE_LEGENDS)]
