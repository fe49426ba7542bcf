"""The triage page in a real browser (Debian's Chromium, headless, driven by Playwright, as
``election_pipeline_tests/ui/test_browser.py``), served by ``election-pipeline serve``
started as a process on a workspace that ``election-pipeline run`` filled from the export
files of ``election_pipeline_tests/scenario.py``: contract B is the stuffing constituency
(3 voters for 1 bulletin, a critical ``votes_exceed_bulletins`` alert).

* an analyst signs in, opens B's critical alert, changes its status and adds a note; the
  database and the audit trail then hold both changes under the token's name;
* an observer finds no edit controls;
* with the alert list and the elections page open, a new file is dropped and the pipeline
  run again: the new alert and the new figures appear without a reload.

Screenshots of each page (1280 px and 390 px wide) go to the test's temporary folder, or to
``ELECTION_WEB_SCREENSHOTS`` when set (docs/web.md: how ``docs/screenshots/`` is refreshed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from election_pipeline.api.tokens import create_token
from election_pipeline.db.models import Alert, AlertEvent
from election_pipeline.db.session import get_engine
from election_pipeline_tests.browser import CHROMIUM, CHROMIUM_ARGS, browser_missing, skip_module_without_browser
from election_pipeline_tests.builders import CONTRACT_A, CONTRACT_B, Workspace, make_workspace, ms, vote
from election_pipeline_tests.scenario import drop_all
from election_pipeline_tests.servers import free_port

pytestmark = pytest.mark.slow


REPO = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 30_000
LIVE_TIMEOUT_MS = 60_000
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
#: Contract A, hour 09 UTC: three new voters and no bulletin, so A's voters (6) exceed its
#: bulletins (5): a new critical alert for A.
A09 = f"{CONTRACT_A}_2024-09-06_0900-1000.csv"


skip_module_without_browser("the triage page")


def _command(name: str) -> list[str]:
    script = Path(sys.executable).with_name("election-pipeline")
    return [str(script), name] if script.exists() else [sys.executable, "-m", "election_pipeline.cli", name]


@dataclass
class Served:
    url: str
    workspace: Workspace
    env: dict[str, str]
    database_url: str
    tokens: dict[str, str]
    shots: Path
    log: Path

    def run_pipeline(self) -> None:
        done = subprocess.run(
            [*_command("run"), "--log-level", "WARNING"],
            cwd=self.workspace.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, f"election-pipeline run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``election-pipeline run`` on the scenario's files, then ``election-pipeline serve``."""
    missing = browser_missing()
    if missing:
        pytest.fail(f"the browser tests may not be skipped in CI (CI is set): {missing}")
    root = tmp_path_factory.mktemp("web_browser")
    ws = make_workspace(root / "ws")
    drop_all(ws)
    s = ws.settings()
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(root / "dagster_home"),
        "ELECTION_INPUT_DIR": s.input_dir,
        "ELECTION_REFERENCE_DIR": s.reference_dir,
        "ELECTION_PROCESSED_DIR": s.processed_dir,
        "ELECTION_QUARANTINE_DIR": s.quarantine_dir,
        "ELECTION_DATABASE_URL": s.database_url,
        "ELECTION_DUCKDB_PATH": s.duckdb_path,
        "ELECTION_REPORTS_DIR": s.reports_dir,
        "ELECTION_FILE_SETTLE_SECONDS": "0",
        "ELECTION_API_PORT": str(port),
    }
    shots = Path(os.environ.get("ELECTION_WEB_SCREENSHOTS") or root / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    serving = Served(f"http://127.0.0.1:{port}", ws, env, s.database_url, {}, shots, root / "serve.log")
    serving.run_pipeline()
    with Session(get_engine(s.database_url)) as db:
        for role in ("observer", "analyst"):
            _row, serving.tokens[role] = create_token(db, name=f"{role} in the browser", role=role)
    with serving.log.open("wb") as log:
        process = subprocess.Popen(
            [*_command("serve"), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=ws.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited with {process.returncode}:\n{serving.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{serving.url}/api/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"serve did not answer:\n{serving.log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield serving
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _page(browser: Any, viewport: dict[str, int] = DESKTOP) -> Any:
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def _sign_in(page: Any, served: Served, role: str) -> None:
    page.goto(f"{served.url}/")
    assert "/login" in page.url
    assert page.locator("#token").get_attribute("type") == "password"
    page.fill("#token", served.tokens[role])
    page.click("button[type=submit]")
    page.wait_for_selector(".who")
    assert f"{role} in the browser" in page.inner_text(".who")


def _shoot(page: Any, served: Served, name: str) -> None:
    """The page at 1280 px, then at 390 px (a phone), full length."""
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(served.shots / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(200)
    page.screenshot(path=str(served.shots / f"{name}-phone.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, f"{name} is {width} px wide at phone width (tables scroll inside)"
    page.set_viewport_size(DESKTOP)


def _stuffing_alert(served: Served) -> Alert:
    with Session(get_engine(served.database_url)) as db:
        return db.scalars(
            select(Alert).where(
                Alert.constituency_id == CONTRACT_B,
                Alert.type == "votes_exceed_bulletins",
                Alert.severity == "critical",
            )
        ).one()


def test_an_analyst_triages_the_stuffing_alert(browser: Any, served: Served) -> None:
    page = _page(browser)
    page.goto(f"{served.url}/login")
    _shoot(page, served, "01-sign-in")
    _sign_in(page, served, "analyst")
    _shoot(page, served, "02-elections")
    page.click("section[data-election] h2 a")
    page.wait_for_selector("#constituencies")
    page.wait_for_selector("#charts img")
    _shoot(page, served, "03-election")
    page.click("#constituencies a:has-text('District 1')")  # contract B, the stuffing constituency
    page.wait_for_selector("#peer-charts svg")
    assert CONTRACT_B in page.inner_text("main")
    _shoot(page, served, "04-constituency")

    page.goto(f"{served.url}/alerts")
    page.select_option("select[name=severity]", "critical")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**severity=critical**")
    _shoot(page, served, "05-alerts")
    row = page.locator(f"tr[data-constituency='{CONTRACT_B}'][data-rule='votes_exceed_bulletins']")
    row.locator("td:nth-child(2) a").click()
    page.wait_for_selector("#triage")
    alert = _stuffing_alert(served)
    assert alert.id in page.inner_text("#alert-head")
    for tx in (alert.details or {})["evidence_tx_ids"]:
        assert tx in page.inner_text("#evidence")

    page.select_option("#status-select", "investigating")
    page.click("#status-save")
    page.wait_for_selector("p.ok")
    assert page.inner_text("#alert-status") == "investigating"
    note = "3 voters for 1 bulletin <b>in</b> District 1: calling the commission"
    page.fill("#note-text", note)
    page.click("#note-save")
    page.wait_for_selector(f"#notes .text:has-text('{note[:20]}')")
    assert page.inner_text("#notes .text") == note  # shown as text, not as markup
    _shoot(page, served, "06-alert-analyst")

    after = _stuffing_alert(served)
    assert after.status == "investigating"
    assert after.notes[-1]["text"] == note and after.notes[-1]["author"] == "analyst in the browser"
    with Session(get_engine(served.database_url)) as db:
        trail = list(db.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.at)))
    mine = [e for e in trail if e.actor == "analyst in the browser"]
    assert [e.action for e in mine] == ["triage", "note"]
    assert mine[0].changes["status"] == {"from": "active", "to": "investigating"}
    assert mine[1].changes["note"]["to"] == note
    history = page.inner_text("#history")
    assert "analyst in the browser" in history and "investigating" in history
    page.context.close()


def test_an_observer_finds_no_edit_controls(browser: Any, served: Served) -> None:
    page = _page(browser)
    _sign_in(page, served, "observer")
    alert = _stuffing_alert(served)
    page.goto(f"{served.url}/alerts/{alert.id}")
    page.wait_for_selector("#evidence")
    assert page.locator("#triage").count() == 0
    assert page.locator("main form").count() == 0
    assert page.locator("main select, main textarea, main input, main button").count() == 0
    _shoot(page, served, "07-alert-observer")
    page.context.close()


def test_a_new_file_makes_a_new_alert_appear_without_a_reload(browser: Any, served: Served) -> None:
    alerts = _page(browser)
    _sign_in(alerts, served, "observer")
    alerts.goto(f"{served.url}/alerts")
    selector = f"tr[data-constituency='{CONTRACT_A}'][data-rule='votes_exceed_bulletins']"
    assert alerts.locator(selector).count() == 0
    before = alerts.locator("tr.alert-row").count()
    elections = alerts.context.new_page()
    elections.goto(f"{served.url}/")
    assert elections.inner_text("[data-figure=votes_cast]") == "6"
    for page in (alerts, elections):
        page.evaluate("window.__still_the_same_page = true")

    served.workspace.drop(
        A09,
        [
            vote("a10", ms("2024-09-06 09:05:00"), "v5"),
            vote("a11", ms("2024-09-06 09:10:00"), "v6"),
            vote("a12", ms("2024-09-06 09:15:00"), "v7"),
        ],
    )
    served.run_pipeline()

    alerts.wait_for_selector(selector, timeout=LIVE_TIMEOUT_MS)
    assert alerts.locator("tr.alert-row").count() > before
    elections.wait_for_function(
        "document.querySelector('[data-figure=votes_cast]').textContent.trim() === '9'", timeout=LIVE_TIMEOUT_MS
    )
    for page in (alerts, elections):
        assert page.evaluate("window.__still_the_same_page === true"), "the page was reloaded"
    assert "updated" in alerts.inner_text("#live-status")
    # the time of the update stays on the status through the later polls that find nothing new
    for _ in range(2):
        with alerts.expect_response(lambda r: r.url.endswith("/live"), timeout=LIVE_TIMEOUT_MS):
            pass
    alerts.wait_for_timeout(200)
    assert "updated" in alerts.inner_text("#live-status")
    _shoot(alerts, served, "08-alerts-live")
    alerts.context.close()
