"""Outbox delivery to a fake Slack: rate limits, outages, restarts, several workers, bursts, local mode."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import re
import time
from typing import Any

import pytest

from bot.app import running
from bot.blocks.pace import pace_block
from bot.delivery.senders import ConsoleSender
from bot.delivery.worker import CALL_ALLOWANCE, CHANNEL_INTERVAL
from bot.rhythm.pace import Pace
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, crash_after_slack_accepts, make_settings, start_bot
from tests.fakes import FakeSlack
from tests.reference import failed_payment, stripe_fixture


def sale(n: int, *, amount: int = 3000, currency: str = "usd") -> dict[str, Any]:
    """A paid checkout.session.completed event for payment number n."""
    evt = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    evt["id"] = f"evt_sale_{n}"
    evt["created"] = int(time.time())
    obj = evt["data"]["object"]
    obj.update(id=f"cs_{n}", payment_intent=f"pi_{n}", amount_total=amount, currency=currency)
    return evt


async def sales_covered(bot: Bot) -> dict[str, int]:
    """How many Slack messages cover each sale: its own ping, or the summary it was coalesced into."""
    rows = await bot.deps.pool.fetch(
        "SELECT dedupe_key, status FROM outbox WHERE kind = 'sale'")
    return {r["dedupe_key"]: int(r["status"] in ("delivered", "coalesced")) for r in rows}


def failures_told(posts: list[dict[str, Any]]) -> int:
    """How many failures the posts tell: one a ping, a summary's count ("❌ 1,204 payment failures …")."""
    told = 0
    for p in posts:
        many = re.search(r"([\d,]+) payment failures", p.get("text") or "")
        told += int(many.group(1).replace(",", "")) if many else int("Payment Failed" in (p.get("text") or ""))
    return told


async def failures_covered(bot: Bot) -> tuple[dict[str, int], int]:
    """How many delivered messages cover each failure ping (its own, or the burst it went out in), and how many
    delivered messages the alerts channel holds (each one Slack message)."""
    rows = await bot.deps.pool.fetch(
        "SELECT f.dedupe_key, f.status, b.status AS burst FROM outbox AS f"
        "  LEFT JOIN outbox AS b ON b.id = f.coalesced_into WHERE f.kind = 'failure'")
    covered = {r["dedupe_key"]: int(r["status"] == "delivered" or r["burst"] == "delivered") for r in rows}
    delivered = await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE channel = 'alerts'"
                                             " AND status = 'delivered'")
    return covered, delivered


async def send_sales(bot: Bot, count: int, *, start: int = 0) -> None:
    """Deliver `count` signed sale events, one at a time, each answered 200."""
    for n in range(start, start + count):
        resp = await bot.stripe(sale(n))
        assert resp.status == 200, await resp.text()


async def test_rate_limited_ping_waits_retry_after_and_is_delivered_once(bot: Bot) -> None:
    """A 429 with Retry-After holds the channel that long; the ping then goes out exactly once."""
    bot.slack_api.fail_next(1, status=429, retry_after=1)
    await send_sales(bot, 1)
    await bot.deps.worker.drain()
    assert bot.slack_api.posted() == []
    pace = await bot.deps.pool.fetchval("SELECT next_post_at - now() FROM channel_pace")
    assert pace.total_seconds() > 0.5  # Retry-After honoured
    await asyncio.sleep(1.1)
    await bot.drain()
    assert len(bot.slack_api.posted()) == 1
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM delivery_errors") == 1


async def test_slack_outage_is_retried_with_backoff_until_each_ping_lands_once(bot: Bot) -> None:
    """Three 500s in a row: the message stays queued with growing backoff, then is delivered once."""
    bot.slack_api.fail_next(3, status=500, method="chat.postMessage")  # each retry looks the last one up first
    await send_sales(bot, 1)
    for _ in range(3):
        await bot.deps.worker.drain()
        await bot.deps.pool.execute("UPDATE outbox SET available_at = now()")  # skip the backoff wait
    await bot.drain()
    assert len(bot.slack_api.posted()) == 1
    row = await bot.deps.pool.fetchrow("SELECT status, attempts FROM outbox")
    assert (row["status"], row["attempts"]) == ("delivered", 4)


async def test_timeouts_and_network_errors_are_transient(dsn: str) -> None:
    """Slack not listening at all leaves the message pending for a retry, not failed."""
    dead = FakeSlack()
    dead.url = "http://127.0.0.1:9/api/"  # the discard port: connection refused
    async with start_bot(dsn, dead) as bot:
        await send_sales(bot, 1)
        await bot.deps.worker.drain()
        row = await bot.deps.pool.fetchrow("SELECT status, attempts, last_error FROM outbox")
        assert row["status"] == "pending" and row["attempts"] == 1 and row["last_error"]


