"""Several replicas share one PostgreSQL, each with its own view of the channels. What one learns from Slack (the
owner invited the bot, or removed it) must show in /health whichever replica answers, not only on the one that
happened to post there since."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from bot.delivery.channels import Membership
from tests.conftest import Bot, paid_checkout, start_bot
from tests.fakes import FakeSlack

INVITE = "/invite @salespulse"


async def health(bot: Bot) -> str:
    return json.dumps((await bot.command("/health"))["blocks"])


async def learned(bot: Bot, logical: str, membership: Membership, *, within: float = 5.0) -> None:
    """Wait until `bot` has heard (from another replica) that the channel's standing is `membership`."""
    assert bot.deps.channels is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (status := bot.deps.channels.find(logical)) is None or status.membership is not membership:
        assert loop.time() < deadline, f"never heard it: {status}"
        await asyncio.sleep(0.02)


async def test_health_on_another_replica_stops_asking_for_the_invitation(dsn: str, fake_slack: FakeSlack) -> None:
    fake_slack.add_channel("C0FIN", "finance", private=True)
    async with start_bot(dsn, fake_slack, SLACK_SALES_CHANNEL="#finance") as a, \
            start_bot(dsn, fake_slack, SLACK_SALES_CHANNEL="#finance") as b:
        await a.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await a.drain(until_idle=False)
        assert INVITE in await health(b)
        fake_slack.channels["C0FIN"].bot_member = True  # the owner types /invite @salespulse
        await a.deps.pool.execute("UPDATE outbox SET available_at = now()")  # the held retry, now due
        await a.drain()  # replica a posts; b has not posted since
        assert [m["channel_id"] for m in fake_slack.messages] == ["C0FIN"]
        text = await health(b)
    assert INVITE not in text and "Slack channel sales*" not in text, text


async def test_a_replica_that_missed_a_removal_still_records_the_new_invitation(
        dsn: str, fake_slack: FakeSlack) -> None:
    """a starts a member; b learns the bot was removed; once invited again, a's post must say so to everyone,
    though a itself never saw the channel refuse (it hears what b learned, so the post is news)."""
    fake_slack.add_channel("C0FIN", "finance", private=True, member=True)
    async with start_bot(dsn, fake_slack, SLACK_SALES_CHANNEL="#finance") as a, \
            start_bot(dsn, fake_slack, SLACK_SALES_CHANNEL="#finance") as b:
        fake_slack.channels["C0FIN"].bot_member = False  # removed
        await b.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await b.drain(until_idle=False)
        await learned(a, "sales", Membership.PRIVATE_NOT_MEMBER)  # b's news, heard by a
        fake_slack.channels["C0FIN"].bot_member = True  # invited again
        await a.deps.pool.execute("UPDATE outbox SET available_at = now()")
        await a.drain()
        assert [m["channel_id"] for m in fake_slack.messages] == ["C0FIN"]
        text = await health(b)
    assert INVITE not in text, text


async def test_a_replica_whose_channel_list_failed_shows_what_the_others_know(
        dsn: str, fake_slack: FakeSlack) -> None:
    """Slack blips while b starts: its own conversations.list fails, but a's knowledge is not hidden by it."""
    async with start_bot(dsn, fake_slack) as a:
        assert "the bot is in each" in await health(a)
        fake_slack.fail_next(1, status=500, method="conversations.list")
        async with start_bot(dsn, fake_slack) as b:
            text = await health(b)
    assert "not checked yet" not in text and "the bot is in each" in text, text


async def test_standing_is_written_on_a_change_only(dsn: str, fake_slack: FakeSlack) -> None:
    """The hot path stays cheap: posts to a channel whose standing is known write nothing."""
    async with start_bot(dsn, fake_slack) as bot:
        stored = await bot.deps.pool.fetch("SELECT logical, membership, learned_at FROM channel_status"
                                           " ORDER BY logical")
        assert [(r["logical"], r["membership"]) for r in stored] == [
            ("alerts", "member"), ("reports", "member"), ("sales", "member")]
        for n in range(1, 4):
            await bot.stripe(paid_checkout(n, dt.datetime.now(dt.UTC)))
            await bot.drain(ignore_pace=True)
        assert len(fake_slack.messages) == 3
        again = await bot.deps.pool.fetch("SELECT logical, membership, learned_at FROM channel_status"
                                          " ORDER BY logical")
    assert again == stored
