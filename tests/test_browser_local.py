"""The dashboard in a real browser works offline, holds still and shows store text as written: the main
pages fetch nothing from beyond the dashboard's own address and log no console error; Launch does not
rerun on its own while nothing is queued; and a study named with Markdown (a remote image, a link,
bold) shows that name as text, with no image, no link and no request.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
from mlflow import MlflowClient

from kdcore.study import Study
from kdcore.tracking import MlflowTracker
from tests import test_browser
from tests.browser import click, open_browser, start_dashboard, wait_idle
from tests.damaged_store import INJECTION
from tests.helpers import tiny_config

pytestmark = test_browser.pytestmark
MAIN_PAGES = {"Advisor": "Advisor", "Launch": "Launch a study", "Compare": "Compare", "Study detail": "Study detail",
              "Temperature": "Temperature and soft labels", "Capacity gap": "Capacity gap",
              "Decision tree": "The decision tree, walked through", "Failure modes": "The five failure modes",
              "Quality gates": "The quality gates", "Studies": "Studies", "Sweep": "Sweep"}  # sidebar -> heading


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """``kdx dashboard`` over one tiny study named INJECTION, with a finding whose title and fix are too."""
    folder = tmp_path_factory.mktemp("local")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    study_id = Study(tiny_config(), MlflowTracker(uri), progress=False).run().study_id
    client = MlflowClient(tracking_uri=uri)
    client.set_tag(study_id, "mlflow.runName", INJECTION)
    finding = {"code": "overconfidence", "title": INJECTION, "severity": "critical", "evidence": {"student_acc": 0.5},
               "fix": INJECTION, "fix_overrides": []}
    client.log_text(study_id, json.dumps([finding]), "findings.json")
    client.set_tag(study_id, "kd.findings", "overconfidence")
    server, url = start_dashboard(folder, uri, "--no-samples")
    yield url, study_id
    server.terminate()
    server.wait(timeout=30)


def watch(page) -> tuple[set[str], list[str]]:
    """The hosts the page sends requests to (http and WebSocket) and the errors it logs, as they come."""
    hosts: set[str] = set()
    errors: list[str] = []

    def request(sent) -> None:
        address = urlsplit(sent.url)
        if address.scheme in ("http", "https", "ws", "wss"):
            hosts.add(address.netloc)

    page.on("request", request)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return hosts, errors


def test_main_pages_fetch_only_from_the_dashboard_and_log_no_error(served) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _ = served
    with sync_playwright() as p:
        browser, page = open_browser(p)
        hosts, errors = watch(page)
        page.goto(url)
        expect(page.get_by_role("heading", name="Studies")).to_be_visible()
        wait_idle(page)
        for link, heading in MAIN_PAGES.items():  # through the sidebar, as a reader moves between pages
            click(page.locator("[data-testid='stSidebarNav']").get_by_text(link, exact=True))
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        browser.close()
    assert hosts == {urlsplit(url).netloc}
    assert errors == []


def test_a_study_named_in_markdown_shows_the_name_as_text(served) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, study_id = served
    with sync_playwright() as p:
        browser, page = open_browser(p)
        hosts, _ = watch(page)
        page.goto(f"{url}/study?id={study_id}")
        main = page.get_by_test_id("stMain")
        expect(main.get_by_text("Findings and quality gates")).to_be_visible()
        wait_idle(page)
        shown = main.inner_text().replace("\u2060", "")
        assert shown.count(INJECTION) >= 2  # the finding's title and its fix
        assert main.locator("a[href*='invalid'], img").count() == 0
        assert main.locator("strong", has_text=re.compile(r"^bold$")).count() == 0
        browser.close()
    assert hosts == {urlsplit(url).netloc}


RUNS = """() => {
  window.__kdxRuns = 0;
  const app = document.querySelector('[data-testid="stApp"]');
  new MutationObserver(() => { if (app.dataset.testScriptState === "running") window.__kdxRuns += 1; })
    .observe(app, {attributes: true, attributeFilter: ["data-test-script-state"]});
}"""


def test_launch_holds_still_while_nothing_is_queued(served) -> None:
    """A page that reruns by itself redraws the form under the reader's pointer (an open select box closes)."""
    from playwright.sync_api import expect, sync_playwright

    url, _ = served
    with sync_playwright() as p:
        browser, page = open_browser(p)
        page.goto(f"{url}/launch")
        expect(page.get_by_text("No studies launched from this machine yet.")).to_be_visible()
        wait_idle(page)
        page.evaluate(RUNS)
        page.wait_for_timeout(6000)  # three periods of a 2 s refresh
        assert page.evaluate("window.__kdxRuns") == 0
        browser.close()
