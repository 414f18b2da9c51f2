"""A restarted local bot shows what the console showed before (the outbox keeps it): its firing alert with its
buttons, whose edits and replies find it, and its sale pings; never what a Slack workspace got from the same
database."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from bot.alerts.engine import evaluate
from bot.alerts.respond import notifier_for
from bot.alerts.rules import Context
from bot.blocks.alerts import ACK_ACTION
from bot.web.feed import Entry
from bot.web.feed_render import render_message
from tests.conftest import Bot, paid_checkout, start_bot
from tests.fakes import FakeSlack
from tests.reference import failed_payment as declined

LOCAL: dict[str, Any] = {"SLACK_BOT_TOKEN": None, "SLACK_SIGNING_SECRET": None, "BUSINESS_HOURS": "00:00-23:59"}


def _failed(n: int) -> dict[str, object]:
    evt = declined(f"evt_fh_fail_{n}", f"pi_fh_fail_{n}")
    evt["created"] = int(dt.datetime.now(dt.UTC).timestamp())
    return evt


async def _evaluate(bot: Bot) -> int:
    deps = bot.deps
    ctx = Context(now=deps.clock(), tz=deps.settings.tz, business_hours=deps.settings.business_hours, site_url=None)
    async with deps.pool.acquire() as conn:
        return await evaluate(conn, rules=deps.rules, ctx=ctx, notifier=notifier_for(deps))


async def _in_feed(bot: Bot, channel: str, found: Any, within: float = 10.0) -> list[Entry]:
    """The channel's messages for which `found(entry)` is true, once there are some (or none after `within` s)."""
    feed = bot.deps.feed
    assert feed is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if shown := [e for e in feed.messages(channel) if found(e)]:
            return shown
        await asyncio.sleep(0.1)
    return []


async def _alert_in_feed(bot: Bot, within: float = 10.0) -> list[Entry]:
    return await _in_feed(bot, "alerts", lambda e: "Payment failure" in e.text and "WARNING" in e.text, within)


async def _recorded(bot: Bot, kind: str, within: float = 10.0) -> None:
    """Wait until the console's posts of `kind` are recorded as delivered: shown is not yet recorded, and a post
    stopped in between is sent again at the next start (the console cannot be asked whether it showed it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE kind = $1 AND status = 'pending'", kind):
        assert loop.time() < deadline, f"a {kind} post was never recorded as delivered"
        await asyncio.sleep(0.05)


def _button(entry: Entry, action_id: str) -> dict[str, Any] | None:
    return next((el for b in entry.blocks if b.get("type") == "actions" for el in b.get("elements") or ()
                 if el.get("action_id") == action_id), None)


async def test_a_restarted_local_bot_shows_its_firing_alert_with_its_buttons(dsn: str, fake_slack: FakeSlack) -> None:
    """Local mode keeps alerts in PostgreSQL but the feed in memory. Stop the demo and start it again while its
    'Payment failure rate high' still fires: the new feed has no message for it (no buttons to press); the next
    update and the Acknowledge reply go to a message ts that only the previous process showed."""
    async with start_bot(dsn, fake_slack, background_worker=True, **LOCAL) as first:
        for n in range(3):
            assert (await first.stripe(_failed(n))).status == 200
        assert await _evaluate(first) >= 1
        assert await _alert_in_feed(first), "the first run shows the alert"
        await _recorded(first, "alert")  # Ctrl-C once it has shown and been recorded
    async with start_bot(dsn, fake_slack, background_worker=True, **LOCAL) as again:  # `make run` once more
        await _evaluate(again)
        shown = await _alert_in_feed(again, within=5.0)
        feed = again.deps.feed
        assert feed is not None
        assert shown, ("after a restart the firing alert is nowhere in the feed: "
                       + repr([e.text[:80] for e in feed.messages("alerts")]))
        [alert] = shown
        ack = _button(alert, ACK_ACTION)
        assert ack is not None, "the restored alert has its Acknowledge button"
        pressed = await again.client.post("/feed/action", json={"action_id": ACK_ACTION, "value": ack["value"],
                                                                 "channel": "alerts"})
        assert pressed.status == 200 and (await pressed.json())["changed"] is True
        replies = await _in_feed(again, "alerts", lambda e: e.thread_ts == alert.ts)
        assert replies, "the Acknowledge reply is threaded under the message the feed shows"
        updated = await _in_feed(again, "alerts",
                                 lambda e: e.ts == alert.ts and "Acknowledged by" in render_message(e.text, e.blocks))
        assert updated, "the alert is updated in place"


async def test_sale_pings_survive_a_restart_and_a_slack_workspaces_messages_stay_out(
        dsn: str, fake_slack: FakeSlack) -> None:
    """The feed is "what Slack would show": a sale pinged before a restart is still in #sales after it, with the
    same ts. What the same database's outbox delivered to a Slack workspace is not the console's to show."""
    now = dt.datetime.now(dt.UTC)
    async with start_bot(dsn, fake_slack) as slack_bot:
        assert (await slack_bot.stripe(paid_checkout(1, now, amount=1100))).status == 200
        await slack_bot.drain()
    async with start_bot(dsn, fake_slack, background_worker=True, **LOCAL) as first:
        assert (await first.stripe(paid_checkout(2, now, amount=2200))).status == 200
        [ping] = await _in_feed(first, "sales", lambda e: "$22.00" in e.text)
        await _recorded(first, "sale")
    async with start_bot(dsn, fake_slack, background_worker=True, **LOCAL) as again:
        assert again.deps.feed is not None
        kept = again.deps.feed.messages("sales")
        assert [(e.ts, e.text) for e in kept] == [(ping.ts, ping.text)], [e.text[:60] for e in kept]
