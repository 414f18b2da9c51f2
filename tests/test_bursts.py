"""Bursts: everything waiting for a channel goes out in its next message, each sale covered exactly once, the
order of updates and replies kept, and a long Slack outage drained in a handful of messages."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from bot.money import format_money
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, crash_after_slack_accepts, start_bot
from tests.fakes import FakeSlack

CURRENCIES = ("usd", "eur", "jpy")
# Sales queued straight into the outbox, shaped as the intake queues them (the burst reads amount, currency,
# created_at and payload->'sale'); one statement, so 50,000 take well under a second.
QUEUE_SALES = """
INSERT INTO outbox (dedupe_key, channel, kind, payload, amount, currency)
SELECT 'sale:bulk_' || i, 'sales', 'sale',
       jsonb_build_object('sale', jsonb_build_object('order_id', 'pi_bulk_' || i, 'product', 'Plan ' || i,
                                                     'customer', 'buyer' || i || '@example.com',
                                                     'affiliate', NULL, 'occurred_at', now(), 'late', false)),
       1000 + i % 7, ($3::text[])[1 + i % 3]
  FROM generate_series($1::int, $2::int - 1) AS i
"""
# Each sale row with the summary that covers it.
COVERAGE = """
SELECT s.status, s.slack_ts, b.kind AS burst_kind, b.slack_ts AS burst_ts
  FROM outbox AS s LEFT JOIN outbox AS b ON b.id = s.coalesced_into
 WHERE s.kind = 'sale'
"""


async def queue_sales(bot: Bot, start: int, stop: int) -> dict[str, int]:
    """Queue sales number start … stop-1; their expected totals per currency."""
    await bot.deps.pool.execute(QUEUE_SALES, start, stop, list(CURRENCIES))
    totals: Counter[str] = Counter()
    for i in range(start, stop):
        totals[CURRENCIES[i % 3]] += 1000 + i % 7
    return dict(totals)


async def covering_messages(bot: Bot) -> Counter[str]:
    """How many sales each Slack message (by ts) covers; fails if a sale is uncovered or covered oddly."""
    per_ts: Counter[str] = Counter()
    for row in await bot.deps.pool.fetch(COVERAGE):
        if row["status"] == "delivered":
            per_ts[row["slack_ts"]] += 1
        else:
            assert row["status"] == "coalesced" and row["burst_kind"] == "burst" and row["burst_ts"], dict(row)
            per_ts[row["burst_ts"]] += 1
    return per_ts


def announced(post: dict[str, Any]) -> int:
    """The `N new sales` a message says it covers (1 for a single ping)."""
    found = re.search(r"(\d+) new sales", post["text"])
    return int(found.group(1)) if found else 1


async def test_five_thousand_waiting_sales_go_out_as_one_message(bot: Bot) -> None:
    """5,000 queued sales: one message with the count and every currency's total; each row covered by it once."""
    totals = await queue_sales(bot, 0, 5000)
    await bot.drain()
    posts = bot.slack_api.posted()
    assert len(posts) == 1
    assert "5000 new sales" in posts[0]["text"]
    for currency, total in totals.items():
        assert format_money(total, currency) in posts[0]["text"]
    assert "…and 4,990 more" in json.dumps(posts[0]["blocks"], ensure_ascii=False)
    assert_valid_message(posts[0])
    per_ts = await covering_messages(bot)
    assert dict(per_ts) == {bot.slack_api.messages[0]["ts"]: 5000}
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM delivery_attempts") == 0


