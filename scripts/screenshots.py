"""Regenerate the screenshots in ``docs/screenshots/`` from the shipped sample studies.

    python scripts/screenshots.py                 # loads sample_runs/ into a temporary store first
    python scripts/screenshots.py --store URI     # a store that already holds the samples (a study is
                                                  # launched into it for the Launch page)

Starts ``kdx dashboard`` on that store, walks every page in Debian's Chromium at 1280 px wide (the
width the layout is checked at), and writes one PNG per page. A page with a truncated button label or a
legend that takes more than half its chart is listed at the end, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import click, enter, layout_problems, open_browser, screenshot, start_dashboard  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
WIDTH = 1280
# Sample studies by name: a comparison with a progressive and two offline students, and Study detail pages.
COMPARE = ["provoked capacity_mismatch seed0", "fixed capacity_mismatch - one assistant seed0",
           "fixed capacity_mismatch - alpha 0.1 seed0"]
DETAILS = {
    "study": "fixed capacity_mismatch - one assistant seed0",
    "study_online": "mnist1d online - mlp + cnn1d peer seed0",
    "study_exits": "mnist1d self exits - cnn1d exit 2 seed0",
    "study_attention": "worked example 1 - arithmetic transformer chain seed0",
    "study_rgbd": "worked example 2 - rgb->depth aligned seed0",
}
LEARN = ["learn_temperature", "learn_capacity", "learn_tree", "learn_failures", "learn_gates"]


def sample_store(folder: Path) -> str:
    """A SQLite store in ``folder`` holding the shipped samples."""
    from kdcore.samples import load_samples

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    print(f"loading the samples into {uri} ...", flush=True)
    load_samples(ROOT / "sample_runs", uri)
    return uri


def study_ids(uri: str) -> dict[str, str]:
    from kdcore.tracking import list_studies

    studies = list_studies(uri)
    return dict(zip(studies["name"], studies["study_id"], strict=True))


def walk(url: str, ids: dict[str, str], out: Path) -> dict[str, list[str]]:
    """Every page, one screenshot each; what :func:`tests.browser.layout_problems` finds on each."""
    from playwright.sync_api import expect, sync_playwright

    problems: dict[str, list[str]] = {}

    def shoot(name: str, height: int = 900, full_page: bool = True) -> None:
        page.set_viewport_size({"width": WIDTH, "height": height})
        screenshot(page, out / f"{name}.png", full_page=full_page)
        problems[name] = layout_problems(page)
        print(f"{name}.png", *problems[name], sep="\n  ", flush=True)

    with sync_playwright() as p:
        browser, page = open_browser(p)
        page.set_viewport_size({"width": WIDTH, "height": 900})
        page.goto(f"{url}/")
        expect(page.get_by_text("studies shown", exact=False)).to_be_visible()
        shoot("studies", full_page=False)

        chosen = ",".join(ids[name][:8] for name in COMPARE)
        page.goto(f"{url}/compare?studies={chosen}")
        expect(page.get_by_role("heading", name="Compare")).to_be_visible()
        shoot("compare")

        for shot, name in DETAILS.items():
            page.goto(f"{url}/study?id={ids[name]}")
            expect(page.get_by_text(name).first).to_be_visible()
            shoot(shot)

        for name in LEARN:
            page.goto(f"{url}/{name}")
            expect(page.locator("h1").first).to_be_visible()
            shoot(name)

        page.goto(f"{url}/advisor")
        expect(page.get_by_text("Describe the teacher")).to_be_visible()
        page.goto(f"{url}/learn_tree")
        click(page.get_by_role("button", name="Open in the Advisor").last)  # the language-model chain
        expect(page.get_by_text("What each stage of the chain learns")).to_be_visible()
        shoot("advisor")

        page.goto(f"{url}/learn_tree")
        click(page.get_by_role("button", name="Open in the Advisor").first)  # a digits study: quick to run
        click(page.get_by_role("button", name="Open Launch with this advice"))
        expect(page.get_by_text("Launch a study")).to_be_visible()
        enter(page.get_by_label("epochs", exact=True), "3")
        enter(page.get_by_label("study name", exact=True), "digits, as advised")
        click(page.get_by_role("button", name="Launch", exact=True))
        expect(page.get_by_role("link", name="Open in Study detail")).to_be_visible(timeout=600_000)
        page.get_by_role("heading", name="Launch a study").scroll_into_view_if_needed()
        shoot("launch", full_page=False)
        browser.close()
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="a tracking URI that already holds the sample studies")
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go (default: docs/screenshots)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kdx-screenshots-") as folder:
        uri = args.store or sample_store(Path(folder))
        server, url = start_dashboard(Path(folder), uri, "--no-samples", timeout=300)
        try:
            problems = walk(url, study_ids(uri), args.out)
        finally:
            server.terminate()
            server.wait(timeout=30)
    bad = {page: found for page, found in problems.items() if found}
    for page, found in bad.items():
        print(f"{page}: " + "; ".join(found), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
