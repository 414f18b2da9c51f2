"""Attempts whose outcome is in doubt or known: a refused burst is given up like a refused ping, a post whose answer
got lost is not sent again while Slack cannot say whether it landed, and it is looked for where it was sent."""

from __future__ import annotations

import datetime as dt

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.senders import UNEXPECTED_TRIES, Seen
from bot.delivery.webapi import WebApiSender
from tests.conftest import Bot, crash_after_slack_accepts, start_bot
from tests.fakes import FakeSlack
from tests.test_delivery import sales_covered, send_sales
from tests.test_slack_refusals import passes

UNKNOWN_ERROR = "some_error_slack_adds_next_year"


def post_calls(bot: Bot) -> list[dict[str, object]]:
    """Every chat.postMessage call so far, answered or not."""
    return [c.args for c in bot.slack_api.calls if c.method == "chat.postMessage"]


async def sale_statuses(bot: Bot) -> list[str]:
    return [r["status"] for r in await bot.deps.pool.fetch("SELECT status FROM outbox WHERE kind = 'sale'")]


async def _landed_then_crashed(dsn: str, fake_slack: FakeSlack, *, burst: bool) -> None:
    """A first sale goes out; the next ping (or a burst of five) reaches Slack, and the process dies before the
    answer: the message is in the channel, its attempt record in doubt."""
    async with start_bot(dsn, fake_slack) as first:
        await send_sales(first, 1)
        await first.drain()
        await send_sales(first, 5 if burst else 1, start=1)
        await crash_after_slack_accepts(first, fake_slack, messages=2)
    assert len(fake_slack.messages) == 2


# 1. A refused burst is given up like any refused message.

async def test_unknown_error_on_a_burst_is_given_up_after_a_few_tries(bot: Bot) -> None:
    """README: an error the bot does not know is tried three times, then the message is given up. A burst of three
    sales refused every time is failed after UNEXPECTED_TRIES calls (it used to be looked up, not found, forgotten
    and claimed afresh with no failures: tried for ever, holding the channel)."""
    bot.slack_api.fail_next(100, error=UNKNOWN_ERROR, method="chat.postMessage")
    await send_sales(bot, 3)
    await passes(bot, UNEXPECTED_TRIES + 7)
    assert len(post_calls(bot)) == UNEXPECTED_TRIES, await sale_statuses(bot)
    assert await sale_statuses(bot) == ["failed"] * 3
    assert not [c for c in bot.slack_api.calls if c.method == "conversations.history"]  # a refusal is no doubt


async def test_a_burst_refused_between_rate_limits_is_still_given_up(bot: Bot) -> None:
    """A 429 between the refusals of a burst does not reset its count: the record of a burst sent again is kept
    over a 429, so it is failed after UNEXPECTED_TRIES refusals (five calls), not tried again from zero."""
    for _ in range(2):
        bot.slack_api.fail_next(1, error=UNKNOWN_ERROR, method="chat.postMessage")
        bot.slack_api.fail_next(1, status=429, retry_after=1, method="chat.postMessage")
    bot.slack_api.fail_next(100, error=UNKNOWN_ERROR, method="chat.postMessage")
    await send_sales(bot, 3)
    await passes(bot, UNEXPECTED_TRIES + 9)
    assert len(post_calls(bot)) == UNEXPECTED_TRIES + 2, await sale_statuses(bot)
    assert await sale_statuses(bot) == ["failed"] * 3


# 2. A look-up Slack cannot answer now sends nothing: it is tried again later.

async def test_a_landed_post_is_not_sent_again_when_the_history_lookup_fails_once(
        dsn: str, fake_slack: FakeSlack) -> None:
    """The look-up after a restart answers 500 once (Slack still flaky): the worker cannot tell whether the ping is
    in the channel, so it sends nothing, keeps the attempt and looks again later — and finds it."""
    await _landed_then_crashed(dsn, fake_slack, burst=False)
    async with start_bot(dsn, fake_slack) as second:
        fake_slack.fail_next(1, status=500, method="conversations.history")
        await passes(second, 1)
        assert len(fake_slack.messages) == 2
        row = await second.deps.pool.fetchrow("SELECT status, attempts, available_at > now() AS later FROM outbox"
                                              " WHERE dedupe_key = (SELECT max(dedupe_key) FROM outbox)")
        assert tuple(row) == ("pending", 0, True)  # put off, not counted as a failed attempt
        await passes(second, 2)
        assert set((await sales_covered(second)).values()) == {1}
    assert len(fake_slack.messages) == 2, [m["text"] for m in fake_slack.messages]