async def test_updates_and_replies_keep_their_place_around_a_burst(bot: Bot) -> None:
    """A post, sales, an update and a reply to that post, more sales: the post goes first (retried after a 500),
    the sales as one message, and the update and the reply only once their target is in Slack."""
    pool = bot.deps.pool
    bot.deps.worker.backoff_scale = 0.01
    target = await pool.fetchval("INSERT INTO outbox (dedupe_key, channel, kind, payload) "
                                 "VALUES ('refund:1', 'sales', 'refund', '{\"text\": \"refund v1\"}') RETURNING id")
    await queue_sales(bot, 0, 3)
    await pool.execute("INSERT INTO outbox (dedupe_key, channel, kind, payload, op, target_id) VALUES "
                       "('refund:1:v2', 'sales', 'refund', '{\"text\": \"refund v2\"}', 'update', $1), "
                       "('refund:1:re', 'sales', 'refund', '{\"text\": \"about that refund\"}', 'reply', $1)",
                       target)
    await queue_sales(bot, 3, 6)
    bot.slack_api.fail_next(1, status=500)  # the post's first attempt: its update and reply must wait for it
    await bot.drain(ignore_pace=True)
    calls = [c for c in bot.slack_api.calls if c.method in ("chat.postMessage", "chat.update")]
    said = [(c.method, c.answered, c.args.get("text")) for c in calls]
    assert said[0] == ("chat.postMessage", 500, "refund v1")
    assert said.index(("chat.postMessage", 200, "refund v1")) < said.index(("chat.update", 200, "refund v2"))
    assert said.index(("chat.update", 200, "refund v2")) < said.index(("chat.postMessage", 200, "about that refund"))
    assert [announced(c.args) for c in calls if "new sales" in str(c.args.get("text"))] == [6]
    posted_ts = await pool.fetchval("SELECT slack_ts FROM outbox WHERE id = $1", target)
    reply = next(c for c in calls if c.args.get("text") == "about that refund")
    update = next(c for c in calls if c.method == "chat.update")
    assert reply.args["thread_ts"] == posted_ts and update.args["ts"] == posted_ts


async def test_outage_of_fifty_thousand_sales_drains_in_a_handful_of_messages(bot: Bot) -> None:
    """Slack answers 503 to 30 calls in a row while 50,000 sales wait; once it answers again they go out in at
    most three messages, whose counts add up to 50,000, every sale covered by exactly one of them."""
    await queue_sales(bot, 0, 1)
    await bot.drain()  # the channel's Slack id is known, so an unconfirmed burst can be looked up
    bot.deps.worker.backoff_scale = 0.01
    totals = await queue_sales(bot, 1, 50_001)
    bot.slack_api.fail_next(30, status=503)
    await bot.drain(ignore_pace=True, within=60)
    assert not bot.slack_api.faults  # the outage was seen through
    posts = bot.slack_api.posted()[1:]
    assert 1 <= len(posts) <= 3 and sum(announced(p) for p in posts) == 50_000
    if len(posts) == 1:
        assert all(format_money(t, c) in posts[0]["text"] for c, t in totals.items())
    per_ts = await covering_messages(bot)
    assert sum(per_ts.values()) == 50_001 and len(per_ts) == 1 + len(posts)
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0


async def test_burst_that_reached_slack_before_a_crash_settles_exactly_what_it_announced(
        dsn: str, fake_slack: FakeSlack) -> None:
    """Slack takes a 300-sale burst, the process dies before the answer; 200 more sales arrive. The next process
    finds the burst by its metadata, settles exactly its 300 sales, and announces the 200 in a message of their
    own: nothing doubled, nothing lost."""
    async with start_bot(dsn, fake_slack) as first:
        await queue_sales(first, 0, 1)
        await first.drain()  # teaches the worker the channel's Slack id
        await queue_sales(first, 1, 301)
        await crash_after_slack_accepts(first, fake_slack, messages=2)
        await queue_sales(first, 301, 501)
    assert len(fake_slack.messages) == 2 and "300 new sales" in fake_slack.messages[1]["text"]
    async with start_bot(dsn, fake_slack) as second:
        await second.drain(ignore_pace=True)
        per_ts = await covering_messages(second)
    assert [announced(m) for m in fake_slack.messages] == [1, 300, 200]
    assert dict(per_ts) == {m["ts"]: announced(m) for m in fake_slack.messages}
    assert [c.method for c in fake_slack.calls].count("conversations.history") == 1
