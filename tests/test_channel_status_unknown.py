"""conversations.list failing at start-up (Slack down, a network blip) leaves the channels "not checked yet". Posts
going through tell what the list would have: /health must stop calling the channel unknown once one does."""

from __future__ import annotations

import datetime as dt
import json

from bot.delivery.channels import Membership
from tests.conftest import paid_checkout, start_bot
from tests.fakes import FakeSlack


async def test_a_channel_unknown_since_start_up_is_known_once_a_post_goes_through(
        dsn: str, fake_slack: FakeSlack) -> None:
    fake_slack.fail_next(1, status=500, method="conversations.list")
    async with start_bot(dsn, fake_slack) as bot:
        assert bot.deps.channels is not None
        before = json.dumps((await bot.command("/health"))["blocks"])
        assert "*Slack channel sales* #sales-notifications: not checked yet" in before
        await bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await bot.drain()
        assert [m["channel_id"] for m in fake_slack.messages] == ["C0SALES"]
        status = bot.deps.channels.find("sales")
        after = json.dumps((await bot.command("/health"))["blocks"])
    assert status is not None and (status.membership, status.channel_id) == (Membership.MEMBER, "C0SALES"), status
    assert fake_slack.channels["C0SALES"].bot_member  # joined, as start-up would have: look-ups and charts work
    assert "Slack channel sales*" not in after, after  # no longer listed as a problem
    assert "*Slack channel alerts* #system-alerts: not checked yet" in after  # nothing went there: still unknown


async def test_a_private_channel_unknown_since_start_up_is_a_member_once_a_post_goes_through(
        dsn: str, fake_slack: FakeSlack) -> None:
    fake_slack.add_channel("C0FIN", "finance", private=True, member=True)
    fake_slack.fail_next(1, status=500, method="conversations.list")
    async with start_bot(dsn, fake_slack, SLACK_SALES_CHANNEL="#finance") as bot:
        await bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await bot.drain()
        assert bot.deps.channels is not None
        status = bot.deps.channels.find("sales")
    assert status is not None and (status.membership, status.label) == (Membership.MEMBER, "#finance"), status
    assert "conversations.join" not in [c.method for c in fake_slack.calls if c.args.get("channel") == "C0FIN"]


async def test_when_slack_cannot_say_either_a_channel_taking_posts_is_no_longer_unknown(
        dsn: str, fake_slack: FakeSlack) -> None:
    """conversations.info fails too: the channel takes posts, so it is usable — public, not joined (joined on its
    first read), the bot's standing there not guessed."""
    fake_slack.fail_next(1, status=500, method="conversations.list")
    async with start_bot(dsn, fake_slack) as bot:
        fake_slack.fail_next(1, status=500, method="conversations.info")
        await bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await bot.drain()
        assert bot.deps.channels is not None
        status = bot.deps.channels.find("sales")
    assert status is not None and status.membership is Membership.PUBLIC_NOT_JOINED and status.usable, status
