"""Real-browser walks through the dashboard: launch a study, watch it finish, compare it; and take
the advisor's advice from the Advisor page to a study whose findings and gates show.

Runs `kdx dashboard` on a free loopback port and drives Debian's Chromium through Playwright
(:mod:`tests.browser`). Skipped when Chromium is not installed, except in CI (CI=true), where `.ci/run`
installs it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from kdcore.study import Study
from kdcore.tracking import MlflowTracker, list_runs, list_studies, read_artifact
from tests.browser import (
    CHROMIUM,
    choose,
    click,
    enter,
    layout_problems,
    open_browser,
    screenshot,
    screenshots,
    start_dashboard,
    wait_idle,
)
from tests.helpers import tiny_config

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("CI") != "true", reason="Debian's chromium is not installed"
)


@pytest.fixture
def dashboard(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    Study(tiny_config("train.epochs=2", "tracking.study_name=earlier study"), MlflowTracker(uri), progress=False).run()
    server, url = start_dashboard(tmp_path, uri, "--no-samples")
    yield url, uri
    server.terminate()
    server.wait(timeout=30)


def launch_from_form(page, name: str, epochs: int) -> None:
    """Set the budget and the name on the Launch form and launch; the study shows at the top of the page."""
    from playwright.sync_api import expect

    expect(page.get_by_text("Launch a study")).to_be_visible()
    enter(page.get_by_label("epochs", exact=True), str(epochs))
    enter(page.get_by_label("study name", exact=True), name)
    click(page.get_by_role("button", name="Launch", exact=True))
    expect(page.locator(".st-key-launched").get_by_text(f"Launched: {name}")).to_be_visible()


def finished_at_the_top(page, timeout_ms: int):
    """Wait until the study launched last is finished in the box at the top of Launch; its Study-detail link."""
    from playwright.sync_api import expect

    box = page.locator(".st-key-launched")
    link = box.get_by_role("link", name="Open in Study detail")
    expect(link).to_be_visible(timeout=timeout_ms)
    for metric in ("Student accuracy", "Student / teacher", "Student / baseline", "Findings", "Quality gates passed"):
        expect(box.get_by_text(metric, exact=True)).to_be_visible()
    return link


def tick(page, row: int) -> None:
    """Tick or untick a row of the Studies table (its first column is the tick box of a canvas grid)."""
    grid = page.locator(".st-key-studies_table [data-testid='stDataFrame'], [data-testid='stDataFrame']").first
    wait_idle(page)
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 16, box["y"] + 35 * (row + 1) + 17)
    wait_idle(page)


def trace_names(page, title: str) -> list[str]:
    """The names of the traces of the chart whose title starts with ``title``."""
    return page.evaluate("""(title) => [...document.querySelectorAll('.js-plotly-plot')]
        .filter(plot => plot._fullLayout && (plot._fullLayout.title.text || '').includes(title))
        .flatMap(plot => plot.data.map(trace => trace.name || ''))""", title)


def test_launch_leads_to_the_study_and_a_selection_survives_navigation(dashboard, tmp_path: Path) -> None:
    """Launch shows the study it started at the top, live, then its numbers and a link to Study detail. On
    Studies, the ticks, the caption and the buttons agree, across a trip to Compare and back."""
    from playwright.sync_api import expect, sync_playwright

    url, uri = dashboard
    shots = screenshots(tmp_path, "launch_and_select")
    with sync_playwright() as p:
        browser, page = open_browser(p)
        page.set_viewport_size({"width": 1280, "height": 1000})

        page.goto(f"{url}/launch")
        launch_from_form(page, "browser study", epochs=3)
        top = page.get_by_role("heading", name="Launch a study")
        top.scroll_into_view_if_needed()
        screenshot(page, shots / "launch_started.png")
        link = finished_at_the_top(page, 150_000)
        top.scroll_into_view_if_needed()
        screenshot(page, shots / "launch_finished.png")
        studies = list_studies(uri).set_index("name")
        assert set(studies.index) == {"earlier study", "browser study"} and set(studies["status"]) == {"FINISHED"}
        click(link)
        expect(page).to_have_url(re.compile(rf"/study\?id={studies.loc['browser study', 'study_id']}"))
        expect(page.get_by_text("browser study").first).to_be_visible()

        page.goto(f"{url}/")
        enter(page.get_by_label("Search", exact=True).first, "study")  # both names; a filter to come back to
        expect(page.get_by_text("2 of 2 studies shown · 0 selected")).to_be_visible()
        tick(page, 0)
        tick(page, 1)  # adds to the selection, does not replace it
        expect(page.get_by_text("2 selected")).to_be_visible()
        screenshot(page, shots / "studies_two_ticked.png")

        click(page.get_by_role("button", name="Compare selected"))
        expect(page).to_have_url(re.compile(r"/compare\?studies=\w{8}(,|%2C)\w{8}$"))
        expect(page.get_by_text("2 studies, 6 runs")).to_be_visible()
        screenshot(page, shots / "compare.png", full_page=True)

        click(page.get_by_role("link", name="Studies", exact=True))  # the sidebar: no query in the URL
        expect(page.get_by_label("Search", exact=True).first).to_have_value("study")
        expect(page.get_by_text("2 of 2 studies shown · 2 selected")).to_be_visible()
        screenshot(page, shots / "studies_after_compare.png")
        tick(page, 0)  # shown ticked, so this unticks it
        expect(page.get_by_text("2 of 2 studies shown · 1 selected")).to_be_visible()
        click(page.get_by_role("button", name="Open study"))
        expect(page.get_by_text("earlier study").first).to_be_visible()  # the one still ticked (the older row)
        expect(page).to_have_url(re.compile(rf"/study\?id={studies.loc['earlier study', 'study_id']}"))
        browser.close()


def test_advice_to_a_finished_study_compared_with_every_role(dashboard, tmp_path: Path) -> None:
    """As a new user: a large 1-d CNN teacher, a tiny MLP student, on MNIST-1D; launch the advice, open the
    study from Launch, and compare it with an earlier study: every role of both is drawn."""
    from playwright.sync_api import expect, sync_playwright

    url, uri = dashboard
    shots = screenshots(tmp_path, "advice_to_compare")
    with sync_playwright() as p:
        browser, page = open_browser(p)
        page.set_viewport_size({"width": 1280, "height": 1000})
        page.goto(f"{url}/advisor")
        expect(page.get_by_text("Describe the teacher")).to_be_visible()
        choose(page, "Dataset", "mnist1d")
        choose(page, "Model", "cnn1d", nth=0)
        choose(page, "Size", "large (width 64, depth 4)", nth=0)
        choose(page, "Model", "mlp", nth=1)
        choose(page, "Size", "tiny (width 16, depth 1)", nth=1)
        expect(page.get_by_test_id("stMetricValue").first).to_have_text("progressive")
        expect(page.get_by_text("65,098 parameters on mnist1d")).to_be_visible()
        expect(page.get_by_text("What each stage of the chain learns")).to_be_visible()
        screenshot(page, shots / "advisor.png", full_page=True)

        click(page.get_by_role("button", name="Open Launch with this advice"))
        expect(page.get_by_text("The form below holds the Advisor", exact=False)).to_be_visible()
        launch_from_form(page, "advised study", epochs=3)
        click(finished_at_the_top(page, 240_000))
        advised = list_studies(uri).set_index("name").loc["advised study"]
        assert advised["status"] == "FINISHED" and advised["mechanism"] == "progressive"
        assert advised["gates_passed"] + advised["gates_failed"] > 0
        expect(page).to_have_url(re.compile(rf"/study\?id={advised['study_id']}"))
        expect(page.get_by_text("The chain", exact=True)).to_be_visible()  # the stages, with teacher and baseline
        expect(page.get_by_text("Quality gates:")).to_be_visible()
        titles = [f["title"] for f in json.loads(read_artifact(advised["study_id"], "findings.json", uri))]
        for title in titles:
            expect(page.get_by_text(title, exact=True).first).to_be_visible()
        if not titles:
            expect(page.get_by_text("No failure mode detected.")).to_be_visible()
        screenshot(page, shots / "study.png", full_page=True)

        page.goto(f"{url}/")  # Studies: the findings summary and the gates filter
        expect(page.get_by_text("2 of 2 studies shown")).to_be_visible()
        for code in filter(None, str(advised["findings"]).split(",")):
            expect(page.get_by_role("button", name=code, exact=False).first).to_be_visible()

        studies = list_studies(uri)
        page.goto(f"{url}/compare?studies={','.join(sid[:8] for sid in studies['study_id'])}")
        expect(page.get_by_text("2 studies", exact=False).first).to_be_visible()
        screenshot(page, shots / "compare.png", full_page=True)
        runs = {(name, role) for name, sid in zip(studies["name"], studies["study_id"], strict=True)
                for role in list_runs([sid], uri)["tags.kd.role"]}
        assert {"assistant_1", "student"} <= {role for name, role in runs if name == "advised study"}
        for chart in ("Predictive entropy", "Reliability"):
            drawn = " | ".join(trace_names(page, chart))
            for name, role in runs:
                assert f"{name} · {role}" in drawn, (chart, name, role, drawn)
        assert not layout_problems(page)
        browser.close()


def test_study_detail_shows_peers_and_exits(dashboard, tmp_path: Path) -> None:
    """An online study's peers and a self-distilled student's exits, as Study detail draws them."""
    from playwright.sync_api import expect, sync_playwright

    url, uri = dashboard
    shots = screenshots(tmp_path)
    studies = {
        "study_online.png": (["distill.mechanism=online", "distill.peers=[{name: mlp, width: 64, depth: 2}]"],
                             "Peers: best"),
        "study_exits.png": (["distill.mechanism=self", "distill.self_kind=spatial", "student.width=32",
                             "student.depth=3", "distill.exit=2"], "Exits of the self-distilled student"),
    }
    with sync_playwright() as p:
        browser, page = open_browser(p)
        for shot, (overrides, heading) in studies.items():
            cfg = tiny_config(*overrides, "train.epochs=12", "train.lr=0.01")
            study_id = Study(cfg, MlflowTracker(uri), progress=False).run().study_id
            page.goto(f"{url}/study?id={study_id}")
            expect(page.get_by_text(heading, exact=False).first).to_be_visible()
            page.get_by_text(heading, exact=False).first.scroll_into_view_if_needed()
            expect(page.locator(".js-plotly-plot").first).to_be_visible()
            screenshot(page, shots / shot)
        browser.close()


def test_study_detail_shows_attention_maps_and_paired_views(dashboard, tmp_path: Path) -> None:
    """A transformer chain's attention maps per role, and an RGB-D study's two views side by side."""
    from playwright.sync_api import expect, sync_playwright

    url, uri = dashboard
    shots = screenshots(tmp_path)
    transformers = [f"{role}.{key}" for role in ("teacher", "student") for key in ("name=transformer", "depth=1")]
    studies = {
        "study_attention.png": ([*transformers, "data.name=arithmetic", "data.n_samples=3000", "teacher.width=32",
                                 "teacher.depth=2", "student.width=16", "distill.method=multi",
                                 "distill.params={terms: [{term: kd}, {term: attention_pattern}]}", "train.lr=0.003"],
                                "Attention maps", "Where each position looks"),
        "study_rgbd.png": (["data.name=rgbd_scenes", "data.n_samples=600", "distill.mechanism=cross_modal",
                            "distill.align_epochs=2"], "RGB and depth, side by side", "The same scenes"),
    }
    with sync_playwright() as p:
        browser, page = open_browser(p)
        for shot, (overrides, heading, title) in studies.items():
            cfg = tiny_config(*overrides, "train.epochs=6")
            study_id = Study(cfg, MlflowTracker(uri), progress=False).run().study_id
            page.goto(f"{url}/study?id={study_id}")
            expect(page.get_by_text(heading, exact=False).first).to_be_visible()
            page.get_by_text(heading, exact=False).first.scroll_into_view_if_needed()
            expect(page.get_by_text(title, exact=False).first).to_be_visible()
            screenshot(page, shots / shot)
        browser.close()


LEARN_PAGES = {"learn_temperature": "Temperature and soft labels", "learn_capacity": "Capacity gap",
               "learn_tree": "The decision tree, walked through", "learn_failures": "The five failure modes",
               "learn_gates": "The quality gates"}


COMPARED = ["provoked capacity_mismatch seed0", "fixed capacity_mismatch - one assistant seed0",
            "fixed capacity_mismatch - alpha 0.1 seed0"]  # a progressive student beside two offline ones
READ_AT = {"width": 1280, "height": 900}  # every page must be readable this wide


def test_every_page_over_the_samples_is_readable_at_1280_px(tmp_path: Path) -> None:
    """The workshop dashboard over the sample studies: every Learn page answers, Run it queues a study, and
    no page (Learn, Studies, Compare, Study detail, Advisor, Launch) cuts a button label or lets a legend
    take more than half its chart at 1280 px."""
    from playwright.sync_api import expect, sync_playwright

    from kdcore.launcher import list_jobs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    server, url = start_dashboard(tmp_path, uri, "--workshop", timeout=900)  # it loads the 90 samples first
    shots = screenshots(tmp_path)
    problems: dict[str, list[str]] = {}
    try:
        with sync_playwright() as p:
            browser, page = open_browser(p)
            page.set_viewport_size(READ_AT)
            page.goto(url)  # workshop mode opens on Learn
            expect(page.get_by_role("heading", name="Temperature and soft labels")).to_be_visible()
            for name, heading in LEARN_PAGES.items():
                page.goto(f"{url}/{'' if name == 'learn_temperature' else name}")  # the default page lives at /
                expect(page.get_by_role("heading", name=heading)).to_be_visible()
                expect(page.get_by_text("kdx samples load")).to_have_count(0)  # every sample it needs is there
                expect(page.get_by_text("Deploy", exact=True)).to_have_count(0)  # no deploy menu
                screenshot(page, shots / f"{name}.png", full_page=True)
                problems[name] = layout_problems(page)

            ids = dict(zip(*(list_studies(uri)[column] for column in ("name", "study_id")), strict=True))
            pages = {"studies": "studies", "compare": f"compare?studies={','.join(ids[n][:8] for n in COMPARED)}",
                     "study": f"study?id={ids[COMPARED[1]]}", "advisor": "advisor", "launch": "launch"}
            for name, path in pages.items():
                page.goto(f"{url}/{path}")
                expect(page.locator("h1").first).to_be_visible()
                screenshot(page, shots / f"{name}.png", full_page=True)
                problems[name] = layout_problems(page)

            page.goto(url)
            click(page.get_by_role("button", name="Run it"))
            expect(page.get_by_text("Queued", exact=False).first).to_be_visible()
            browser.close()
        assert any("learn" in (job.name or "") for job in list_jobs(tmp_path / "jobs"))
        assert not {name: found for name, found in problems.items() if found}
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
