"""POST /webhooks/events: what the times the store's app sends do to /errors, the alerts and "last order".

App events count when the bot receives them (by its clock); the sender's `occurred_at` is kept as history, and one
more than a few minutes ahead is refused, so a wrong clock is told rather than silently miscounted.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import ClientResponse

from bot.alerts.jobs import AlertJobs
from bot.alerts.leader import Leadership
from tests.conftest import Bot, FakeClock, paid_checkout, start_bot
from tests.fakes import FakeSlack

TOKEN = "intake-test-token-6f1c-long-enough"
MONITORING = "mon-token-long-enough-for-app-events"
NY = ZoneInfo("America/New_York")
# A Tuesday, 14:00 in New York: inside the default business hours 09:00-21:00.
NOON = dt.datetime(2026, 6, 9, 14, 0, tzinfo=NY).astimezone(dt.UTC)


@pytest.fixture
def clock() -> FakeClock:
    """The test's clock, on a Tuesday afternoon in New York."""
    return FakeClock(NOON)


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack, clock: FakeClock) -> AsyncIterator[Bot]:
    """The bot taking app events, on the test's clock."""
    async with start_bot(dsn, fake_slack, clock=clock, INTAKE_TOKEN=TOKEN, STORE_TIMEZONE="America/New_York",
                         MONITORING_TOKEN=MONITORING) as bot:
        yield bot


async def post(bot: Bot, body: Any) -> ClientResponse:
    """POST app events with the intake token."""
    return await bot.client.post("/webhooks/events", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})


async def open_alerts(bot: Bot) -> list[str]:
    """The rules of the unresolved alerts."""
    return [r["rule"] for r in await bot.deps.pool.fetch("SELECT rule FROM alerts WHERE resolved_at IS NULL")]


async def tick(bot: Bot, dsn: str) -> None:
    """One evaluation of every alert rule, as the leader."""
    jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
    try:
        await jobs.tick()
    finally:
        await jobs.leadership.release()


def sync_failure(at: dt.datetime, event_id: str = "s-1") -> dict[str, Any]:
    """A CRM sync failure dated `at`."""
    return {"type": "sync_failure", "id": event_id, "system": "gohighlevel", "message": "contact upsert failed",
            "occurred_at": at.isoformat()}


async def test_a_sync_failure_reported_now_but_dated_90_minutes_ago_counts_now(
        store: Bot, clock: FakeClock, dsn: str) -> None:
    """README: `sync_failures` fires on "any sync failure reported in the last hour". A nightly CRM sync that
    reports its failures when it finishes (each with the time it happened) reports them now: the alert fires and
    the monitoring JSON counts it, while the stored event keeps the time it happened."""
    happened = clock.now - dt.timedelta(minutes=90)
    resp = await post(store, sync_failure(happened))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["results"][0]["status"] == "stored"
    clock.advance(seconds=1)  # windows are [now - 1 h, now): the check runs after the report arrived
    await tick(store, dsn)
    assert "sync_failures" in await open_alerts(store)
    errors = await (await store.client.get("/api/monitoring/errors",
                                           headers={"Authorization": f"Bearer {MONITORING}"})).json()
    assert errors["ghlFailures"] == 1, errors
    assert await store.deps.pool.fetchval("SELECT occurred_at FROM app_events") == happened


async def test_a_sync_failure_dated_three_hours_ahead_is_refused_naming_the_field(
        store: Bot, clock: FakeClock) -> None:
    """An app whose clock (or UTC offset) is 3 h ahead is told so with a 400 naming `occurred_at`, and nothing is
    stored: before, it was answered 'stored' and then counted nowhere."""
    resp = await post(store, sync_failure(clock.now + dt.timedelta(hours=3)))
    assert resp.status == 400
    problems = (await resp.json())["problems"]
    assert problems == ["occurred_at: is more than 5 minutes ahead of the bot's clock (2026-06-09T18:00:00Z):"
                        " check the sender's clock and UTC offset"], problems
    assert await store.deps.pool.fetchval("SELECT count(*) FROM app_events") == 0


async def test_a_future_dated_app_order_cannot_silence_the_no_sales_alert(
        store: Bot, clock: FakeClock, dsn: str) -> None:
    """The last real sale was at 09:00; the app reports a custom order dated 20 h ahead. It is refused, so six
    business hours later, still with no sale since 09:00, `no_sales` fires (before, the order's future time kept
    "last order" ahead of now for a day)."""
    resp = await store.stripe(paid_checkout(1, clock.now - dt.timedelta(hours=5)))
    assert resp.status == 200
    resp = await post(store, {"type": "order", "id": "A-1", "amount": 4900, "currency": "usd",
                              "product": "Workshop", "occurred_at": (clock.now + dt.timedelta(hours=20)).isoformat()})
    assert resp.status == 400
    assert (await resp.json())["problems"][0].startswith("occurred_at: is more than 5 minutes ahead")
    assert await store.deps.pool.fetchval("SELECT count(*) FROM orders") == 1
    clock.advance(hours=6)  # 20:00 New York, still business hours; no sale since 09:00
    await tick(store, dsn)
    assert "no_sales" in await open_alerts(store), "11 business hours without a sale, and no alert"


async def test_webhook_error_rate_is_a_share_of_what_it_counted(dsn: str, fake_slack: FakeSlack) -> None:
    """Two Stripe webhooks went fine; the store's app reported 10 errors. The alert's rate counts the same things
    above and below the line (12 events: 2 webhooks, 10 app error reports), so it is 83.3 %, never 500 %."""
    clock = FakeClock(dt.datetime.now(dt.UTC))  # webhook_logs.created_at is the database's now()
    async with start_bot(dsn, fake_slack, clock=clock, INTAKE_TOKEN=TOKEN) as bot:
        for n in range(2):
            assert (await bot.stripe(paid_checkout(n, clock.now - dt.timedelta(minutes=5)))).status == 200
        resp = await post(bot, {"events": [{"type": "error", "id": f"e{i}", "source": "checkout-api",
                                            "message": "card form crashed"} for i in range(10)]})
        assert resp.status == 200
        clock.advance(seconds=5)
        await tick(bot, dsn)
        summary = await bot.deps.pool.fetchval("SELECT summary FROM alerts WHERE rule = 'webhook_errors'")
    assert summary == ("10 errors in the last hour (83.3% of 12: 0 of 2 webhooks failed, 10 errors reported by the"
                       " app) — app: checkout-api ×10: card form crashed"), summary