async def test_permanent_errors_are_recorded_not_retried(bot: Bot) -> None:
    """A refusal of the message itself (msg_too_long) fails it at once and is recorded for /health."""
    bot.slack_api.fail_next(1, error="msg_too_long")
    await send_sales(bot, 1)
    await bot.drain()
    await bot.deps.worker.drain()
    row = await bot.deps.pool.fetchrow("SELECT status, last_error FROM outbox")
    assert (row["status"], row["last_error"]) == ("failed", "msg_too_long")
    err = await bot.deps.pool.fetchrow("SELECT error, permanent FROM delivery_errors")
    assert (err["error"], err["permanent"]) == ("msg_too_long", True)
    assert len([c for c in bot.slack_api.calls if c.method == "chat.postMessage"]) == 1


async def test_undelivered_messages_survive_a_restart_and_go_out_once(dsn: str,
                                                                      fake_slack: FakeSlack) -> None:
    """Events stored while Slack was never reached are delivered by the next process, once."""
    async with start_bot(dsn, fake_slack) as first:
        await send_sales(first, 3)
    assert fake_slack.posted() == []  # the first process stopped before any delivery
    async with start_bot(dsn, fake_slack) as second:
        await second.drain()
        assert set((await sales_covered(second)).values()) == {1}
    async with start_bot(dsn, fake_slack) as third:  # and a third start sends nothing again
        await third.drain()
    assert len(fake_slack.posted()) == 1  # the three waiting sales went out as one summary
    assert "3 new sales" in fake_slack.posted()[0]["text"]


async def test_two_workers_on_one_outbox_never_send_twice(dsn: str, fake_slack: FakeSlack) -> None:
    """Two processes' workers draining the same outbox concurrently deliver every message once."""
    async with start_bot(dsn, fake_slack) as a, start_bot(dsn, fake_slack) as b:
        # 20 failure pings for the alerts channel: each covered once, by its own message or a burst's.
        for n in range(20):
            evt = failed_payment(f"evt_fail_{n}", f"pi_fail_{n}", amount=1000 + n)
            assert (await a.stripe(evt)).status == 200
        await a.deps.pool.execute("UPDATE channel_pace SET next_post_at = now() - interval '1 hour'")
        for _ in range(40):
            await asyncio.gather(a.deps.worker.drain(), b.deps.worker.drain())
            # The 1 s pace would make this test slow; the pacing itself is tested elsewhere.
            await a.deps.pool.execute("UPDATE channel_pace SET next_post_at = now()")
        pending = await a.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'")
        assert pending == 0
        covered, delivered = await failures_covered(a)
    assert len(covered) == 20 and set(covered.values()) == {1} and failures_told(fake_slack.posted()) == 20
    assert len(fake_slack.posted()) == delivered == len({json.dumps(p["blocks"]) for p in fake_slack.posted()})


async def test_channel_pace_is_one_message_per_second(bot: Bot) -> None:
    """Right after a post, the channel is closed for about a second; nothing else goes out meanwhile."""
    for n in range(2):
        evt = failed_payment(f"evt_pf_{n}", f"pi_pf_{n}")
        await bot.stripe(evt)
        await bot.deps.worker.drain()  # the first goes out; the second waits for the slot
    assert len(bot.slack_api.posted()) == 1
    await asyncio.sleep(1.05)
    await bot.deps.worker.drain()
    assert len(bot.slack_api.posted()) == 2


async def test_the_pace_counts_from_the_slot_so_periods_do_not_stretch(bot: Bot) -> None:
    """A post made right at its slot opens the next slot a second after that slot, not a second after the call
    (which comes a few milliseconds of look-ups later, and would stretch every period by as much)."""
    slot = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.3)
    await bot.deps.pool.execute("INSERT INTO channel_pace (channel, next_post_at) VALUES ('alerts', $1)"
                                " ON CONFLICT (channel) DO UPDATE SET next_post_at = $1", slot)
    evt = stripe_fixture("stripe-ruby-mock/payment_intent.payment_failed.json")
    await bot.stripe(evt)
    await asyncio.sleep(max(0.0, (slot - dt.datetime.now(dt.UTC)).total_seconds() - 0.03))
    await bot.deps.worker.drain()  # a pass just before the slot: it waits for the slot, then posts
    (post,) = [c for c in bot.slack_api.calls if c.method == "chat.postMessage"]
    assert post.at >= slot
    paced = await bot.deps.pool.fetchval("SELECT next_post_at FROM channel_pace WHERE channel = 'alerts'")
    # Within the allowance the next slot is exactly a second on; a late call paces from itself less 20 ms.
    assert paced <= max(slot, post.at - CALL_ALLOWANCE) + CHANNEL_INTERVAL
    assert paced >= slot + CHANNEL_INTERVAL - CALL_ALLOWANCE


