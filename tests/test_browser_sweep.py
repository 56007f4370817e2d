"""Sweep in a real browser over real tiny sweeps (:func:`tests.helpers.sweep_store`): arriving by a link, the
heatmap and the line are drawn, the table of points is there and nothing is cut or crowded; picking another
sweep in the select box shows it and puts it in the URL.

Runs `kdx dashboard` on a free loopback port and drives Debian's Chromium through Playwright
(:mod:`tests.browser`); skipped, like the other browser tests, where Chromium is not installed.
"""

from __future__ import annotations

import re

import pytest

from tests import test_browser
from tests.browser import choose, layout_problems, open_browser, screenshot, screenshots, start_dashboard, wait_idle
from tests.helpers import SweepStore, sweep_store

pytestmark = test_browser.pytestmark

TRACE_TYPES = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .filter(plot => plot.getClientRects().length > 0)
    .map(plot => plot.data.map(trace => trace.type || 'scatter').join(','))"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """``kdx dashboard`` over the store of tiny sweeps: (url, store)."""
    store: SweepStore = sweep_store(tmp_path_factory)
    server, url = start_dashboard(store.folder, store.uri, "--no-samples")
    yield url, store
    server.terminate()
    server.wait(timeout=30)


def test_sweep_page_draws_its_heatmap_and_table(served, tmp_path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, store = served
    shots = screenshots(tmp_path, "sweep")
    with sync_playwright() as p:
        browser, page = open_browser(p)
        page.set_viewport_size({"width": 1280, "height": 1000})
        page.goto(f"{url}/sweep?sweep={store.ids['grid'][:8]}")
        wait_idle(page)
        expect(page.get_by_role("heading", name="Sweep", exact=True)).to_be_visible()
        expect(page.get_by_text("8 of 8 studies finished")).to_be_visible()
        expect(page.locator(".js-plotly-plot").first).to_be_visible()
        assert page.evaluate(TRACE_TYPES)[0] == "heatmap"
        expect(page.locator(".js-plotly-plot .hm").first).to_be_attached()  # the heatmap's cells were drawn
        expect(page.locator("[data-testid='stDataFrame']")).to_be_visible()
        expect(page.get_by_text("Best point, chosen on validation")).to_be_visible()
        assert layout_problems(page) == []
        screenshot(page, shots / "sweep_grid.png", full_page=True)

        choose(page, "Which sweep", f"running · running · 1 finished · {store.ids['running'][:8]}")
        expect(page).to_have_url(re.compile(rf"/sweep\?sweep={store.ids['running'][:8]}$"))
        expect(page.get_by_text("1 of 2 studies finished")).to_be_visible()
        assert page.evaluate(TRACE_TYPES) == ["scatter"]  # one axis: a line, no heatmap (one seed: no band)
        assert layout_problems(page) == []
        screenshot(page, shots / "sweep_running.png", full_page=True)
        browser.close()
