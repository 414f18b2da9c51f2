"""GET /dashboard over HTTP: sign-in, the session cookie, signed links from /sales link, and the page's data."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.answers.snapshots import HealthSnapshot, SalesSnapshot
from bot.money import format_money
from bot.periods import parse_period
from bot.web.session import Purpose, sign, sign_link, sign_session, token_matches, verify
from bot.web.signin import COOKIE, FailureLimiter
from bot.web.view import dashboard_view
from tests.conftest import Bot, FakeClock, make_settings, paid_checkout, start_bot
from tests.fakes import FakeSlack

NY = ZoneInfo("America/New_York")
# Sunday 8 March 2026 is a DST day in New York (02:00 EST → 03:00 EDT): the hourly chart skips an hour.
NOW = dt.datetime(2026, 3, 8, 15, 30, tzinfo=NY).astimezone(dt.UTC)
TOKEN = "mon-token-123-very-secret"
PUBLIC = "https://sales.example.com"


@pytest.fixture
def clock() -> FakeClock:
    """The store's clock, moved by hand."""
    return FakeClock(NOW)


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack, clock: FakeClock) -> AsyncIterator[Bot]:
    """A New York store behind a proxy on 127.0.0.1, with a dashboard token and sales today (one in euros)
    and the day before."""
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         MONITORING_TOKEN=TOKEN, PUBLIC_URL=PUBLIC, TRUSTED_PROXIES="127.0.0.1/32") as bot:
        local = lambda *a: dt.datetime(*a, tzinfo=NY).astimezone(dt.UTC)  # noqa: E731  # a one-line local helper reads best here
        for evt in (paid_checkout(1, local(2026, 3, 7, 23, 30), amount=1000),
                    paid_checkout(2, local(2026, 3, 8, 0, 30), amount=2000, email="a@example.com"),
                    paid_checkout(3, local(2026, 3, 8, 3, 15), amount=3000, email="a@example.com"),
                    paid_checkout(4, local(2026, 3, 8, 15, 0), amount=4000, email="b@example.com"),
                    paid_checkout(5, local(2026, 3, 8, 15, 10), amount=500, currency="eur")):
            assert (await bot.stripe(evt)).status == 200
        yield bot


def session_cookie(resp: Any) -> Any:
    """The Set-Cookie morsel for the session cookie."""
    jar: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar[COOKIE]


async def sign_in(bot: Bot, token: str = TOKEN, **headers: str) -> Any:
    """POST the sign-in form; return the response (redirects not followed)."""
    return await bot.client.post("/dashboard/login", data={"token": token}, allow_redirects=False, headers=headers)


async def test_page_is_locked_down_and_never_holds_the_token(store: Bot) -> None:
    """The page has a strict CSP, no inline script, no external resource, and no token anywhere in it."""
    resp = await store.client.get("/dashboard")
    assert resp.status == 200
    page = await resp.text()
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["Referrer-Policy"] == "no-referrer" and resp.headers["Cache-Control"] == "no-store"
    assert TOKEN not in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "inline script would need 'unsafe-inline'"
    assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", page), "external resource"
    assert " style=" not in page, "inline styles would need 'unsafe-inline'"
    for url in re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', page):
        asset = await store.client.get(url)
        assert asset.status == 200 and "immutable" in asset.headers["Cache-Control"]
        body = await asset.text()
        assert "http://" not in body.replace("http://www.w3.org/2000/svg", "") and "https://" not in body
    assert (await store.client.get("/dashboard/static/../app.py")).status == 404


async def test_data_needs_a_session_and_the_api_keeps_its_bearer_token(store: Bot) -> None:
    """No cookie: 401 from /dashboard/data; the cookie does not open /api/monitoring, the bearer token still does."""
    assert (await store.client.get("/dashboard/data")).status == 401
    resp = await sign_in(store)
    cookie = session_cookie(resp).value
    api = await store.client.get("/api/monitoring/sales", cookies={COOKIE: cookie})
    assert api.status == 401
    api = await store.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
    assert api.status == 200


async def test_sign_in_sets_a_strict_httponly_cookie_that_is_not_the_token(store: Bot) -> None:
    """A right token: 303 to /dashboard with an HttpOnly, SameSite=Strict session limited to /dashboard."""
    resp = await sign_in(store)
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard"
    morsel = session_cookie(resp)
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/dashboard"
    assert morsel["secure"]  # PUBLIC_URL is https: never sent back over plain http (tests/test_dashboard_forms.py)
    assert int(morsel["max-age"]) == 30 * 86400
    assert TOKEN not in morsel.value and morsel.value not in TOKEN
    behind_tls = session_cookie(await sign_in(store, **{"X-Forwarded-Proto": "https"}))
    assert behind_tls["secure"]
    data = await store.client.get("/dashboard/data", cookies={COOKIE: morsel.value})
    assert data.status == 200 and data.headers["Cache-Control"] == "no-store"


