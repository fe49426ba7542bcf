"""The triage page through Starlette's TestClient, on a SQLite database filled by the
pipeline's stages: sign-in and out, the cookie, CSRF, roles, escaping, the figures shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from election_pipeline.api.tokens import revoke_tokens
from election_pipeline.db.crud.alert import ALERT_ORDERS
from election_pipeline.db.models import Alert, AlertEvent, ApiToken, Constituency
from election_pipeline.stages.election_metrics import stored_election_metrics
from election_pipeline.web import session as sessions
from election_pipeline.web.routes import SORTS
from election_pipeline_tests.api.conftest import C1, C2, E1
from election_pipeline_tests.web.conftest import Web, hidden

WEB = Path(__file__).resolve().parents[2] / "election_pipeline" / "web"


def figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}"[^>]*>\s*([^<]+?)\s*<', html)
    assert match, f"no figure {name}"
    return match.group(1)


def critical_alert(web: Web) -> Alert:
    with Session(web.engine) as db:
        return db.scalars(select(Alert).where(Alert.constituency_id == C2, Alert.severity == "critical")).one()


def events(web: Web, alert_id: str) -> list[AlertEvent]:
    with Session(web.engine) as db:
        return list(db.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.at)))


# -- signing in ---------------------------------------------------------------------------


def test_pages_need_a_session(web: Web) -> None:
    client = web.new_client()
    for path in ("/", f"/elections/{E1}", f"/constituencies/{C1}", "/alerts", f"/charts/participation/{E1}"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")
    assert client.get("/live").status_code == 401


def test_sign_in_form_and_cookie_flags(web: Web) -> None:
    client = web.new_client()
    form = client.get("/login?next=/alerts")
    assert form.status_code == 200
    assert re.search(r'<input id="token" name="token" type="password"', form.text)
    assert 'name="next" value="/alerts"' in form.text
    response = client.post(
        "/login",
        data={"token": web.tokens["analyst"], "csrf": hidden(form.text, "csrf"), "next": "/alerts"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/alerts"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(sessions.COOKIE + "="))
    flags = [f.strip().lower() for f in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert "max-age=43200" in flags  # ELECTION_SESSION_HOURS, 12 by default
    assert "secure" not in flags  # plain HTTP here; over HTTPS it is Secure (below)
    value = cookie.split(";")[0].split("=", 1)[1].strip('"')
    assert web.tokens["analyst"] not in value  # the token itself is never in the cookie
    page = client.get("/alerts")
    assert page.status_code == 200 and "analyst-person" in page.text


def test_the_cookie_is_secure_over_https(web: Web) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(web.client.app, base_url="https://testserver")
    form = client.get("/login")
    response = client.post(
        "/login", data={"token": web.tokens["observer"], "csrf": hidden(form.text, "csrf")}, follow_redirects=False
    )
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(sessions.COOKIE + "="))
    assert "secure" in [f.strip().lower() for f in cookie.split(";")]


def test_a_wrong_token_is_refused(web: Web) -> None:
    client = web.new_client()
    form = client.get("/login")
    response = client.post(
        "/login", data={"token": "ep_" + "x" * 43, "csrf": hidden(form.text, "csrf")}, follow_redirects=False
    )
    assert response.status_code == 401
    assert "not valid" in response.text
    assert not any(c.startswith(sessions.COOKIE + "=") for c in response.headers.get_list("set-cookie"))
    assert client.get("/", follow_redirects=False).status_code == 303


def test_sign_in_needs_the_forms_csrf_value_and_this_origin(web: Web) -> None:
    client = web.new_client()
    form = client.get("/login")
    token = web.tokens["analyst"]
    bad = client.post("/login", data={"token": token, "csrf": "forged"}, follow_redirects=False)
    assert bad.status_code == 403
    form = client.get("/login")
    elsewhere = client.post(
        "/login",
        data={"token": token, "csrf": hidden(form.text, "csrf")},
        headers={"Origin": "http://evil.example"},
        follow_redirects=False,
    )
    assert elsewhere.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\t/evil.example", "/\\evil.example"])
def test_next_never_leaves_the_site(web: Web, target: str) -> None:
    client = web.new_client()
    form = client.get("/login")
    response = client.post(
        "/login",
        data={"token": web.tokens["observer"], "csrf": hidden(form.text, "csrf"), "next": target},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_sign_out(web: Web) -> None:
    client = web.sign_in("observer")
    page = client.get("/")
    assert client.post("/logout", data={"csrf": "wrong"}, follow_redirects=False).status_code == 403
    assert client.get("/").status_code == 200  # still signed in
    response = client.post("/logout", data={"csrf": hidden(page.text, "csrf")}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_revoking_the_token_ends_its_sessions(fresh_web: Web) -> None:
    client = fresh_web.sign_in("observer")
    assert client.get("/").status_code == 200
    with Session(fresh_web.engine) as db:
        revoke_tokens(db, "observer-person")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_forged_and_expired_cookies_are_refused(web: Web) -> None:
    with Session(web.engine) as db:
        token = db.scalars(select(ApiToken).where(ApiToken.name == "analyst-person")).one()
        value, _ = sessions.make_cookie(token, 1, now=1_000_000)
        assert sessions.read_session(db, value, now=1_000_000 + 10) is not None
        assert sessions.read_session(db, value, now=1_000_000 + 3601) is None  # expired
        token_id, expiry, signature = value.rsplit(".", 2)
        longer = f"{token_id}.{int(expiry) + 10**6}.{signature}"
        assert sessions.read_session(db, longer, now=1_000_000) is None  # the expiry is signed
        assert sessions.read_session(db, f"{token_id}.{expiry}.{'0' * 64}", now=1_000_000) is None
        assert sessions.read_session(db, "garbage", now=1_000_000) is None


# -- the figures ---------------------------------------------------------------------------


def test_the_elections_page_shows_the_stored_figures(web: Web) -> None:
    page = web.sign_in().get("/").text
    m = stored_election_metrics(web.engine, E1)
    assert figure(page, "participation_rate") == "42.86 %"  # 6 / 14 voters
    assert figure(page, "votes_cast") == "6" and figure(page, "bulletins_issued") == "6"
    assert figure(page, "registered_voters") == "14"
    assert figure(page, "issued_not_voted") == "0"
    assert figure(page, "reporting") == f"{m['constituencies_reporting']} / 2"
    assert figure(page, "offline") == str(m["constituencies_offline"])
    assert "1 critical" in page and f"{m['open_alerts_warning']} warning" in page


def test_the_election_page_lists_constituencies_and_the_reports_charts(web: Web) -> None:
    client = web.sign_in()
    page = client.get(f"/elections/{E1}").text
    assert "Riverside" in page and "Hillside" in page
    charts = re.findall(r'<img src="(/charts/[^"]+)"', page)
    assert len(charts) == 5
    image = client.get(charts[0].replace("&amp;", "&"))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    assert client.get(f"/charts/nothing/{E1}").status_code == 404
    assert client.get("/elections/nope").status_code == 404


def test_the_constituency_page_shows_its_figures_hours_charts_and_alerts(web: Web) -> None:
    client = web.sign_in()
    north = client.get(f"/constituencies/{C1}").text
    assert figure(north, "participation_rate") == "30.00 %"
    assert figure(north, "votes_cast") == "3" and figure(north, "bulletins_issued") == "5"
    assert figure(north, "issued_not_voted") == "2" and figure(north, "revote_count") == "1"
    assert figure(north, "rejected_count") == "1"
    # Hour by hour, local (Europe/Moscow, UTC+3) and UTC.
    rows = re.findall(r"<tr>\s*<td>(2024-09-06 \d\d:00)</td>\s*<td>(2024-09-06 \d\d:00:00 UTC)</td>", north)
    assert rows == [("2024-09-06 10:00", "2024-09-06 07:00:00 UTC"), ("2024-09-06 11:00", "2024-09-06 08:00:00 UTC")]
    assert north.count("<svg") == 2 and 'class="band"' in north
    south = client.get(f"/constituencies/{C2}").text
    assert figure(south, "participation_rate") == "75.00 %"
    assert figure(south, "issued_not_voted") == "-2"
    assert 'data-rule="votes_exceed_bulletins"' in south
    assert client.get("/constituencies/nope").status_code == 404


def test_the_alert_list_filters_and_sorts(web: Web) -> None:
    assert set(SORTS) == set(ALERT_ORDERS)  # every sort offered is one the database does
    client = web.sign_in()
    with Session(web.engine) as db:
        every = list(db.scalars(select(Alert)))
    page = client.get("/alerts").text
    assert len(re.findall(r'data-alert-id="', page)) == len(every)
    critical = client.get("/alerts", params={"severity": "critical", "election_id": E1, "sort": "newest"}).text
    assert re.findall(r'data-alert-id="([^"]+)"', critical) == [a.id for a in every if a.severity == "critical"]
    rule = client.get("/alerts", params={"type": "votes_exceed_bulletins", "status": "active"}).text
    assert re.findall(r'data-rule="([^"]+)"', rule) == ["votes_exceed_bulletins"]
    assert 'data-alert-id="' not in client.get("/alerts", params={"status": "resolved"}).text
    assert client.get("/alerts", params={"severity": "dreadful"}).status_code == 422


def test_the_alert_page_shows_evidence_and_history(web: Web) -> None:
    alert = critical_alert(web)
    page = web.sign_in().get(f"/alerts/{alert.id}").text
    assert "<th>threshold</th>" in page and "<th>statistic</th>" in page
    assert all(f"<code>{t}</code>" in page for t in ("W1", "W2", "W3"))
    assert 'id="history"' in page and 'id="evidence"' in page


# -- roles and triage ----------------------------------------------------------------------


def test_an_observer_sees_no_edit_controls_and_may_not_triage(web: Web) -> None:
    alert = critical_alert(web)
    client = web.sign_in("observer")
    page = client.get(f"/alerts/{alert.id}").text
    assert "/triage" not in page and "<textarea" not in page and "<select" not in page
    csrf = hidden(page, "csrf")
    refused = client.post(f"/alerts/{alert.id}/triage", data={"csrf": csrf, "action": "status", "status": "resolved"})
    assert refused.status_code == 403
    assert client.post(f"/alerts/{alert.id}/notes", data={"csrf": csrf, "text": "hello"}).status_code == 403
    assert critical_alert(web).status == "active" and not critical_alert(web).notes


def test_an_analyst_triages_as_the_api_does(fresh_web: Web) -> None:
    alert = critical_alert(fresh_web)
    client = fresh_web.sign_in("analyst")
    page = client.get(f"/alerts/{alert.id}").text
    csrf = hidden(page, "csrf")
    done = client.post(
        f"/alerts/{alert.id}/triage",
        data={"csrf": csrf, "action": "status", "status": "investigating"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    client.post(f"/alerts/{alert.id}/triage", data={"csrf": csrf, "action": "assign", "assigned_to": "Irina"})
    client.post(f"/alerts/{alert.id}/notes", data={"csrf": csrf, "text": "3 voters, 1 bulletin: calling the PEC"})
    client.post(
        f"/alerts/{alert.id}/triage", data={"csrf": csrf, "action": "snooze", "snoozed_until": "2999-01-01T10:00"}
    )
    stored = critical_alert(fresh_web)
    assert stored.status == "snoozed" and stored.assigned_to == "Irina"
    assert str(stored.snoozed_until) == "2999-01-01 10:00:00"
    assert stored.notes[-1]["text"] == "3 voters, 1 bulletin: calling the PEC"
    assert stored.notes[-1]["author"] == "analyst-person"
    trail = events(fresh_web, alert.id)
    assert [(e.actor, e.action) for e in trail] == [
        ("analyst-person", a) for a in ("triage", "triage", "note", "triage")
    ]
    assert trail[0].changes["status"] == {"from": "active", "to": "investigating"}
    # The API reads the same history.
    api = fresh_web.client.get(
        f"/api/alerts/{alert.id}", headers={"Authorization": f"Bearer {fresh_web.tokens['observer']}"}
    ).json()
    assert [h["actor"] for h in api["history"]] == ["analyst-person"] * 4
    shown = client.get(f"/alerts/{alert.id}").text
    assert "calling the PEC" in shown and "Irina" in shown


def test_triage_refuses_a_bad_change_and_changes_nothing(fresh_web: Web) -> None:
    alert = critical_alert(fresh_web)
    client = fresh_web.sign_in("analyst")
    csrf = hidden(client.get(f"/alerts/{alert.id}").text, "csrf")
    past = client.post(
        f"/alerts/{alert.id}/triage", data={"csrf": csrf, "action": "snooze", "snoozed_until": "2001-01-01T00:00"}
    )
    assert past.status_code == 422 and "future" in past.text
    empty = client.post(f"/alerts/{alert.id}/notes", data={"csrf": csrf, "text": "   "})
    assert empty.status_code == 422
    assert events(fresh_web, alert.id) == [] and critical_alert(fresh_web).status == "active"


def test_triage_needs_the_sessions_csrf_token_and_this_origin(fresh_web: Web) -> None:
    alert = critical_alert(fresh_web)
    client = fresh_web.sign_in("analyst")
    csrf = hidden(client.get(f"/alerts/{alert.id}").text, "csrf")
    change = {"action": "status", "status": "resolved"}
    assert client.post(f"/alerts/{alert.id}/triage", data=change).status_code == 403
    assert (
        client.post(
            f"/alerts/{alert.id}/triage", data={**change, "csrf": csrf[:-1] + ("1" if csrf[-1] == "0" else "0")}
        ).status_code
        == 403
    )
    other = client.post(
        f"/alerts/{alert.id}/triage", data={**change, "csrf": csrf}, headers={"Origin": "http://evil.example"}
    )
    assert other.status_code == 403
    referer = client.post(
        f"/alerts/{alert.id}/notes", data={"text": "x", "csrf": csrf}, headers={"Referer": "http://evil.example/a"}
    )
    assert referer.status_code == 403
    # Another session's token does not do either.
    other_csrf = hidden(fresh_web.sign_in("admin").get("/").text, "csrf")
    assert client.post(f"/alerts/{alert.id}/triage", data={**change, "csrf": other_csrf}).status_code == 403
    assert events(fresh_web, alert.id) == [] and critical_alert(fresh_web).status == "active"


# -- escaping ------------------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_everything_from_the_data_is_escaped(fresh_web: Web) -> None:
    alert = critical_alert(fresh_web)
    with Session(fresh_web.engine) as db:
        db.execute(update(Constituency).where(Constituency.id == C2).values(name=HOSTILE, region=HOSTILE))
        db.commit()
    client = fresh_web.sign_in("analyst")
    csrf = hidden(client.get(f"/alerts/{alert.id}").text, "csrf")
    client.post(f"/alerts/{alert.id}/notes", data={"csrf": csrf, "text": HOSTILE})
    client.post(f"/alerts/{alert.id}/triage", data={"csrf": csrf, "action": "assign", "assigned_to": HOSTILE})
    for path in (f"/alerts/{alert.id}", "/alerts", f"/constituencies/{C2}", f"/elections/{E1}"):
        page = client.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;alert(" in page, path


# -- live, static, headers -----------------------------------------------------------------


def test_the_live_version_changes_with_the_data(fresh_web: Web) -> None:
    client = fresh_web.sign_in("analyst")
    before = client.get("/live")
    assert before.status_code == 200 and before.headers["cache-control"] == "no-store"
    assert client.get("/live").json() == before.json()
    alert = critical_alert(fresh_web)
    fresh_web.client.patch(
        f"/api/alerts/{alert.id}",
        json={"status": "investigating"},
        headers={"Authorization": f"Bearer {fresh_web.tokens['analyst']}"},
    )
    assert client.get("/live").json() != before.json()
    page = client.get("/alerts").text
    assert f'data-version="{client.get("/live").json()["version"]}"' in page


def test_pages_carry_a_strict_policy_and_fetch_nothing_from_elsewhere(web: Web) -> None:
    client = web.sign_in()
    page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/app.css").status_code == 200
    for path in [*WEB.glob("templates/*.html"), *WEB.glob("static/*")]:
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path


@pytest.mark.parametrize("path", ["/", "/alerts", f"/constituencies/{C1}", f"/elections/{E1}"])
def test_every_page_has_the_phone_viewport(web: Web, path: str) -> None:
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in web.sign_in().get(path).text
