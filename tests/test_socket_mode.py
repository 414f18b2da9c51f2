"""Socket Mode end to end: apps.connections.open with the app token, slash commands over a real WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from tests.blockkit import assert_valid_message
from tests.conftest import Bot, start_bot
from tests.fake_socket import FakeSocketMode
from tests.fakes import FakeSlack

APP_TOKEN = "xapp-1-test"


@pytest.fixture
async def socket(fake_slack: FakeSlack) -> AsyncIterator[FakeSocketMode]:
    """A fake Socket Mode endpoint, handed out by the fake Web API's apps.connections.open."""
    fake = await FakeSocketMode().start()
    fake_slack.socket_url = fake.url
    try:
        yield fake
    finally:
        await fake.stop()


def socket_bot(dsn: str, fake_slack: FakeSlack) -> AbstractAsyncContextManager[Bot]:
    """The bot with a bot token and an app token, and no signing secret (Socket Mode only)."""
    return start_bot(dsn, fake_slack, SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET=None)


async def command(socket: FakeSocketMode, command: str, text: str = "") -> dict[str, Any]:
    """Send a slash command envelope; return the payload of the app's answer to it (the ack body)."""
    payload = {"token": "legacy", "team_id": "T000", "team_domain": "store", "channel_id": "C123",
               "channel_name": "sales", "user_id": "U123", "user_name": "owner", "command": command,
               "text": text, "api_app_id": "A000", "is_enterprise_install": "false",
               "response_url": "https://hooks.slack.com/commands/T000/1/x", "trigger_id": "1.2.3"}
    frame = await socket.send("slash_commands", payload)
    answer: dict[str, Any] = frame["payload"]
    return answer


def connection_opens(fake_slack: FakeSlack) -> list[int]:
    """The HTTP status of every apps.connections.open call, in order."""
    return [c.answered for c in fake_slack.calls if c.method == "apps.connections.open"]


async def test_sales_command_is_answered_over_the_socket(dsn: str, fake_slack: FakeSlack,
                                                         socket: FakeSocketMode) -> None:
    """With an app token the bot connects with it and answers /sales over the socket, ephemeral Block Kit."""
    async with socket_bot(dsn, fake_slack):
        await asyncio.wait_for(socket.connected.wait(), 5)
        assert connection_opens(fake_slack) == [200]
        opened = next(c for c in fake_slack.calls if c.method == "apps.connections.open")
        assert opened.headers.get("Authorization") == f"Bearer {APP_TOKEN}"

        answer = await command(socket, "/sales")

    assert answer["response_type"] == "ephemeral"
    assert_valid_message({"text": answer["text"], "blocks": answer["blocks"]})
    headers = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "header"]
    assert headers and headers[0].startswith("📊 Sales"), headers
    assert socket.connections == 1


async def test_help_and_health_are_answered_over_the_socket(dsn: str, fake_slack: FakeSlack,
                                                            socket: FakeSocketMode) -> None:
    """/sales help gets the usage text and /health the "🩺 Health" header, both over the socket."""
    async with socket_bot(dsn, fake_slack):
        await asyncio.wait_for(socket.connected.wait(), 5)
        usage = await command(socket, "/sales", "help")
        health = await command(socket, "/health")

    assert usage["response_type"] == "ephemeral"
    assert_valid_message({"text": usage["text"], "blocks": usage["blocks"]})
    assert "*/sales* `[period]`" in usage["blocks"][0]["text"]["text"]
    assert health["response_type"] == "ephemeral"
    assert_valid_message({"text": health["text"], "blocks": health["blocks"]})
    assert health["blocks"][0]["type"] == "header"
    assert health["blocks"][0]["text"]["text"] == "🩺 Health"


async def test_starts_while_slack_is_down_and_connects_once_it_answers(dsn: str, fake_slack: FakeSlack,
                                                                        socket: FakeSocketMode) -> None:
    """apps.connections.open failing does not hold start-up back; the bot connects once Slack answers."""
    fake_slack.fail_next(2, status=500, method="apps.connections.open")  # start-up also lists and joins channels
    async with socket_bot(dsn, fake_slack) as bot:
        resp = await bot.client.get("/healthz")
        assert resp.status == 200, await resp.text()
        assert not socket.connected.is_set()

        await asyncio.wait_for(socket.connected.wait(), 10)  # retries after 1 s, then 2 s
        assert connection_opens(fake_slack) == [500, 500, 200]
        answer = await command(socket, "/health")

    assert answer["blocks"][0]["text"]["text"] == "🩺 Health"
    assert all(c.headers.get("Authorization") == f"Bearer {APP_TOKEN}"
               for c in fake_slack.calls if c.method == "apps.connections.open")