async def test_flash_sale_burst_is_coalesced_into_one_summary(bot: Bot) -> None:
    """25 sales waiting at once become one '25 new sales' message with their total; each covered once."""
    for n in range(25):
        await bot.stripe(sale(n, amount=4000 + n))
    await bot.drain()
    posts = bot.slack_api.posted()
    assert len(posts) == 1
    expected_total = sum(4000 + n for n in range(25))
    assert "25 new sales" in posts[0]["text"]
    assert f"${expected_total / 100:,.2f}" in posts[0]["text"]
    assert_valid_message(posts[0])
    covered = await sales_covered(bot)
    assert len(covered) == 25 and set(covered.values()) == {1}
    summary = await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'burst'")
    assert summary == 1


async def test_burst_in_several_currencies_keeps_totals_apart(bot: Bot) -> None:
    """A coalesced summary lists a total per currency, never one sum across them."""
    await bot.stripe(sale(1, amount=1000, currency="usd"))
    await bot.stripe(sale(2, amount=500, currency="jpy"))
    await bot.stripe(sale(3, amount=12345, currency="kwd"))
    await bot.drain()
    text = bot.slack_api.posted()[0]["text"]
    assert "3 new sales" in text
    assert "$10.00" in text and "¥500" in text and "12.345" in text


async def test_first_sale_pings_individually_then_the_backlog_is_summarised(dsn: str,
                                                                            fake_slack: FakeSlack) -> None:
    """With the worker running, a lone sale pings at once; sales arriving during the pace are summarised."""
    async with start_bot(dsn, fake_slack, background_worker=True) as bot:
        await send_sales(bot, 1)
        for _ in range(50):
            if fake_slack.posted():
                break
            await asyncio.sleep(0.05)
        assert "New Sale" in fake_slack.posted()[0]["text"]
        await send_sales(bot, 5, start=1)
        for _ in range(60):
            if len(fake_slack.posted()) == 2:
                break
            await asyncio.sleep(0.1)
        assert "5 new sales" in fake_slack.posted()[1]["text"]


async def test_incoming_webhook_mode_posts_to_the_webhook_urls(dsn: str, fake_slack: FakeSlack) -> None:
    """Without a bot token, pings go to SLACK_SALES_WEBHOOK_URL and failures to SLACK_ALERT_WEBHOOK_URL."""
    hooks = fake_slack.url.replace("/api/", "/hooks/")
    async with start_bot(dsn, fake_slack, SLACK_BOT_TOKEN=None, SLACK_SIGNING_SECRET=None,
                         SLACK_SALES_WEBHOOK_URL=hooks + "sales",
                         SLACK_ALERT_WEBHOOK_URL=hooks + "alerts") as bot:
        await send_sales(bot, 1)
        failed = stripe_fixture("stripe-ruby-mock/payment_intent.payment_failed.json")
        failed["id"] = "evt_hook_fail"
        await bot.stripe(failed)
        await bot.drain()
    methods = sorted(c.method for c in fake_slack.calls)
    assert methods == ["hook:alerts", "hook:sales"]


async def test_local_mode_prints_messages_readably(dsn: str) -> None:
    """With no Slack credentials at all, each message is printed with its header and fields."""
    out = io.StringIO()
    settings = make_settings()
    assert settings.local_mode
    # jobs=False: a daily report falling due at start-up (real clock) would be printed here too.
    async with running(settings, dsn=dsn, sender=ConsoleSender(stream=out), jobs=False) as services:
        from bot.intake.batch import Submission, ingest_batch
        from bot.stripe.parse import parse_event

        evt = sale(7)
        sub = Submission("stripe", evt["id"], evt["type"], json.dumps(evt), parse_event(evt))
        async with services.deps.pool.acquire() as conn:
            await ingest_batch(conn, [sub], tz=settings.tz, now=services.deps.clock())
        await services.deps.worker.drain()
    printed = out.getvalue()
    assert "[#sales]" in printed and "== 💰 New Sale! ==" in printed
    assert re.search(r"\$30\.00", printed) and "str***" in printed
    assert "stripe@example.com" not in printed


async def test_terminal_shows_less_than_one_percent_not_an_html_entity() -> None:
    """The pace line's "▲ <1%" is escaped for Slack; the terminal (ConsoleSender: local mode and the demo; `report
    --dry-run` prints the same render_text) printed mrkdwn as it is, so the owner read "▲ &lt;1%"."""
    p = Pace(currency="USD", weekday="Saturday", orders=50, revenue=500_000, projected_orders=1001,
             projected_revenue=1_000_100, usual_orders=1000, usual_revenue=1_000_000)
    out = io.StringIO()
    await ConsoleSender(stream=out).post("reports", {"text": "pace", "blocks": [pace_block(p)]})
    printed = out.getvalue()
    assert "<1%" in printed and "&lt;" not in printed, printed


