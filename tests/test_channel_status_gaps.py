"""What /health says of a channel follows what Slack last showed: a join that failed for Slack's own trouble is not
a lasting refusal, a chart's share tells as much as a post does, and a channel name that now means another channel
(deleted and created anew) is not shown, nor posted to, by its old id."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from bot.delivery.channels import Membership
from tests.conftest import Bot, paid_checkout, post_report, start_bot
from tests.fakes import FakeSlack, Fault
from tests.test_report_delivery import EVENING

INVITE = "/invite @salespulse"


async def health(bot: Bot) -> str:
    return json.dumps((await bot.command("/health"))["blocks"])


async def stored(bot: Bot, logical: str) -> tuple[str, str | None]:
    """The membership and channel id stored for the channel as configured now."""
    row = await bot.deps.pool.fetchrow("SELECT membership, channel_id FROM channel_status WHERE logical = $1"
                                       " ORDER BY learned_at DESC LIMIT 1", logical)
    return row["membership"], row["channel_id"]


def standing(bot: Bot, logical: str) -> tuple[Membership, str | None]:
    assert bot.deps.channels is not None
    status = bot.deps.channels.find(logical)
    assert status is not None
    return status.membership, status.channel_id


# conversations.join's answers when Slack, not the channel, is in trouble: a 5xx (internal_error), a 429, and the
# documented service_unavailable / internal_error in an HTTP 200 (https://docs.slack.dev/reference/methods/conversations.join)
@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 429, "retry_after": 1},
                                   {"error": "service_unavailable"}, {"error": "internal_error"}])
async def test_a_join_failed_for_slacks_trouble_is_ok_once_a_post_goes_through(
        dsn: str, fake_slack: FakeSlack, fault: dict[str, Any]) -> None:
    fake_slack.fail_next(3, method="conversations.join", **fault)  # every start-up join
    async with start_bot(dsn, fake_slack) as bot:
        assert standing(bot, "sales")[0] is Membership.JOIN_FAILED
        await bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await bot.drain()
        assert [m["channel_id"] for m in fake_slack.messages] == ["C0SALES"]
        text = await health(bot)
        assert standing(bot, "sales") == (Membership.MEMBER, "C0SALES")
        assert await stored(bot, "sales") == ("member", "C0SALES")
    assert fake_slack.channels["C0SALES"].bot_member  # joined again: look-ups and charts work there
    assert "Slack channel sales*" not in text, text


@pytest.mark.parametrize(("refusal", "membership"), [("archived", Membership.ARCHIVED),
                                                      ("deleted", Membership.NOT_VISIBLE)])
async def test_a_refused_chart_share_marks_the_channel(dsn: str, fake_slack: FakeSlack, refusal: str,
                                                       membership: Membership) -> None:
    """files.completeUploadExternal refused (is_archived, channel_not_found): /health says so, as for a post."""
    async with start_bot(dsn, fake_slack, clock=lambda: EVENING, STORE_TIMEZONE="America/New_York") as bot:
        reporter = await post_report(bot)
        if refusal == "archived":
            fake_slack.channels["C0REPORTS"].archived = True
        else:
            del fake_slack.channels["C0REPORTS"]
        assert await reporter.upload_charts() == 0
        refused = [c.args.get("_ok") for c in fake_slack.calls if c.method == "files.completeUploadExternal"]
        assert refused == [False]
        assert standing(bot, "reports") == (membership, "C0REPORTS")
        assert await stored(bot, "reports") == (membership.value, "C0REPORTS")


async def test_a_chart_shared_shows_the_bot_in_the_channel(dsn: str, fake_slack: FakeSlack) -> None:
    """The bot could not join at start-up (no channels:join); the owner invited it since. A post cannot tell (it
    works without joining), but a share can: Slack shares a file only where the bot is a member."""
    fake_slack.chaos = lambda m: Fault(200, error="missing_scope") if m == "conversations.join" else None
    async with start_bot(dsn, fake_slack, clock=lambda: EVENING, STORE_TIMEZONE="America/New_York") as bot:
        fake_slack.chaos = None
        assert standing(bot, "reports")[0] is Membership.JOIN_FAILED
        fake_slack.channels["C0REPORTS"].bot_member = True  # /invite @salespulse
        reporter = await post_report(bot)
        assert await reporter.upload_charts() == 1
        text = await health(bot)
        assert standing(bot, "reports") == (Membership.MEMBER, "C0REPORTS")
        assert await stored(bot, "reports") == ("member", "C0REPORTS")
    assert "Slack channel reports*" not in text, text


async def test_a_channel_created_anew_under_its_name_is_posted_to_by_its_new_id(
        dsn: str, fake_slack: FakeSlack) -> None:
    """#sales-notifications is deleted and created again (a new id) while the bot runs: the old id answers
    channel_not_found, but the name is there — /health must not ask for an invitation, and the sale arrives."""
    async with start_bot(dsn, fake_slack) as bot:
        del fake_slack.channels["C0SALES"]
        fake_slack.add_channel("C0SALES2", "sales-notifications")
        await bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await bot.drain(until_idle=False)  # refused at the old id, held
        text = await health(bot)
        assert standing(bot, "sales") == (Membership.MEMBER, "C0SALES2")
        assert await stored(bot, "sales") == ("member", "C0SALES2")
        await bot.deps.pool.execute("UPDATE outbox SET available_at = now()")  # the held retry, now due
        await bot.drain()
    assert INVITE not in text and "Slack channel sales*" not in text, text
    assert [m["channel_id"] for m in fake_slack.messages] == ["C0SALES2"]


async def test_a_stale_stored_id_is_replaced_once_it_is_refused(dsn: str, fake_slack: FakeSlack) -> None:
    """Restarted while Slack could not list channels: the id stored last time (of a channel since deleted, its name
    now another channel's) is all there is. Once Slack refuses it, the name is looked up again."""
    async with start_bot(dsn, fake_slack) as before:  # as stored before #sales-notifications was created anew
        await before.deps.pool.execute("UPDATE channel_status SET channel_id = 'C0GONE' WHERE logical = 'sales'")
    fake_slack.fail_next(1, status=500, method="conversations.list")
    async with start_bot(dsn, fake_slack) as bot:
        await adopted(bot, "sales", "C0GONE")
        await bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await bot.drain(until_idle=False)  # refused at the old id, held
        assert standing(bot, "sales") == (Membership.MEMBER, "C0SALES")
        await bot.deps.pool.execute("UPDATE outbox SET available_at = now()")  # the held retry, now due
        await bot.drain()
        assert await stored(bot, "sales") == ("member", "C0SALES")
    assert [m["channel_id"] for m in fake_slack.messages] == ["C0SALES"]


async def adopted(bot: Bot, logical: str, channel_id: str, *, within: float = 5.0) -> None:
    """Wait until `bot` has taken the stored standing with this id (it reads the table once its listener is up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while standing(bot, logical)[1] != channel_id:
        assert loop.time() < deadline, standing(bot, logical)
        await asyncio.sleep(0.02)
