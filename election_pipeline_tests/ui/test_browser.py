"""The Dagster UI in a real browser (Debian's Chromium, headless, driven by Playwright), as an
observer uses it after a file was dropped: the asset graph, the sensor's run, and the
charts of the election report. Screenshots are saved in the test's temporary folder.

Playwright never downloads a browser here: it starts ``/usr/bin/chromium`` (``apt-get
install chromium``; another binary with ``ELECTION_TEST_CHROMIUM``). Without it the tests
are skipped with the reason printed, except in CI (the ``CI`` environment variable set),
where they fail.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from election_pipeline_tests.browser import CHROMIUM, CHROMIUM_ARGS, browser_missing, skip_module_without_browser

pytestmark = pytest.mark.slow


def _graph() -> tuple[list[str], int]:
    """The asset names and the number of asset checks of the project's definitions (what the
    UI must show: the test follows the graph rather than a copy of it)."""
    from election_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    names = sorted(key.to_user_string() for key in graph.get_all_asset_keys())
    return names, len(list(graph.asset_check_keys))


ASSETS, CHECK_COUNT = _graph()
TIMEOUT_MS = 60_000


skip_module_without_browser("the Dagster UI")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A headless Chromium with a fresh profile, shared by the tests of this module."""
    missing = browser_missing()
    if missing:
        pytest.fail(f"the browser tests may not be skipped in CI (CI is set): {missing}")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium_profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 950},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def _open(browser, url: str):
    """Open ``url`` in a new tab. The instance's settings turn Dagster's first-visit newsletter
    dialog off (``nux: enabled: false``); should a dialog with a "Skip" button still cover the
    page, Playwright dismisses it whenever it blocks an action, however late it appears."""
    page = browser.new_page()
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
    page.goto(url, wait_until="networkidle")
    return page


def _shown_as(name: str, text: str) -> bool:
    """Whether a graph node's label ``text`` is ``name``, possibly shortened in the middle with "…"."""
    if "…" not in text:
        return text == name
    head, tail = text.split("…", 1)
    return name.startswith(head) and name.endswith(tail)


def test_asset_graph_page_shows_every_layer(browser, dagster_dev, sensed_run, tmp_path):
    page = _open(browser, f"{dagster_dev.url}/asset-groups")
    page.get_by_text("Global asset lineage").wait_for()
    for name in ASSETS:  # the list beside the graph: every asset, each with a green "materialised" mark
        entry = page.locator(f"[title='{name}']").first
        entry.wait_for(state="visible")
        # The status marks arrive after the list (live data, fetched separately): wait for it.
        mark = entry.locator("xpath=..").get_by_role("img", name="run_success")
        mark.first.wait_for(state="visible")
        assert mark.count() == 1, name
    # The graph draws one node per asset, named (long names shortened in the middle).
    page.wait_for_function("() => document.querySelectorAll('svg foreignObject').length >= 7")
    labels = [t.strip() for t in page.locator("svg foreignObject").all_text_contents() if t and t.strip()]
    for name in ASSETS:
        assert any(_shown_as(name, label) for label in labels), (name, labels)
    page.screenshot(path=str(tmp_path / "asset_graph.png"))
    print(f"\nscreenshot: {tmp_path / 'asset_graph.png'}")
    page.close()


def test_run_page_shows_the_sensor_run_succeeded(browser, dagster_dev, sensed_run, tmp_path):
    page = _open(browser, f"{dagster_dev.url}/runs/{sensed_run.run_id}")
    page.get_by_text(sensed_run.run_id[:8], exact=True).first.wait_for()
    page.get_by_text("Success", exact=True).first.wait_for(state="visible")
    page.get_by_text("input_folder_sensor").first.wait_for(state="visible")
    page.get_by_text(f"{len(ASSETS)} assets", exact=True).wait_for(state="visible")
    page.get_by_text(f"{CHECK_COUNT} checks", exact=True).wait_for(state="visible")
    page.get_by_text("RUN_SUCCESS").first.wait_for(state="visible")
    assert page.get_by_text("Errored (0)").is_visible()
    page.screenshot(path=str(tmp_path / "run.png"))
    print(f"\nscreenshot: {tmp_path / 'run.png'}")
    page.close()


def test_report_asset_shows_its_charts(browser, dagster_dev, sensed_run, tmp_path):
    page = _open(browser, f"{dagster_dev.url}/assets/election_report")
    page.get_by_role("row").filter(has_text="charts").get_by_text("[Show Markdown]").click()
    images = page.locator("img[src^='data:image/png']")
    page.wait_for_function("() => document.querySelectorAll(\"img[src^='data:image/png']\").length === 5")
    page.get_by_text("Cumulative participation per constituency, with the peer band").wait_for(state="visible")
    sizes = [images.nth(i).evaluate("img => [img.naturalWidth, img.naturalHeight]") for i in range(images.count())]
    assert all(w > 500 and h > 200 for w, h in sizes), sizes  # decoded and drawn, not broken images
    page.screenshot(path=str(tmp_path / "report_charts.png"))
    print(f"\nscreenshot: {tmp_path / 'report_charts.png'}")
    page.close()