async def test_wrong_tokens_are_refused_then_rate_limited_per_address(store: Bot) -> None:
    """Five wrong tokens from one address: 401 each, then 429 with Retry-After even for the right one."""
    for _ in range(5):
        resp = await sign_in(store, "nope", **{"X-Forwarded-For": "203.0.113.7"})
        assert resp.status == 401 and "That token is not right." in await resp.text()
        assert "Set-Cookie" not in resp.headers
    resp = await sign_in(store, **{"X-Forwarded-For": "203.0.113.7"})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert "Too many wrong tokens" in await resp.text()
    other = await sign_in(store, **{"X-Forwarded-For": "198.51.100.1"})  # another phone behind the proxy
    assert other.status == 303


async def test_dashboard_figures_match_the_monitoring_api(store: Bot) -> None:
    """The data the page shows is the JSON API's: same counts, same amounts, formatted per currency."""
    cookie = session_cookie(await sign_in(store)).value
    body = await (await store.client.get("/dashboard/data", cookies={COOKIE: cookie})).json()
    api = await (await store.client.get("/api/monitoring/sales",
                                        headers={"Authorization": f"Bearer {TOKEN}"})).json()
    assert body["sales"] == api
    f = body["view"]["figures"]
    assert f["today_orders"] == str(api["today"]["order_count"]) == "4"
    assert f["today_revenue"] == "$90.00 + €5.00"
    assert format_money(api["today"]["revenue"], api["today"]["currency"]) in f["today_revenue"]
    assert f["last_hour_orders"] == str(api["lastHour"]["order_count"]) == "2"
    assert f["today_customers"] == f"{api['today']['unique_customers']} customers" == "3 customers"
    assert f["pending"] == str(api["pendingCheckouts"])
    assert f["last_order"].startswith("15:10")
    assert body["view"]["title"] == "Today (Sun 08 Mar)"


async def test_hourly_chart_follows_local_hours_across_the_dst_jump(store: Bot) -> None:
    """24 h back from 15:30 EDT is 14:30 EST the day before: 25 hour bars, none labelled 02:00 (skipped)."""
    cookie = session_cookie(await sign_in(store)).value
    chart = (await (await store.client.get("/dashboard/data", cookies={COOKIE: cookie})).json())["view"]["chart"]
    labels = [b["label"] for b in chart["bars"]]
    assert labels[0] == "14:00" and labels[-1] == "15:00" and "02:00" not in labels
    assert len(labels) == 25  # 14:00 (partly) … 01:00 EST, then 03:00 … 15:00 EDT: 24 real hours and a part
    by_label = {b["label"]: b for b in chart["bars"] if b["revenue"]}
    assert chart["currency"] == "USD" and by_label["15:00"]["revenue"] == 4000
    assert {"23:00", "00:00", "03:00", "15:00"} == set(by_label)
    assert chart["note"] == "also €5.00 in other currencies, not charted"


async def test_sessions_expire_and_die_with_the_token(store: Bot, clock: FakeClock) -> None:
    """A session lasts 30 days; one signed with another token is refused."""
    cookie = session_cookie(await sign_in(store)).value
    clock.advance(days=29)
    assert (await store.client.get("/dashboard/data", cookies={COOKIE: cookie})).status == 200
    clock.advance(days=2)
    assert (await store.client.get("/dashboard/data", cookies={COOKIE: cookie})).status == 401
    forged = sign_session("old-token", now=clock.now)
    assert (await store.client.get("/dashboard/data", cookies={COOKIE: forged})).status == 401