async def test_a_landed_post_is_not_sent_again_when_the_history_lookup_is_rate_limited(
        dsn: str, fake_slack: FakeSlack) -> None:
    """The look-up answers 429 (conversations.history is Tier 3): nothing is sent, the channel waits Retry-After,
    then the look-up finds the ping."""
    await _landed_then_crashed(dsn, fake_slack, burst=False)
    async with start_bot(dsn, fake_slack) as second:
        fake_slack.fail_next(1, status=429, retry_after=2, method="conversations.history")
        await passes(second, 1)
        pace = await second.deps.pool.fetchval("SELECT next_post_at - now() FROM channel_pace WHERE channel = 'sales'")
        assert pace > dt.timedelta(seconds=1.5)  # Retry-After honoured by the channel's pace
        await passes(second, 2)
        assert set((await sales_covered(second)).values()) == {1}
    assert len(fake_slack.messages) == 2, [m["text"] for m in fake_slack.messages]


async def test_a_landed_burst_is_not_sent_again_when_the_history_lookup_fails_once(
        dsn: str, fake_slack: FakeSlack) -> None:
    """A burst reached Slack before the crash; the look-up answers 500 once: the burst is not sent again."""
    await _landed_then_crashed(dsn, fake_slack, burst=True)
    assert "5 new sales" in fake_slack.messages[1]["text"]
    async with start_bot(dsn, fake_slack) as second:
        fake_slack.fail_next(1, status=500, method="conversations.history")
        await passes(second, 3)
        assert set((await sales_covered(second)).values()) == {1}
    assert len(fake_slack.messages) == 2, [m["text"] for m in fake_slack.messages]


async def test_a_landed_burst_is_not_sent_again_when_the_history_lookup_is_rate_limited(
        dsn: str, fake_slack: FakeSlack) -> None:
    """Same with a 429 on the look-up: the burst's record stays in doubt (it is not forgotten and its sales are not
    claimed again), and the next look-up finds it."""
    await _landed_then_crashed(dsn, fake_slack, burst=True)
    async with start_bot(dsn, fake_slack) as second:
        fake_slack.fail_next(1, status=429, retry_after=1, method="conversations.history")
        await passes(second, 1)
        assert await second.deps.pool.fetchval("SELECT count(*) FROM delivery_attempts WHERE covers IS NOT NULL") == 1
        await passes(second, 2)
        assert set((await sales_covered(second)).values()) == {1}
    assert len(fake_slack.messages) == 2, [m["text"] for m in fake_slack.messages]


async def test_when_slack_can_never_tell_the_message_is_sent_again(dsn: str, fake_slack: FakeSlack) -> None:
    """Without the history scope the look-up can never answer: the ping is sent again (at least once, as with
    incoming webhooks), not held for ever."""
    await _landed_then_crashed(dsn, fake_slack, burst=False)
    async with start_bot(dsn, fake_slack) as second:
        fake_slack.fail_next(1, error="missing_scope", method="conversations.history")
        await passes(second, 2)
        assert set((await sales_covered(second)).values()) == {1}
    assert len(fake_slack.messages) == 3