@pytest.mark.parametrize("status", [429, 500])
async def test_each_ping_is_delivered_exactly_once_through_faults(bot: Bot, status: int) -> None:
    """Alternating faults and successes over 12 failures: each is covered by exactly one message in Slack (its own,
    or a burst's), and each message reaches Slack once."""
    for n in range(12):
        evt = failed_payment(f"evt_x{n}", f"pi_x{n}", amount=1000 + n)
        await bot.stripe(evt)
    for round_ in range(60):
        if round_ % 2 == 0:
            bot.slack_api.fail_next(1, status=status, retry_after=0 if status == 429 else None)
        await bot.deps.worker.drain()
        await bot.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
        await bot.deps.pool.execute("UPDATE delivery_attempts SET retry_at = now()")  # a burst's retry, likewise
        await bot.deps.pool.execute("UPDATE channel_pace SET next_post_at = now()")
        if not await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'"):
            break
    bodies = [json.dumps(p["blocks"]) for p in bot.slack_api.posted()]
    covered, delivered = await failures_covered(bot)
    assert len(covered) == 12 and set(covered.values()) == {1} and failures_told(bot.slack_api.posted()) == 12
    assert len(bodies) == delivered == len(set(bodies))


async def test_post_that_reached_slack_before_a_crash_is_not_sent_again(dsn: str, fake_slack: FakeSlack) -> None:
    """Slack takes the message, the process dies before the answer: the next process finds it and doesn't repost."""
    async with start_bot(dsn, fake_slack) as first:
        await send_sales(first, 1)
        await first.drain()  # a first message teaches the worker the channel's Slack id
        await send_sales(first, 1, start=1)
        await crash_after_slack_accepts(first, fake_slack, messages=2)
    assert len(fake_slack.messages) == 2
    async with start_bot(dsn, fake_slack) as second:
        await second.deps.pool.execute("UPDATE channel_pace SET next_post_at = now() - interval '1 hour'")
        await second.drain()
        row = await second.deps.pool.fetchrow("SELECT status, slack_ts FROM outbox WHERE dedupe_key = 'sale:pi_1'")
        assert row["status"] == "delivered" and row["slack_ts"] == fake_slack.messages[1]["ts"]
    assert len(fake_slack.messages) == 2  # found through its metadata, not posted twice
    assert [c.method for c in fake_slack.calls].count("conversations.history") == 1


async def test_the_very_first_post_that_reached_slack_before_a_crash_is_not_sent_again(
        dsn: str, fake_slack: FakeSlack) -> None:
    """The first message to a channel: its Slack id was never learnt from an answer, so the look-up uses the id the
    channel directory resolved at start-up, and the message is found instead of posted twice."""
    async with start_bot(dsn, fake_slack) as first:
        await send_sales(first, 1)
        await crash_after_slack_accepts(first, fake_slack, messages=1)
        assert await first.deps.pool.fetchval("SELECT slack_channel_id FROM channel_pace") is None
    async with start_bot(dsn, fake_slack) as second:
        await second.deps.pool.execute("UPDATE channel_pace SET next_post_at = now() - interval '1 hour'")
        await second.drain()
        row = await second.deps.pool.fetchrow("SELECT status, slack_ts FROM outbox")
        assert row["status"] == "delivered" and row["slack_ts"] == fake_slack.messages[0]["ts"]
    assert len(fake_slack.messages) == 1


async def test_unconfirmed_post_that_never_arrived_is_sent(dsn: str, fake_slack: FakeSlack) -> None:
    """A timed-out attempt that Slack never saw is looked up, not found, and sent once."""
    async with start_bot(dsn, fake_slack) as bot:
        await send_sales(bot, 1)
        await bot.drain()
        await send_sales(bot, 1, start=1)
        await bot.deps.pool.execute("UPDATE channel_pace SET next_post_at = now() - interval '1 hour'")
        fake_slack.fail_next(1, status=500)  # ambiguous for all we know: the attempt record stays
        await bot.deps.worker.drain()
        assert await bot.deps.pool.fetchval("SELECT count(*) FROM delivery_attempts") == 1
        await bot.deps.pool.execute("UPDATE outbox SET available_at = now(); "
                                    "UPDATE channel_pace SET next_post_at = now() - interval '1 hour'")
        await bot.drain()
        assert await bot.deps.pool.fetchval("SELECT count(*) FROM delivery_attempts") == 0
    assert len(fake_slack.messages) == 2
    assert [c.method for c in fake_slack.calls].count("conversations.history") == 1