async def test_sales_link_signs_a_phone_in_for_a_limited_time(store: Bot, clock: FakeClock) -> None:
    """/sales link answers privately with a signed URL; opening it sets a day's session and redirects."""
    body = await store.command("/sales", "link")
    assert body["response_type"] == "ephemeral"
    assert TOKEN not in str(body)
    match = re.search(re.escape(PUBLIC) + r"(/dashboard/link/[A-Za-z0-9_.\-]+)", str(body["blocks"]))
    assert match, body
    assert PUBLIC not in body["text"]  # no URL in the notification fallback
    resp = await store.client.get(match.group(1), allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard"
    morsel = session_cookie(resp)
    assert int(morsel["max-age"]) == 24 * 3600 and morsel["httponly"]
    assert (await store.client.get("/dashboard/data", cookies={COOKIE: morsel.value})).status == 200
    clock.advance(hours=25)
    assert (await store.client.get("/dashboard/data", cookies={COOKIE: morsel.value})).status == 401
    clock.advance(minutes=-60 * 25 + 16)  # 16 minutes after it was given: the link itself has expired
    expired = await store.client.get(match.group(1), allow_redirects=False)
    assert expired.status == 401 and "expired" in await expired.text()
    assert "Set-Cookie" not in expired.headers


@pytest.mark.parametrize(("proxies", "headers", "base"), [
    (None, {"Host": "sales.example:8443"}, "http://sales.example:8443"),
    (None, {"Host": "sales.example", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
     "http://sales.example"),  # no trusted proxy: its headers are not believed
    ("127.0.0.1/32", {"Host": "10.0.0.5:3000", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "sales.example"},
     "https://sales.example"),
])
async def test_without_public_url_the_link_goes_where_the_command_was_sent(
        dsn: str, fake_slack: FakeSlack, proxies: str | None, headers: dict[str, str], base: str) -> None:
    """PUBLIC_URL unset: the link is on the scheme and host Slack sent the command to (a trusted proxy's
    X-Forwarded-Proto and X-Forwarded-Host believed), not on the listen address."""
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN, TRUSTED_PROXIES=proxies) as bot:
        resp = await bot.slack({"command": "/sales", "text": "link", "user_id": "U1", "channel_id": "D1",
                                "team_id": "T0", "trigger_id": "1.2"}, headers=headers)
        assert resp.status == 200
        blocks = str((await resp.json())["blocks"])
        assert f"{base}/dashboard/link/" in blocks, blocks
        assert "127.0.0.1" not in blocks


async def test_a_reader_removed_from_the_readers_is_signed_out_of_the_dashboard_at_once(
        dsn: str, fake_slack: FakeSlack) -> None:
    """A /sales link names who it was given to, and so does the session it starts: each /dashboard/data asks the
    access policy again, so a reader removed from SLASH_COMMAND_ALLOWED_USERS (here from Slack's Settings view)
    is out before the day's session ends. A session from the typed token stays: its holder holds the token."""
    from queries.settings import Override

    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN, SLASH_COMMAND_ALLOWED_USERS="UBOSS,UREADER") as bot:
        body = await bot.command("/sales", "link", user_id="UREADER", channel_id="D1")
        link = re.search(r"(/dashboard/link/[A-Za-z0-9_.\-]+)", str(body["blocks"]))
        assert link, body
        opened = await bot.client.get(link.group(1), allow_redirects=False)
        reader = {COOKIE: session_cookie(opened).value}
        typed = {COOKIE: session_cookie(await sign_in(bot)).value}
        assert (await bot.client.get("/dashboard/data", cookies=reader)).status == 200
        bot.deps.live.apply([Override("SLASH_COMMAND_ALLOWED_USERS", ["UBOSS"], "UBOSS", dt.datetime.now(dt.UTC))])
        refused = await bot.client.get("/dashboard/data", cookies=reader)
        assert refused.status == 401 and "no longer allowed" in await refused.text()
        assert (await bot.client.get("/dashboard/data", cookies=typed)).status == 200


async def test_link_and_session_values_are_not_interchangeable(store: Bot, clock: FakeClock) -> None:
    """A link value is not a session, a session value is not a link, and a tampered link is refused."""
    link_value = sign_link(TOKEN, now=clock.now)
    assert (await store.client.get("/dashboard/data", cookies={COOKIE: link_value})).status == 401
    session_value = sign_session(TOKEN, now=clock.now)
    resp = await store.client.get(f"/dashboard/link/{session_value}", allow_redirects=False)
    assert resp.status == 401
    tampered = link_value[:-2] + ("AA" if not link_value.endswith("AA") else "BB")
    assert (await store.client.get(f"/dashboard/link/{tampered}", allow_redirects=False)).status == 401


async def test_sign_out_forgets_the_cookie(store: Bot) -> None:
    """POST /dashboard/logout expires the cookie in the browser."""
    resp = await store.client.post("/dashboard/logout", allow_redirects=False)
    assert resp.status == 303
    assert session_cookie(resp)["max-age"] == "0"


async def test_link_is_never_shared_and_needs_a_token(dsn: str, fake_slack: FakeSlack) -> None:
    """Without MONITORING_TOKEN the dashboard answers 503 and /sales link says it is off."""
    async with start_bot(dsn, fake_slack) as bot:
        body = await bot.command("/sales", "link")
        assert "MONITORING_TOKEN" in body["text"] and "/dashboard/link/" not in str(body)
        resp = await bot.client.get("/dashboard")
        assert resp.status == 503 and "set MONITORING_TOKEN" in await resp.text()
        assert (await bot.client.get("/dashboard/data")).status == 503
        assert (await sign_in(bot)).status == 503


async def test_share_button_cannot_post_a_sign_in_link(store: Bot) -> None:
    """The answer used by Share in channel refuses `link`: sign-in links are only sent privately."""
    from bot.answers.commands import answer

    msg = await answer(store.deps, command="/sales", text="link", user_id="U1", channel_id="C1", shareable=False)
    assert "/dashboard/link/" not in str(msg.blocks) and "privately" in msg.text


