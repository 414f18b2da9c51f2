"""Slack's refusals: what no retry fixes is given up at once, an error we don't know is tried a few times, and
nothing holds a channel for ever; thread replies go to their parent's channel."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bot.alerts.jobs import AlertJobs
from bot.delivery.senders import HOLD_RETRY, UNEXPECTED_TRIES
from queries import health, outbox
from tests import test_alerts
from tests.conftest import Bot, FakeClock
from tests.test_alerts import click, failures, posted_ts, run
from tests.test_delivery import sales_covered, send_sales

# The alert tests' New York store, its clock and its alert jobs.
store, clock, jobs = test_alerts.store, test_alerts.clock, test_alerts.jobs
PENDING = "SELECT count(*) FROM outbox WHERE status = 'pending'"


async def passes(bot: Bot, count: int) -> None:
    """`count` delivery passes, each with every retry and channel slot due at once (the test's clock stands)."""
    for _ in range(count):
        await bot.deps.pool.execute("UPDATE channel_pace SET next_post_at = '2000-01-01T00:00:00Z'")
        await bot.deps.pool.execute("UPDATE outbox SET available_at = least(available_at, now() - interval '1 hour')"
                                    " WHERE status = 'pending'")
        await bot.deps.pool.execute("UPDATE delivery_attempts SET retry_at = now() - interval '1 hour'")
        await bot.deps.worker.drain()


def calls(bot: Bot, method: str) -> list[dict[str, object]]:
    return [c.args for c in bot.slack_api.calls if c.method == method]


async def fired(bot: Bot, jobs: AlertJobs, clock: FakeClock) -> int:
    """Three payment failures: the warning posted; its id."""
    await failures(bot, 3, clock.now - dt.timedelta(minutes=1))
    await run(jobs, bot)
    return int(await bot.deps.pool.fetchval("SELECT id FROM alerts"))


async def test_an_update_to_a_deleted_alert_message_is_given_up_and_the_reply_still_goes(
        store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """Someone deleted the alert message, then clicked Acknowledge: chat.update says message_not_found once, the
    update is failed (not retried every 3 s for ever) and the acknowledgement reply behind it goes out."""
    alert_id = await fired(store, jobs, clock)
    store.slack_api.fail_next(20, error="message_not_found", method="chat.update")
    await click(store, "alert_ack", alert_id, user="UONCALL", ts=posted_ts(store))
    await passes(store, 5)
    assert len(calls(store, "chat.update")) == 1
    row = await store.deps.pool.fetchrow("SELECT status, last_error FROM outbox WHERE op = 'update'")
    assert (row["status"], row["last_error"]) == ("failed", "message_not_found")
    assert await store.deps.pool.fetchval(
        "SELECT bool_and(permanent) FROM delivery_errors WHERE error = 'message_not_found'")
    replies = [c for c in store.slack_api.posted() if c.get("thread_ts") == posted_ts(store)]
    assert [str(r["text"]).split(" · ")[0] for r in replies] == ["👀 Acknowledged by <@UONCALL>"]
    assert await store.deps.pool.fetchval(PENDING) == 0


@pytest.mark.parametrize("error", ["channel_not_found", "restricted_action_read_only_channel", "token_revoked"])
async def test_a_channel_or_token_refusing_everything_holds_the_sales_until_fixed(bot: Bot, error: str) -> None:
    """The bot was removed from the channel, an admin made it read-only, or the token was revoked: every message
    would be refused, so the waiting sales are held (retried every HOLD_RETRY, not every 3 s, and never failed),
    recorded for /health as not permanent; once Slack takes posts again every sale is announced, once."""
    bot.slack_api.fail_next(3, error=error, method="chat.postMessage")
    await send_sales(bot, 3)
    await passes(bot, 1)
    retries = await bot.deps.pool.fetch(  # a lone ping waits in the outbox, a summary on its attempt record
        "SELECT available_at - now() AS wait FROM outbox WHERE attempts > 0"
        " UNION ALL SELECT retry_at - now() FROM delivery_attempts WHERE retry_at IS NOT NULL")
    assert retries and all(abs(r["wait"] - HOLD_RETRY) < dt.timedelta(seconds=5) for r in retries)
    await passes(bot, 2)
    assert len(calls(bot, "chat.postMessage")) == 3 and bot.slack_api.posted() == []
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'failed'") == 0
    # One row for the channel's repeated refusal, counting its retries (not a row a retry, for hours on end).
    errors = await bot.deps.pool.fetch("SELECT permanent, repeats, last_at > created_at AS later FROM delivery_errors")
    assert [tuple(r) for r in errors] == [(False, 3, True)]
    assert (await health.delivery_errors(bot.deps.pool, since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
            ).count == 3
    await send_sales(bot, 2, start=10)
    await passes(bot, 2)
    assert len(bot.slack_api.posted()) <= 2  # the held message, and one summary of the rest
    assert set((await sales_covered(bot)).values()) == {1} and len(await sales_covered(bot)) == 5
    assert await bot.deps.pool.fetchval(PENDING) == 0


async def test_an_error_we_do_not_know_is_tried_a_few_times_then_failed(store: Bot) -> None:
    """A refusal not in either list (a future error name) is retried like an outage UNEXPECTED_TRIES times, then the
    message is failed and recorded as permanent, so the channel's queue moves on."""
    store.slack_api.fail_next(50, error="some_error_slack_adds_next_year", method="chat.postMessage")
    await send_sales(store, 1)
    await passes(store, UNEXPECTED_TRIES + 3)
    assert len(calls(store, "chat.postMessage")) == UNEXPECTED_TRIES
    row = await store.deps.pool.fetchrow("SELECT status, attempts FROM outbox")
    assert (row["status"], row["attempts"]) == ("failed", UNEXPECTED_TRIES)
    permanent = await store.deps.pool.fetch("SELECT permanent, repeats FROM delivery_errors ORDER BY id")
    assert [tuple(r) for r in permanent] == [(False, UNEXPECTED_TRIES - 1), (True, 1)]


async def test_an_outage_error_is_retried_until_slack_is_back(store: Bot) -> None:
    """Slack's own trouble (`service_unavailable` with 200) is never given up: the sale goes out once it passes."""
    store.slack_api.fail_next(UNEXPECTED_TRIES + 2, error="service_unavailable", method="chat.postMessage")
    await send_sales(store, 1)
    await passes(store, UNEXPECTED_TRIES + 4)
    assert [r["status"] for r in await store.deps.pool.fetch("SELECT status FROM outbox")] == ["delivered"]
    assert len(store.slack_api.posted()) == 1


async def test_replies_follow_their_parent_after_the_alerts_channel_moved(
        store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """The alerts channel changed (Settings) while an alert fired: its update and its thread reply both go to the
    channel the parent is in; a new alert goes to the new channel."""
    store.slack_api.add_channel("C0NEWALERTS", "new-alerts", member=True)
    alert_id = await fired(store, jobs, clock)
    parent_channel = next(m["channel_id"] for m in store.slack_api.messages if not m["thread_ts"])
    store.deps.sender.retarget({"sales": "#sales-notifications", "alerts": "C0NEWALERTS",
                                "reports": "#daily-reports"})
    await click(store, "alert_ack", alert_id, user="UONCALL", ts=posted_ts(store))
    await passes(store, 3)
    [update] = calls(store, "chat.update")
    [reply] = [c for c in calls(store, "chat.postMessage") if c.get("thread_ts")]
    assert update["channel"] == reply["channel"] == parent_channel != "C0NEWALERTS"


async def test_a_reply_whose_thread_is_gone_is_posted_on_its_own(
        store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """thread_not_found (the parent was deleted): the acknowledgement is said as a message of its own, once."""
    alert_id = await fired(store, jobs, clock)
    store.slack_api.fail_next(1, error="thread_not_found", method="chat.postMessage")
    await click(store, "alert_ack", alert_id, user="UONCALL", ts=posted_ts(store))
    await passes(store, 3)
    acks = [c for c in calls(store, "chat.postMessage") if str(c["text"]).startswith("👀 Acknowledged")]
    assert [bool(c.get("thread_ts")) for c in acks] == [True, False]  # refused in the thread, then on its own
    assert [c for c in store.slack_api.posted() if str(c["text"]).startswith("👀 Acknowledged")] == [acks[1]]
    assert await store.deps.pool.fetchval(PENDING) == 0


async def test_delivery_errors_older_than_ninety_days_go_as_new_ones_come(store: Bot) -> None:
    pool = store.deps.pool
    await pool.execute("INSERT INTO delivery_errors (channel, error, permanent, created_at)"
                       " SELECT 'sales', 'old_' || d, true, now() - make_interval(days => d)"
                       "   FROM unnest($1::int[]) AS d",
                       [100, 91, 10])
    await outbox.record_error(pool, channel="sales", error="msg_too_long", permanent=True)
    left = await pool.fetch("SELECT error FROM delivery_errors ORDER BY id")
    assert [r["error"] for r in left] == ["old_10", "msg_too_long"]


async def stuck_alerts(bot: Bot, jobs: AlertJobs) -> list[dict[str, object]]:
    """Evaluate the alerts and make a delivery pass (a held channel never drains); the stuck-delivery posts so far."""
    await passes(bot, 1)
    await jobs.tick()
    await passes(bot, 2)
    return [{**c.args, "_ok": c.args.get("_ok", True)} for c in bot.slack_api.calls
            if c.method == "chat.postMessage" and "delivery stuck" in str(c.args.get("text"))]


async def test_a_channel_refusing_its_messages_raises_an_alert_in_the_alerts_channel_until_fixed(
        store: Bot, clock: FakeClock, jobs: AlertJobs) -> None:
    """The sales channel archived: its sale pings are held (nothing lost) and, once the oldest has been due for ten
    minutes, the alerts channel says so — naming the channel and Slack's error — until they are delivered."""
    store.slack_api.channels["C0SALES"].archived = True
    await send_sales(store, 2)
    await passes(store, 1)
    # Queued nine minutes ago by the test's clock (passes() moves the database's own times on, not this).
    await store.deps.pool.execute("UPDATE outbox SET created_at = $1, available_at = $1 WHERE channel = 'sales'",
                                  clock.now - dt.timedelta(minutes=9))
    assert not await stuck_alerts(store, jobs)
    clock.advance(minutes=2)
    stuck = await stuck_alerts(store, jobs)
    assert len(stuck) == 1 and stuck[0]["channel"] == "C0ALERTS" and stuck[0]["_ok"], stuck
    assert "2 messages for #sales not delivered for 11 min" in json.dumps(stuck[0]["blocks"])
    assert "is_archived" in json.dumps(stuck[0]["blocks"])
    store.slack_api.channels["C0SALES"].archived = False
    await passes(store, 1)
    assert set((await sales_covered(store)).values()) == {1}
    await stuck_alerts(store, jobs)
    assert await store.deps.pool.fetchval(
        "SELECT resolved_at IS NOT NULL FROM alerts WHERE rule = 'delivery_stuck'") is True
