"""Delivery that is stuck, not slow — a message due for over ten minutes and still not in Slack (the bot removed from a
channel, its token revoked, Slack down) — is red in /health, on the dashboard and in the JSON and /metrics, whose
status turns "degraded"; messages held by design (a sale settling, renewals gathered to the hour's end) are not."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from bot.answers.snapshots import STUCK_AFTER, SalesSnapshot, health_snapshot
from bot.periods import parse_period
from bot.web.view import dashboard_view
from tests import test_commands
from tests.blockkit import assert_valid_message
from tests.conftest import Bot
from tests.test_commands import NOW, TOKEN, text_of

store = test_commands.store  # the New York store of the command tests, its clock at NOW
MIN = dt.timedelta(minutes=1)


async def _queue(bot: Bot, *, created: dt.timedelta, due: dt.timedelta, attempts: int = 0,
                 first_due: dt.timedelta | None = None) -> None:
    """A pending alert message queued `created` before NOW and due `due` before NOW (negative: later); retried,
    `first_due` before NOW is when it was first due."""
    await bot.deps.pool.execute(
        "INSERT INTO outbox (dedupe_key, channel, kind, payload, created_at, available_at, attempts, first_due_at)"
        " VALUES ('stuck:' || $1, 'alerts', 'failure', '{\"text\": \"x\"}', $2, $3, $4, $5)",
        f"{created}{due}", NOW - created, NOW - due, attempts, None if first_due is None else NOW - first_due)


async def _surfaces(bot: Bot) -> tuple[str, dict[str, object], str]:
    """(/health text, the JSON's delivery component with its status, /metrics text)."""
    body = await bot.command("/health")
    assert_valid_message(body)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    data = await (await bot.client.get("/api/monitoring/health", headers=auth)).json()
    metrics = await (await bot.client.get("/metrics", headers=auth)).text()
    return text_of(body), {**data["components"]["delivery"], "status": data["status"]}, metrics


@pytest.mark.parametrize(("created", "due", "attempts"), [
    (25 * MIN, 25 * MIN, 3),  # tried and refused for 25 minutes
    (50 * MIN, 12 * MIN, 0),  # a renewal held to the hour's end, due 12 minutes ago and not sent since
], ids=["retried", "held, then never sent"])
async def test_a_message_due_for_over_ten_minutes_is_stuck_everywhere(store: Bot, created: dt.timedelta,
                                                                      due: dt.timedelta, attempts: int) -> None:
    await _queue(store, created=created, due=due, attempts=attempts)
    text, delivery, metrics = await _surfaces(store)
    assert "🔴 *Slack delivery stuck*" in text and f"the oldest due {int(due / MIN)} min ago" in text
    assert text.endswith("🩺 Health: degraded")  # the summary (a notification's preview) says so too
    assert delivery["stuck"] is True and delivery["status"] == "degraded"
    due_age = next(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith("salespulse_outbox_oldest_due_age_seconds "))
    assert due_age > STUCK_AFTER.total_seconds()


@pytest.mark.parametrize(("created", "due", "attempts", "first_due"), [
    (50 * MIN, -10 * MIN, 0, None),  # a renewal held to the hour's end, not due yet
    (50 * MIN, 2 * MIN, 0, None),  # its hold ended two minutes ago: due, not stuck
    (3 * MIN, 3 * MIN, 0, None),  # a message waiting a few minutes (an outage that has just begun)
    (60 * MIN, -MIN / 20, 1, 2 * MIN),  # held an hour, tried once two minutes ago, its retry in 3 s
], ids=["held", "hold just ended", "recent", "held, then refused once"])
async def test_messages_held_by_design_or_due_lately_are_not_stuck(store: Bot, created: dt.timedelta,
                                                                  due: dt.timedelta, attempts: int,
                                                                  first_due: dt.timedelta | None) -> None:
    await _queue(store, created=created, due=due, attempts=attempts, first_due=first_due)
    text, delivery, _ = await _surfaces(store)
    assert "stuck" not in text and "*Slack delivery*" in text and text.endswith("🩺 Health: ok")
    assert delivery["stuck"] is False and delivery["status"] == "ok"


async def test_the_dashboard_shows_stuck_delivery_red_and_the_store_degraded(store: Bot) -> None:
    await _queue(store, created=30 * MIN, due=30 * MIN, attempts=5)
    tz = store.deps.settings.tz
    health = await health_snapshot(store.deps.pool, now=NOW, in_business_hours=True, mode="http", version="t",
                                   started_at=NOW, site_url=None)
    nothing = SalesSnapshot(period=parse_period("", now=NOW, tz=tz), now=NOW, last_hour=None, last_order_at=None,
                            totals=None, previous=None, customers=None, refunds=None, trend=None,
                            pending_checkouts=None, conversion=None)
    page = dashboard_view(nothing, None, health, tz=tz)
    assert health.delivery_stuck and page["status"] == "degraded"
    assert next(h for h in page["health"] if h["name"] == "Slack delivery")["level"] == "bad"


@pytest.mark.parametrize(("minutes", "due", "stuck"), [(30, 25 * MIN, False), (5, 7 * MIN, True)],
                         ids=["raised to 30 min", "lowered to 5 min"])
async def test_every_surface_reads_the_threshold_the_owner_set_for_the_alert(store: Bot, minutes: int,
                                                                            due: dt.timedelta, stuck: bool) -> None:
    """/health, the JSON and the alert agree on when delivery is stuck: the delivery_stuck rule's threshold."""
    live = store.deps.live
    live.rules = dataclasses.replace(live.rules, rules=tuple(
        dataclasses.replace(r, threshold=minutes) if r.name == "delivery_stuck" else r for r in live.rules.rules))
    await _queue(store, created=due, due=due, attempts=3)
    text, delivery, _ = await _surfaces(store)
    assert ("🔴 *Slack delivery stuck*" in text) is stuck and delivery["stuck"] is stuck, text
    assert delivery["status"] == ("degraded" if stuck else "ok")
