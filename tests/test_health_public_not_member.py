"""note_delivered turns a NOT_VISIBLE channel into MEMBER after one post goes through. NOT_VISIBLE also means "no such
channel" (channels.py Membership: Slack cannot tell them apart): a public channel created after start-up takes posts
by chat:write.public without the bot joining, so /health then says "the bot is in each" when it is in none."""

from __future__ import annotations

import datetime as dt
import json

from bot.delivery.channels import Membership
from tests.conftest import paid_checkout, start_bot
from tests.fakes import FakeSlack


async def test_health_does_not_call_the_bot_a_member_of_a_public_channel_it_never_joined(
        dsn: str, fake_slack: FakeSlack) -> None:
    async with start_bot(dsn, fake_slack, SLACK_SALES_CHANNEL="#new-sales") as bot:  # not created yet
        await bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await bot.drain(until_idle=False)
        assert await bot.deps.pool.fetchval("SELECT last_error FROM outbox WHERE kind = 'sale'") == \
            "channel_not_found"
        fake_slack.add_channel("C0NEW", "new-sales")  # the operator creates it, public; nobody invites the bot
        await bot.deps.pool.execute("UPDATE outbox SET available_at = now()")
        await bot.drain()
        assert [m["channel_id"] for m in fake_slack.messages] == ["C0NEW"]
        assert not fake_slack.channels["C0NEW"].bot_member  # posted by chat:write.public, not joined
        body = await bot.command("/health")
    text = json.dumps(body["blocks"], ensure_ascii=False)
    assert "the bot is in each" not in text and "the bot is a member" not in text, text


async def test_when_slack_cannot_say_a_channel_not_known_private_is_called_public_not_joined(
        dsn: str, fake_slack: FakeSlack) -> None:
    """conversations.info (asked once the channel takes posts) answers a 500: a channel never seen private is taken
    for a public one the bot posts to without being in it, not for one it was invited to."""
    async with start_bot(dsn, fake_slack, SLACK_SALES_CHANNEL="#new-sales") as bot:
        await bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await bot.drain(until_idle=False)
        fake_slack.add_channel("C0NEW", "new-sales")
        fake_slack.fail_next(1, status=500, method="conversations.info")
        await bot.deps.pool.execute("UPDATE outbox SET available_at = now()")
        await bot.drain()
        assert [m["channel_id"] for m in fake_slack.messages] == ["C0NEW"]
        assert [c.answered for c in fake_slack.calls if c.method == "conversations.info"] == [500]
        assert bot.deps.channels is not None
        status = bot.deps.channels.find("sales")
        assert status is not None and status.membership is Membership.PUBLIC_NOT_JOINED, status