def test_signed_values_check_purpose_expiry_and_tampering() -> None:
    """verify() accepts only its own purpose, before expiry, with the right key, and nothing malformed."""
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    value = sign("t", Purpose.LINK, expires_at=now + dt.timedelta(minutes=15), nonce="abc")
    assert verify("t", Purpose.LINK, value, now=now) is not None
    assert verify("t", Purpose.SESSION, value, now=now) is None
    assert verify("u", Purpose.LINK, value, now=now) is None
    assert verify("t", Purpose.LINK, value, now=now + dt.timedelta(minutes=15)) is None
    expiry, nonce, mac = value.split(".")
    assert verify("t", Purpose.LINK, f"{int(expiry) + 3600}.{nonce}.{mac}", now=now) is None
    for junk in ("", "a.b", "x" * 500, "1.2.3.4", "1.2.3.4.5", "1..3", "é.b.c", None):
        assert verify("t", Purpose.LINK, junk, now=now) is None
    # A value given to a Slack user names them under the MAC: another name, or none, is refused.
    given = sign("t", Purpose.LINK, expires_at=now + dt.timedelta(minutes=15), nonce="abc", subject="UREADER")
    found = verify("t", Purpose.LINK, given, now=now)
    assert found is not None and found.subject == "UREADER" and found.nonce == "abc"
    expiry, nonce, subject, mac = given.split(".")
    assert subject == "UREADER"
    assert verify("t", Purpose.LINK, f"{expiry}.{nonce}.UBOSS.{mac}", now=now) is None
    assert verify("t", Purpose.LINK, f"{expiry}.{nonce}.{mac}", now=now) is None
    plain = verify("t", Purpose.LINK, value, now=now)
    assert plain is not None and plain.subject is None
    assert token_matches("secret", "secret") and not token_matches("secre", "secret")


def test_failure_limiter_slides_its_window() -> None:
    """Failures older than the window no longer count; success clears an address."""
    t = [0.0]
    limiter = FailureLimiter(limit=2, window=60, clock=lambda: t[0])
    assert limiter.attempt("a") == 0 and limiter.attempt("a") == 0
    assert limiter.attempt("a") == 61 and limiter.retry_after("a") == 61 and limiter.retry_after("b") == 0
    t[0] = 30
    assert 0 < limiter.retry_after("a") <= 31
    t[0] = 61
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    limiter.succeeded("a")
    limiter.failed("a")
    assert limiter.retry_after("a") == 0


async def test_cross_site_form_posts_are_refused(store: Bot) -> None:
    """A page on another site cannot post the sign-in form (or sign people out): Fetch Metadata says cross-site."""
    resp = await sign_in(store, **{"Sec-Fetch-Site": "cross-site"})
    assert resp.status == 403 and "Set-Cookie" not in resp.headers
    logout = await store.client.post("/dashboard/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert logout.status == 403
    assert (await sign_in(store, **{"Sec-Fetch-Site": "same-origin"})).status == 303


def test_links_point_at_public_url_or_the_listen_address() -> None:
    """PUBLIC_URL wins; without it the link uses HOST:PORT (0.0.0.0 becomes localhost)."""
    assert make_settings(PUBLIC_URL="https://bot.example.com/").public_base_url == "https://bot.example.com"
    assert make_settings(HOST="0.0.0.0", PORT="8080").public_base_url == "http://localhost:8080"
    assert make_settings().public_base_url == "http://127.0.0.1:3000"
    with pytest.raises(ValueError, match="must be an http"):
        make_settings(PUBLIC_URL="bot.example.com")


def test_view_says_what_is_unknown_when_the_database_is_down() -> None:
    """Nothing arrived: every figure is "—", no chart, alerts unknown, the database shown as down."""
    period = parse_period("", now=NOW, tz=NY)
    nothing = SalesSnapshot(period=period, now=NOW, last_hour=None, last_order_at=None, totals=None, previous=None,
                            customers=None, refunds=None, trend=None, pending_checkouts=None, conversion=None,
                            missing=("last hour", "last order", "totals", "pending checkouts", "conversion"))
    health = HealthSnapshot(now=NOW, database_ok=False, database_rtt_ms=None, last_webhook_at=None,
                            last_order_at=None, backlog=None, delivery_errors=None, in_business_hours=True,
                            mode="http", version="t", started_at=NOW, site_url=None, missing=("database", "alerts"))
    view = dashboard_view(nothing, None, health, tz=NY)
    json.dumps(view)
    assert set(view["figures"].values()) <= {"—", ""}
    assert view["chart"] is None and view["alerts"] is None and view["status"] == "degraded"
    assert view["health"][0] == {"name": "Database", "level": "bad", "text": "unreachable or too slow"}
    assert "database" not in view["missing"] and "totals" in view["missing"]
