"""Share in channel when the response_url is spent: Slack takes it for 30 minutes and 5 uses, then answers
404 `expired_url` or `used_url`; the bot posts with its token instead, or tells the user why it cannot."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from tests.blockkit import assert_valid_message
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack


@pytest.fixture
async def shop(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot, and a public channel #general (C123) it has never joined, where /sales is typed."""
    fake_slack.add_channel("C123", "general")
    async with start_bot(dsn, fake_slack) as bot:
        yield bot


async def click_share(bot: Bot, *, hook: str = "share", settle: int = 1) -> None:
    """Type /sales, click its Share button; wait until `settle` more calls answered (Bolt acks first)."""
    body = await bot.command("/sales", "yesterday", channel_id="C123")
    button = next(e for b in body["blocks"] if b["type"] == "actions" for e in b["elements"])
    payload = {"type": "block_actions", "user": {"id": "U123"}, "channel": {"id": "C123"}, "team": {"id": "T000"},
               "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2",
               "response_url": bot.slack_api.url.replace("/api/", f"/hooks/{hook}"),
               "container": {"type": "message", "is_ephemeral": True},
               "actions": [{"type": "button", "action_id": button["action_id"], "block_id": "b",
                            "value": button["value"], "action_ts": "1"}]}
    before = len(bot.slack_api.calls)
    assert (await bot.slack({"payload": json.dumps(payload)})).status == 200
    for _ in range(100):
        if len(bot.slack_api.calls) >= before + settle:
            return
        await asyncio.sleep(0.05)


async def test_expired_response_url_falls_back_to_chat_post_message(shop: Bot) -> None:
    """After 30 minutes Slack answers 404 expired_url: the answer is posted with chat.postMessage instead."""
    shop.slack_api.dead_hooks["share"] = "expired_url"
    await click_share(shop, settle=2)
    [hook] = [c for c in shop.slack_api.calls if c.method == "hook:share"]
    assert hook.answered == 404 and hook.args["response_type"] == "in_channel"
    [post] = shop.slack_api.posted()
    assert post["channel"] == "C123" and "Yesterday" in post["text"]
    assert "Shared by <@U123>" in json.dumps(post["blocks"])
    assert_valid_message(post)
    assert not shop.slack_api.channels["C123"].bot_member  # chat:write.public: no need to join to post


async def test_sixth_use_of_a_response_url_falls_back_too(shop: Bot) -> None:
    """Slack takes a response_url 5 times; a Share after that (used_url) still reaches the channel."""
    shop.slack_api.hook_uses = 5
    for _ in range(3):  # 2 uses each: the in_channel post and deleting the ephemeral original
        await click_share(shop, settle=2)
    assert [c.answered for c in shop.slack_api.calls if c.method == "hook:share"] == [200] * 5 + [404]
    await click_share(shop, settle=2)
    assert shop.slack_api.dead_hooks == {"share": "used_url"}
    assert len(shop.slack_api.posted()) == 1 and shop.slack_api.posted()[0]["channel"] == "C123"


async def test_fallback_joins_when_slack_wants_membership(shop: Bot) -> None:
    """Without chat:write.public Slack answers not_in_channel: the bot joins the public channel, posts once."""
    shop.slack_api.dead_hooks["share"] = "expired_url"
    shop.slack_api.fail_next(1, error="not_in_channel")  # the hook is dead: the next API call is the post
    await click_share(shop, settle=4)
    sequence = [c.method for c in shop.slack_api.calls if not c.method.startswith("hook:")]
    assert sequence[-3:] == ["chat.postMessage", "conversations.join", "chat.postMessage"]
    assert shop.slack_api.channels["C123"].bot_member and len(shop.slack_api.posted()) == 1


async def test_user_is_told_why_when_the_bot_cannot_post_either(shop: Bot) -> None:
    """A spent response_url and a channel the bot may not post in: an ephemeral note says why and what to do."""
    shop.slack_api.dead_hooks["share"] = "used_url"
    shop.slack_api.fail_next(1, error="restricted_action")  # e.g. a channel where only admins post
    await click_share(shop, settle=3)
    assert shop.slack_api.posted() == []
    [note] = shop.slack_api.posted("chat.postEphemeral")
    assert note["channel"] == "C123" and note["user"] == "U123"
    assert "30 minutes and 5 uses" in note["text"] and "(restricted_action)" in note["text"]
    assert "/invite @salespulse" in note["text"]
