"""In a real browser: a study launched from Launch on the user's own image folder, under the data root."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import numpy as np

from examples.byo.make_inputs import write_shapes
from kdcore.tracking import list_studies
from tests.browser import click, enter, open_browser, screenshots, start_dashboard, wait_idle


def test_launch_a_study_on_your_own_image_folder(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    root = tmp_path / "data"
    root.mkdir()
    write_shapes(root, np.random.default_rng(0), per_class=30)  # root/shapes/<shape>/*.png, 16x16 RGB
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    server, url = start_dashboard(tmp_path, uri, "--no-samples", "--data-root", str(root))
    shots = screenshots(tmp_path)
    try:
        with sync_playwright() as p:
            browser, page = open_browser(p)
            page.goto(f"{url}/launch")
            expect(page.get_by_text("Launch a study")).to_be_visible()
            click(page.get_by_text("Your own data and models"))
            click(page.get_by_text("Use my own data"))
            wait_idle(page)
            page.get_by_label("Data source", exact=True).click()
            page.get_by_role("option", name=re.compile(r"^imagefolder")).click()
            wait_idle(page)
            path = page.get_by_label("Path (under the data root)", exact=True)
            enter(path, "../outside")
            expect(page.get_by_text("is outside the data root").first).to_be_visible()
            expect(page.get_by_role("button", name="Launch", exact=True)).to_be_disabled()
            enter(path, "shapes")
            enter(page.get_by_label("epochs", exact=True), "2")
            enter(page.get_by_label("study name", exact=True), "my shapes")
            page.screenshot(path=str(shots / "launch_own_data.png"), full_page=True)
            click(page.get_by_role("button", name="Launch", exact=True))
            expect(page.get_by_text("FINISHED").first).to_be_visible(timeout=240_000)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    studies = list_studies(uri)
    assert list(studies["name"]) == ["my shapes"] and list(studies["status"]) == ["FINISHED"]
    params = mlflow.MlflowClient(uri).get_run(studies["study_id"].iloc[0]).data.params
    assert (params["data.name"], params["data.path"]) == ("imagefolder", str(root / "shapes"))