async def test_the_lookup_tells_later_from_never(fake_slack: FakeSlack) -> None:
    """find(): a 5xx, a 429 (with its Retry-After) or a timeout is "not now"; a refusal such as missing_scope is
    "never"; otherwise found or not found."""
    fake_slack.channels["C0SALES"].bot_member = True
    client = AsyncWebClient(token="xoxb-test", base_url=fake_slack.url, retry_handlers=[], timeout=1)
    sender = WebApiSender(client, channels={"sales": "C0SALES"})
    posted = await sender.post("sales", {"text": "a sale"}, ref=5)

    async def find() -> tuple[Seen, float]:
        seen = await sender.find(channel_id="C0SALES", ref=5, since=0)
        return seen.seen, seen.retry_after

    fake_slack.fail_next(1, status=503, method="conversations.history")
    assert await find() == (Seen.LATER, 0.0)
    fake_slack.fail_next(1, status=429, retry_after=7, method="conversations.history")
    assert await find() == (Seen.LATER, 7.0)
    fake_slack.fail_next(1, status=200, accept=True, delay=2, method="conversations.history")
    assert await find() == (Seen.LATER, 0.0)
    fake_slack.fail_next(1, error="missing_scope", method="conversations.history")
    assert await find() == (Seen.NEVER, 0.0)
    found = await sender.find(channel_id="C0SALES", ref=5, since=0)
    assert (found.seen, found.ts) == (Seen.FOUND, posted.ts)
    assert (await sender.find(channel_id="C0SALES", ref=6, since=0)).seen is Seen.NOT_FOUND


# 3. An unconfirmed post is looked for in the channel it was sent to.

async def _move_sales_channel(bot: Bot) -> None:
    """An admin moves the sales channel in Settings (what bot/settings/follow.py does on every replica)."""
    bot.slack_api.add_channel("C0NEWSALES", "new-sales", member=True)
    channels = {"sales": "C0NEWSALES", "alerts": "#system-alerts", "reports": "#daily-reports"}
    bot.deps.sender.retarget(channels)
    assert bot.deps.channels is not None and bot.deps.channels.reconfigure(channels)
    await bot.deps.channels.start()


def shown_in(bot: Bot, channel_id: str) -> list[str]:
    return [m["text"] for m in bot.slack_api.messages if m["channel_id"] == channel_id]


async def test_after_the_channel_moved_an_unconfirmed_post_is_looked_up_where_it_was_sent(bot: Bot) -> None:
    """The worker had learnt the old channel's id (channel_pace) when the channel moved; a ping posted to the new
    channel lands but its answer is lost. It is looked for in the new channel, where it went, and not sent twice."""
    await send_sales(bot, 1)
    await bot.drain()
    assert await bot.deps.pool.fetchval("SELECT slack_channel_id FROM channel_pace WHERE channel='sales'") == "C0SALES"
    await _move_sales_channel(bot)
    await send_sales(bot, 1, start=1)
    await crash_after_slack_accepts(bot, bot.slack_api, messages=2)
    assert bot.slack_api.messages[1]["channel_id"] == "C0NEWSALES"
    await passes(bot, 3)
    looked_in = [c.args.get("channel") for c in bot.slack_api.calls if c.method == "conversations.history"]
    assert shown_in(bot, "C0NEWSALES") == ["💰 New Sale: $30.00"], f"history looked in {looked_in}"
    assert set((await sales_covered(bot)).values()) == {1}


async def test_after_the_channel_moved_an_unconfirmed_burst_is_looked_up_where_it_was_sent(bot: Bot) -> None:
    """Same with a burst of five sales: announced once in the new channel."""
    await send_sales(bot, 1)
    await bot.drain()
    await _move_sales_channel(bot)
    await send_sales(bot, 5, start=1)
    await crash_after_slack_accepts(bot, bot.slack_api, messages=2)
    await passes(bot, 3)
    assert len(shown_in(bot, "C0NEWSALES")) == 1, shown_in(bot, "C0NEWSALES")
    assert set((await sales_covered(bot)).values()) == {1}


@pytest.mark.parametrize("sales", [1, 5], ids=["a ping", "a burst of five"])
async def test_a_post_that_landed_before_the_channel_moved_is_found_in_the_old_channel(bot: Bot, sales: int) -> None:
    """The opposite order: the ping (or burst) landed in the old channel, its answer lost, then the channel moved.
    It is looked for in the old channel (where it went), found, and not posted again in the new one."""
    await send_sales(bot, 1)
    await bot.drain()
    await send_sales(bot, sales, start=1)
    await crash_after_slack_accepts(bot, bot.slack_api, messages=2)
    await _move_sales_channel(bot)
    await passes(bot, 3)
    assert len(shown_in(bot, "C0SALES")) == 2 and shown_in(bot, "C0NEWSALES") == []
    assert set((await sales_covered(bot)).values()) == {1}
