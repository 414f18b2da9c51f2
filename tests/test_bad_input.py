"""Bad input on every route — no auth, wrong auth, replays, huge, mistyped, invalid UTF-8, deep, SQL-looking —
gets a clear 4xx (never a 5xx) and changes nothing; parsers and settings never crash on anything."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.config import SettingsError, load_settings
from bot.periods import UnknownPeriod, parse_period
from tests.conftest import SLACK_SIGNING_SECRET, STRIPE_SECRET, Bot, start_bot
from tests.fakes import FakeSlack, slack_signature, stripe_signature
from tests.reference import stripe_fixture

TOKEN = "monitoring-secret-token-long-enough"
INTAKE = "intake-secret-token-long-enough"
SQLISH = "'; DROP TABLE orders; -- \" OR 1=1; SELECT pg_sleep(10); --"
HUGE = b'{"pad": "' + b"x" * (1024 * 1024 + 10) + b'"}'
DEEP = b"[" * 50_000 + b"]" * 50_000
BAD_UTF8 = b'{"id": "evt_\xff\xfe", "type": "checkout.session.completed"}'

ROUTES = [("POST", "/webhooks/stripe"), ("POST", "/slack/events"), ("POST", "/webhooks/events"),
          ("GET", "/api/monitoring/sales"), ("GET", "/api/monitoring/errors"), ("GET", "/api/monitoring/health"),
          ("GET", "/metrics")]


@pytest.fixture
async def guarded(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """A bot with every token configured."""
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN, INTAKE_TOKEN=INTAKE) as bot:
        yield bot


async def untouched(bot: Bot) -> None:
    """Nothing was stored by the bad requests."""
    for table in ("webhook_logs", "orders", "outbox", "app_events"):
        assert await bot.deps.pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic " + TOKEN, "Bearer", TOKEN])
async def test_no_or_wrong_auth_is_refused(guarded: Bot, method: str, path: str, auth: str | None) -> None:
    """Every protected route refuses a missing or wrong credential with 400/401 and stores nothing."""
    headers = {"Authorization": auth} if auth else {}
    resp = await guarded.client.request(method, path, data=b'{"type": "error"}', headers=headers)
    assert resp.status in (400, 401), (path, resp.status)
    await untouched(guarded)


@pytest.mark.parametrize("body", [HUGE, DEEP, BAD_UTF8, b"\x00\x01\x02", b"", b"{}", b"null", b"[1,2]",
                                  b'{"id": "x", "type": 5, "data": {"object": {}}}'])
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/x-www-form-urlencoded"])
async def test_stripe_route_survives_any_signed_body(guarded: Bot, body: bytes, content_type: str) -> None:
    """Validly signed garbage of any size, shape, encoding or content type gets 400 or 413, never 5xx."""
    headers = {"Stripe-Signature": stripe_signature(body, STRIPE_SECRET), "Content-Type": content_type}
    resp = await guarded.client.post("/webhooks/stripe", data=body, headers=headers)
    assert resp.status in (400, 413), resp.status
    await untouched(guarded)


@pytest.mark.parametrize(("body", "why"), [
    (b'{"id": "evt_1", ', "line 1 column 17"),
    (b'{"id": "evt_1", "amount": NaN}', "NaN is not valid JSON"),
    (b'{"id": "evt_\\u0000"}', "NUL character"),
    (DEEP, "nested too deeply"),
])
async def test_stripe_route_says_why_a_body_is_not_json(guarded: Bot, body: bytes, why: str) -> None:
    """A signed body that is not storable JSON is refused with where or why, not only "not valid JSON"."""
    headers = {"Stripe-Signature": stripe_signature(body, STRIPE_SECRET), "Content-Type": "application/json"}
    resp = await guarded.client.post("/webhooks/stripe", data=body, headers=headers)
    error = (await resp.json())["error"]
    assert resp.status == 400 and error.startswith("malformed event: body is not valid JSON: ") and why in error, error
    await untouched(guarded)


async def test_replayed_stripe_event_outside_the_window_is_refused(guarded: Bot) -> None:
    """A correctly signed event whose signature is 10 minutes old is a replay: 400, nothing stored."""
    body = json.dumps(stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")).encode()
    old = stripe_signature(body, STRIPE_SECRET, timestamp=int(time.time()) - 600)
    resp = await guarded.client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": old})
    assert resp.status == 400 and "tolerance" in (await resp.json())["error"].lower()
    await untouched(guarded)


@pytest.mark.parametrize("skew", [-600, 600])
async def test_replayed_slack_request_outside_the_window_is_refused(guarded: Bot, skew: int) -> None:
    """A correctly signed slash command from 10 minutes ago (or ahead) is refused with 401."""
    body = b"command=%2Fsales&text=&user_id=U1&channel_id=C1&team_id=T1"
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               **slack_signature(body, SLACK_SIGNING_SECRET, timestamp=int(time.time()) + skew)}
    resp = await guarded.client.post("/slack/events", data=body, headers=headers)
    assert resp.status == 401


@pytest.mark.parametrize("body", [HUGE, DEEP, BAD_UTF8, b"payload=%7Bnot-json", b"payload=" + b"%5B" * 5000])
async def test_slack_route_survives_any_signed_body(guarded: Bot, body: bytes) -> None:
    """Signed nonsense at /slack/events gets a 4xx (or Bolt's empty 200/404), never a 5xx."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_signature(body, SLACK_SIGNING_SECRET)}
    resp = await guarded.client.post("/slack/events", data=body, headers=headers)
    assert resp.status < 500, resp.status


@pytest.mark.parametrize("body", [HUGE, DEEP, BAD_UTF8, b'{"type": "error", "message": "' + b"\\ud800" + b'"}'])
async def test_events_route_survives_any_body(guarded: Bot, body: bytes) -> None:
    """The store's intake answers 4xx to oversized, deep, invalid UTF-8 or unpaired-surrogate bodies."""
    resp = await guarded.client.post("/webhooks/events", data=body, headers={
        "Authorization": f"Bearer {INTAKE}", "Content-Type": "application/json"})
    assert 400 <= resp.status < 500, resp.status
    await untouched(guarded)


async def test_sql_looking_strings_in_every_stripe_field_are_just_text(guarded: Bot) -> None:
    """SQL in the product, customer, affiliate, metadata and ids is stored verbatim and escaped in Slack."""
    evt = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    evt["id"] = f"evt_{SQLISH}"
    obj = evt["data"]["object"]
    obj.update(id=f"cs_{SQLISH}", payment_intent=f"pi_{SQLISH}", customer_email=SQLISH,
               customer_details={"email": SQLISH, "name": SQLISH},
               metadata={"productName": SQLISH, "affiliateId": SQLISH + "<!channel>", SQLISH: SQLISH})
    resp = await guarded.stripe(evt)
    assert resp.status == 200
    row = await guarded.deps.pool.fetchrow("SELECT id, product_name, affiliate_id, customer_email FROM orders")
    assert row["id"] == f"pi_{SQLISH}" and row["product_name"] == SQLISH and row["customer_email"] == SQLISH
    await guarded.drain()
    posted = json.dumps(guarded.slack_api.posted()[0])
    assert "<!channel>" not in posted and "&lt;!channel&gt;" in posted
    assert await guarded.deps.pool.fetchval("SELECT count(*) FROM orders") == 1  # the table is still there


@given(st.text(max_size=40))
def test_any_period_argument_parses_or_is_unknown(arg: str) -> None:
    """parse_period accepts the documented periods (any case, spaces) and refuses everything else cleanly."""
    now = dt.datetime(2026, 11, 1, 6, 30, tzinfo=dt.UTC)  # the US fall-back day
    try:
        period = parse_period(arg, now=now, tz=ZoneInfo("America/New_York"))
    except UnknownPeriod as exc:
        assert "unknown period" in str(exc)
    else:
        assert period.key in ("today", "1h", "24h", "yesterday", "7d", "30d")
        assert period.start < period.end <= now or period.key == "yesterday"


SETTING_NAMES = ["PORT", "STORE_TIMEZONE", "BUSINESS_HOURS", "MORNING_REPORT_AT", "SLACK_API_URL",
                 "ALERT_CHECK_INTERVAL_SECONDS", "SLACK_BOT_TOKEN", "STRIPE_WEBHOOK_SECRET", "SITE_URL",
                 "SLASH_COMMAND_ALLOWED_USERS", "SLACK_APP_TOKEN", "DATABASE_URL"]


@hsettings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(SETTING_NAMES),
                       st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
                               max_size=30), max_size=4))
def test_any_environment_is_accepted_or_refused_in_one_line(env: dict[str, Any]) -> None:
    """Arbitrary values for the settings give Settings or a one-line SettingsError — never another exception."""
    try:
        load_settings(_env_file=None, **env)
    except SettingsError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(("invalid setting", "invalid configuration"))
