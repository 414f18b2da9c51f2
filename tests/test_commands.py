"""/sales, /errors, /health through Bolt's real dispatcher with signed requests, and the monitoring JSON."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.answers.gather import API_BUDGET
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack
from tests.reference import stripe_fixture

NY = ZoneInfo("America/New_York")
# Sunday 8 March 2026 is a DST day in New York: 02:00 EST jumps to 03:00 EDT.
NOW = dt.datetime(2026, 3, 8, 15, 30, tzinfo=NY).astimezone(dt.UTC)
TOKEN = "mon-token-123-long-enough"


def sale(n: int, at: dt.datetime, *, amount: int = 3000, currency: str = "usd",
         email: str = "buyer@example.com") -> dict[str, Any]:
    """A paid checkout event for payment n that happened at `at`."""
    evt = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    evt["id"], evt["created"] = f"evt_{n}", int(at.timestamp())
    evt["data"]["object"].update(id=f"cs_{n}", payment_intent=f"pi_{n}", amount_total=amount, currency=currency,
                                 customer_details={"email": email}, created=int(at.timestamp()) - 60)
    return evt


def text_of(body: dict[str, Any]) -> str:
    """Everything a person would read in an answer."""
    return json.dumps(body.get("blocks", []), ensure_ascii=False) + body.get("text", "")


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """A New York store on its DST day with sales either side of local midnight and a week earlier."""
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, STORE_TIMEZONE="America/New_York",
                         MONITORING_TOKEN=TOKEN) as bot:
        local = lambda *a: dt.datetime(*a, tzinfo=NY).astimezone(dt.UTC)  # noqa: E731  # a one-line local helper reads best here
        events = [
            sale(1, local(2026, 3, 7, 23, 30), amount=1000),  # yesterday, 30 min before local midnight
            sale(2, local(2026, 3, 8, 0, 30), amount=2000, email="a@example.com"),  # today
            sale(3, local(2026, 3, 8, 3, 15), amount=3000, email="a@example.com"),  # just after the DST jump
            sale(4, local(2026, 3, 8, 15, 0), amount=4000, email="b@example.com"),  # in the last hour
            sale(5, local(2026, 3, 8, 15, 10), amount=500, currency="eur", email="c@example.com"),
            sale(6, local(2026, 3, 1, 10, 0), amount=7000),  # last Sunday, same window
        ]
        for evt in events:
            assert (await bot.stripe(evt)).status == 200
        yield bot


async def test_sales_today_counts_by_store_day_across_midnight_and_dst(store: Bot) -> None:
    """Today in New York holds the three USD sales after local midnight and the EUR one, separately."""
    body = await store.command("/sales")
    assert body["response_type"] == "ephemeral"
    assert_valid_message(body)
    text = text_of(body)
    assert "Today (Sun 08 Mar)" in text
    assert "*USD* 3 orders · $90.00" in text  # 2000 + 3000 + 4000, not the 23:30 sale of yesterday
    assert "*EUR* 1 order · €5.00" in text  # never summed with dollars, and one is "1 order"
    assert "*Customers:*\\n3" in text
    assert "1 orders" not in text


async def test_sales_yesterday_and_last_hour(store: Bot) -> None:
    """'yesterday' is the previous local day; the last hour holds the two most recent sales."""
    text = text_of(await store.command("/sales", "yesterday"))
    assert "Yesterday (Sat 07 Mar)" in text and "$10.00" in text
    last_hour = text_of(await store.command("/sales", "1h"))
    assert "2 orders · $40.00 + €5.00" in last_hour or "2 orders · €5.00 + $40.00" in last_hour
    assert "15:10 (20 min ago)" in last_hour


async def test_sales_for_a_date_is_that_local_day(store: Bot) -> None:
    """A date is that calendar day in the store's zone: 2026-03-07 holds only the 23:30 sale; a future date, one
    before 1970 (year 1's first week has no week earlier to compare with) and a malformed one get the usage text."""
    text = text_of(await store.command("/sales", "2026-03-07"))
    assert "Sat 07 Mar 2026" in text and "$10.00" in text and "$90.00" not in text
    assert "Sun 08 Mar 2026" in text_of(await store.command("/sales", "2026-03-08"))  # today, until now
    for bad in ("2026-03-09", "2026-3-7", "2026-02-30", "0001-01-01", "0001-01-05", "1969-12-31"):
        assert "usage" in (await store.command("/sales", bad))["text"], bad
        assert "usage" in (await store.command("/errors", bad))["text"], bad


async def test_week_over_week_change_and_trend(store: Bot) -> None:
    """Today's dollars compare with the same window last Sunday and the hourly trend is a sparkline."""
    text = text_of(await store.command("/sales"))
    assert "▲ 29%" in text  # $90.00 against $70.00 a week earlier
    spark = re.search(r"Trend\* \(hourly, orders\)\\n`([▁▂▃▄▅▆▇█]+)`", text)
    assert spark is not None
    # 00:00-15:30 on the DST day is 15 local hours (02:00-03:00 does not exist); 15:00 is the busiest.
    assert len(spark.group(1)) == 15 and spark.group(1)[-1] == "█"


@pytest.mark.parametrize("period", ["", "1h", "24h", "yesterday", "7d", "30d", "  7D  ", "2026-03-01"])
async def test_every_period_answers_a_valid_message(store: Bot, period: str) -> None:
    """Each documented period answers with a schema-valid Block Kit message and a Share button."""
    body = await store.command("/sales", period)
    assert_valid_message(body)
    assert "share_in_channel" in text_of(body)


@pytest.mark.parametrize(("command", "arg"), [("/sales", "help"), ("/errors", "help"), ("/health", "help"),
                                              ("/sales", "tomorrow"), ("/errors", "bogus"), ("/health", "x")])
async def test_help_and_unknown_arguments_get_the_usage_text(store: Bot, command: str, arg: str) -> None:
    """help prints the usage; an unknown argument says so and prints the usage, ephemerally."""
    body = await store.command(command, arg)
    assert body["response_type"] == "ephemeral"
    assert_valid_message(body)
    text = text_of(body)
    assert f"*{command}*" in text
    assert ("I don't know" in text) == (arg != "help")


async def test_errors_command_shows_failures_and_webhook_errors(store: Bot) -> None:
    """Payment failures and failed webhooks of the last hour appear in /errors with their reason."""
    failed = stripe_fixture("stripe-ruby-mock/payment_intent.payment_failed.json")
    failed["created"] = int((NOW - dt.timedelta(minutes=5)).timestamp())
    await store.stripe(failed)
    await store.deps.pool.execute(
        "INSERT INTO webhook_logs (event_id, event_type, status, last_error, payload, updated_at)"
        " VALUES ('evt_bad', 'invoice.paid', 'error', 'KeyError: lines', '{}', $1)", NOW - dt.timedelta(minutes=3))
    body = await store.command("/errors")
    assert_valid_message(body)
    text = text_of(body)
    assert "*Payment failures:*\\n1" in text and "Your card was declined." in text
    assert "`invoice.paid` × 1" in text and "KeyError: lines" in text


async def test_errors_webhook_share_counts_webhooks_only(store: Bot) -> None:
    """"Webhook errors: 1 of 2 (50.0%)" whatever the store's app reported: its errors have their own field (they
    have no total to be a share of), where adding them to the webhooks' errors read "11 of 2 (550.0%)"."""
    pool, at = store.deps.pool, NOW - dt.timedelta(minutes=3)
    await pool.execute(
        "INSERT INTO webhook_logs (event_id, event_type, status, last_error, payload, created_at, updated_at)"
        " VALUES ('evt_bad', 'invoice.paid', 'error', 'KeyError', '{}', $1, $1),"
        "        ('evt_ok', 'invoice.paid', 'processed', NULL, '{}', $1, $1)", at)
    await pool.executemany(
        "INSERT INTO app_events (source, event_id, kind, message, occurred_at, received_at)"
        " VALUES ('checkout-api', $1, 'error', 'timeout', $2, $2)", [(f"app_err_{i}", at) for i in range(10)])
    body = await store.command("/errors")
    text = text_of(body)
    assert body["text"] == "🚨 Errors · Last hour: 1 webhook errors, 10 app errors, 0 payment failures"
    assert "*Webhook errors:*\\n1 of 2 (50.0%)" in text, text
    assert "*App errors:*\\n10" in text


async def test_health_command_reports_components(store: Bot) -> None:
    """/health names PostgreSQL, the last webhook and order, delivery backlog and the scheduler."""
    body = await store.command("/health")
    assert_valid_message(body)
    text = text_of(body)
    for part in ("PostgreSQL* reachable", "Last webhook", "Last order", "Slack delivery", "Scheduler"):
        assert part in text


async def test_restricted_commands_refuse_politely_and_reveal_nothing(dsn: str, fake_slack: FakeSlack) -> None:
    """With SLASH_COMMAND_ALLOWED_USERS set, another user gets a refusal and no figures."""
    async with start_bot(dsn, fake_slack, SLASH_COMMAND_ALLOWED_USERS="UBOSS") as bot:
        await bot.stripe(sale(9, dt.datetime.now(dt.UTC)))
        refused = await bot.command("/sales", user_id="UINTERN")
        assert "only available" in text_of(refused) and "$30.00" not in text_of(refused)
        allowed = await bot.command("/sales", user_id="UBOSS")
        assert "$30.00" in text_of(allowed)


async def test_bad_and_stale_slack_signatures_get_401(store: Bot) -> None:
    """A wrong signing secret or a request older than five minutes is rejected by Bolt with 401."""
    form = {"command": "/sales", "text": "", "user_id": "U1", "channel_id": "C1", "team_id": "T1"}
    assert (await store.slack(form, secret="not-the-secret")).status == 401
    assert (await store.slack(form, timestamp=int(time.time()) - 600)).status == 401
    resp = await store.client.post("/slack/events", data=b"command=%2Fsales")
    assert resp.status == 401
    # A timestamp that is not a number is no signature either (slack_sdk raises on it: it was a 500).
    resp = await store.client.post("/slack/events", data=b"command=%2Fsales", headers={
        "X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=" + "0" * 64})
    assert resp.status == 401


async def test_official_slack_signature_vector_is_accepted_by_the_verifier() -> None:
    """slack_sdk's verifier (what Bolt uses) accepts Slack's documented example request."""
    from slack_sdk.signature import SignatureVerifier

    from tests.reference import FIXTURES_DIR

    v = json.loads((FIXTURES_DIR / "signature_vectors.json").read_text())["slack"]
    verifier = SignatureVerifier(v["signing_secret"], clock=type("C", (), {"now": lambda self: 1531420618.0})())
    assert verifier.is_valid(v["body"], v["x_slack_request_timestamp"], v["x_slack_signature"])
    assert not verifier.is_valid(v["body"] + "x", v["x_slack_request_timestamp"], v["x_slack_signature"])


async def test_slack_answer_and_json_api_agree(store: Bot) -> None:
    """The JSON's today and lastHour figures are the ones /sales shows (same lookups)."""
    resp = await store.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200
    data = await resp.json()
    assert data["today"]["order_count"] == 4
    assert data["today"]["currency"] == "USD" and data["today"]["revenue"] == 9000
    assert data["today"]["revenue_by_currency"] == {"USD": 9000, "EUR": 500}
    assert data["today"]["unique_customers"] == 3
    assert data["lastHour"]["order_count"] == 2
    assert data["lastHour"]["last_order_at"] == "2026-03-08T19:10:00Z"
    assert {"hour", "order_count", "revenue", "avg_order_value"} <= set(data["hourlySales"][0])
    text = text_of(await store.command("/sales"))
    assert "*Orders:*\\n4" in text and "$90.00" in text


@pytest.mark.parametrize("path", ["/api/monitoring/sales", "/api/monitoring/errors", "/api/monitoring/health"])
async def test_monitoring_api_requires_the_bearer_token(store: Bot, path: str) -> None:
    """Missing or wrong bearer → 401; the right one → 200 with a timestamp."""
    assert (await store.client.get(path)).status == 401
    assert (await store.client.get(path, headers={"Authorization": "Bearer nope"})).status == 401
    assert (await store.client.get(path, headers={"Authorization": f"Basic {TOKEN}"})).status == 401
    ok = await store.client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status == 200
    assert "timestamp" in await ok.json()


async def test_monitoring_api_without_a_token_configured_answers_503(bot: Bot) -> None:
    """MONITORING_TOKEN unset: the API is closed, not open."""
    resp = await bot.client.get("/api/monitoring/sales", headers={"Authorization": "Bearer anything"})
    assert resp.status == 503


async def test_errors_json_has_the_guides_fields(store: Bot) -> None:
    """errors{total,byType}, paymentFailures, ghlFailures, alertsTriggered, timestamp."""
    resp = await store.client.get("/api/monitoring/errors", headers={"Authorization": f"Bearer {TOKEN}"})
    data = await resp.json()
    assert set(data) >= {"errors", "paymentFailures", "ghlFailures", "alertsTriggered", "timestamp"}
    assert set(data["errors"]) == {"total", "byType"}


async def test_metrics_exposes_intake_commands_and_outbox(store: Bot) -> None:
    """/metrics is Prometheus text with the command latency and outbox backlog (token enforced when set)."""
    await store.command("/sales")
    assert (await store.client.get("/metrics")).status == 401
    resp = await store.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    body = await resp.text()
    assert 'salespulse_command_seconds_count{command="/sales"} 1.0' in body
    assert "salespulse_outbox_backlog 6.0" in body  # six sale pings queued, none delivered yet


async def test_database_down_still_answers_in_time_and_says_so(store: Bot) -> None:
    """With the pool closed, /sales still answers 200 within Slack's 3 s, naming what it could not get."""
    await store.deps.pool.close()
    started = time.perf_counter()
    body = await store.command("/sales")
    assert time.perf_counter() - started < 3.0
    assert_valid_message(body)
    assert "Couldn't get" in text_of(body)


@contextlib.asynccontextmanager
async def orders_locked(dsn: str) -> AsyncIterator[None]:
    """The orders table locked by another session (every lookup of it stalls) until the block ends."""
    blocker = await asyncpg.connect(dsn)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await tx.rollback()
        await blocker.close()


async def test_slow_database_answers_within_budget_with_what_it_has(store: Bot, dsn: str) -> None:
    """A table lock that stalls the orders lookups still yields an answer in under 3 s, partial and labelled."""
    async with orders_locked(dsn):
        started = time.perf_counter()
        body = await store.command("/sales")
        elapsed = time.perf_counter() - started
    assert elapsed < 3.0
    text = text_of(body)
    assert "Couldn't get" in text and "totals" in text
    assert "in checkout now" in text  # checkout sessions were not locked: that part still arrived


async def test_the_api_gives_figures_it_could_not_read_as_null_not_zero(store: Bot, dsn: str) -> None:
    """The orders table locked: the sales JSON names what is missing, and its counts and revenue are null — a 0
    would tell the guide's dashboard, or a monitor, that nothing sold — within one budget, not two."""
    async with orders_locked(dsn):
        started = time.perf_counter()
        resp = await store.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
        elapsed, body = time.perf_counter() - started, await resp.json()
    assert resp.status == 200 and {"totals", "last hour"} <= set(body["missing"]), body
    for part in ("today", "lastHour"):
        assert (body[part]["order_count"], body[part]["revenue"], body[part]["revenue_by_currency"]) == (
            None, None, None), body[part]
    assert elapsed < 2 * API_BUDGET, elapsed
    fine = await (await store.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
                  ).json()
    assert fine["missing"] == [] and fine["today"]["order_count"] > 0


async def test_share_button_posts_the_summary_in_the_channel(store: Bot) -> None:
    """Clicking Share re-runs the command and posts it in_channel through the response_url."""
    body = await store.command("/sales", "yesterday")
    button = next(e for b in body["blocks"] if b["type"] == "actions" for e in b["elements"])
    payload = {"type": "block_actions", "user": {"id": "U123"}, "channel": {"id": "C123"},
               "team": {"id": "T000"}, "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2",
               "response_url": store.slack_api.url.replace("/api/", "/hooks/share"),
               "container": {"type": "message", "is_ephemeral": True},
               "actions": [{"type": "button", "action_id": button["action_id"], "block_id": "b",
                            "value": button["value"], "action_ts": "1"}]}
    resp = await store.slack({"payload": json.dumps(payload)})
    assert resp.status == 200
    for _ in range(50):
        if len([c for c in store.slack_api.calls if c.method == "hook:share"]) >= 2:
            break
        await asyncio.sleep(0.05)
    posts = [c.args for c in store.slack_api.calls if c.method == "hook:share"]
    assert posts[0]["response_type"] == "in_channel" and "Yesterday" in posts[0]["text"]
    assert "Shared by <@U123>" in json.dumps(posts[0]["blocks"])
    assert_valid_message(posts[0])
    assert posts[1].get("delete_original") is True
