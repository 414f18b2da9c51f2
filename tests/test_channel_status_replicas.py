"""Several replicas share one PostgreSQL, each with its own view of the channels. What one learns from Slack (the
owner invited the bot, or removed it) must show in /health whichever replica answers, not only on the one that
happened to post there since."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from bot.delivery.channels import Membership
from queries import channel_status
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


async def test_a_failed_standing_write_is_written_again(dsn: str, fake_slack: FakeSlack,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails (PostgreSQL slower than WRITE_SECONDS, a blip) is written again: the replica that learned the
    news never calls it a change again, so without it every other replica would keep asking for /invite."""
    fake_slack.add_channel("C0FIN", "finance", private=True)
    async with start_bot(dsn, fake_slack, SLACK_SALES_CHANNEL="#finance") as a, \
            start_bot(dsn, fake_slack, SLACK_SALES_CHANNEL="#finance") as b:
        await a.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await a.drain(until_idle=False)
        assert INVITE in await health(b)
        fake_slack.channels["C0FIN"].bot_member = True  # the owner types /invite @salespulse

        original, failures = channel_status.record, list[bool]()

        # The database does not answer within WRITE_SECONDS, once.
        async def slow_once(*args: Any, **kwargs: Any) -> Any:
            if not failures:
                failures.append(True)
                raise TimeoutError
            return await original(*args, **kwargs)

        monkeypatch.setattr(channel_status, "record", slow_once)
        await a.deps.pool.execute("UPDATE outbox SET available_at = now()")  # the held retry, now due
        await a.drain()  # replica a's post goes through; storing what it learned fails once
        assert failures and len(fake_slack.messages) == 1
        for n in range(2, 5):  # later posts from a, the database healthy again
            await a.stripe(paid_checkout(n, dt.datetime.now(dt.UTC)))
            await a.drain(ignore_pace=True)
        assert len(fake_slack.messages) == 4
        text = await health(b)
    assert INVITE not in text, text


async def test_news_whose_write_failed_gives_way_only_to_a_standing_stored_after_it(
        dsn: str, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Learned here but not stored (the database failed), a standing is newer than what was stored before it was
    learned, and older than what another replica stored since: that one is taken, and the failed write not retried
    over it."""
    fake_slack.add_channel("C0FIN", "finance", private=True, member=True)
    async with start_bot(dsn, fake_slack, SLACK_SALES_CHANNEL="#finance") as a:
        directory = a.deps.channels
        assert directory is not None

        def sales() -> Membership:
            status = directory.find("sales")
            assert status is not None
            return status.membership

        before = await channel_status.stored(a.deps.pool)  # member, stored at start-up
        original = channel_status.record

        async def down(*args: Any, **kwargs: Any) -> Any:
            raise TimeoutError

        monkeypatch.setattr(channel_status, "record", down)
        fake_slack.channels["C0FIN"].bot_member = False  # removed; storing it fails
        await a.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await a.drain(until_idle=False)
        assert sales() is Membership.PRIVATE_NOT_MEMBER
        directory.adopt(before)  # stored before the removal was learned: older news
        assert sales() is Membership.PRIVATE_NOT_MEMBER

        monkeypatch.setattr(channel_status, "record", original)
        fake_slack.channels["C0FIN"].bot_member = True  # invited again, and another replica stored it since
        since = await a.deps.pool.fetchval("SELECT clock_timestamp()")
        directory.adopt([dataclasses.replace(row, learned_at=since) for row in before if row.logical == "sales"])
        assert sales() is Membership.MEMBER
        await a.deps.pool.execute("UPDATE outbox SET available_at = now()")  # the held retry, now due
        await a.drain()
        stored = {row.logical: row.membership for row in await channel_status.stored(a.deps.pool)}
    assert stored["sales"] == "member"  # the stale removal was not written over it
