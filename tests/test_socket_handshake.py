"""Socket Mode when the WebSocket handshake fails (Slack's edge answers 503 for a few seconds) after
apps.connections.open handed out a URL. Slack's URLs are temporary ("Generate a temporary Socket Mode WebSocket
URL", apps.connections.open): the bot must ask for a new one, with backoff, not retry the dead one for ever
(slack_sdk's connect() does, every ping_interval), at start-up and on reconnect."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.conftest import start_bot
from tests.fake_socket import TicketedSocket
from tests.fakes import FakeSlack

APP_TOKEN = "xapp-1-test"
OUTAGE = 4.0  # seconds of 503s from the edge: longer than a URL's life (3 s), shorter than the SDK's retry (10 s)
WITHIN = 20.0  # the bot's backoff (1, 2, 4 s) connects well within this; the SDK's same-URL retry never does


@pytest.fixture
async def socket(fake_slack: FakeSlack) -> AsyncIterator[TicketedSocket]:
    fake = TicketedSocket(lifetime=3.0)
    await fake.start()
    fake_slack.socket_urls = fake.issue
    try:
        yield fake
    finally:
        await fake.stop()


async def _connected_within(socket: TicketedSocket, fake_slack: FakeSlack, what: str) -> None:
    try:
        await asyncio.wait_for(socket.connected.wait(), WITHIN)
    except TimeoutError:
        opens = [c.answered for c in fake_slack.calls if c.method == "apps.connections.open"]
        raise AssertionError(f"not {what} {WITHIN:.0f} s after a {OUTAGE:.0f} s handshake outage; "
                             f"apps.connections.open calls: {opens}; handshakes refused: {socket.refused}") from None


async def test_connects_when_the_edge_is_up(dsn: str, fake_slack: FakeSlack, socket: TicketedSocket) -> None:
    async with start_bot(dsn, fake_slack, SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET=None) as bot:
        await asyncio.wait_for(socket.connected.wait(), 5)
        assert socket.refused == []
        await asyncio.sleep(0.1)
        assert bot.deps.socket is not None and bot.deps.socket.state.connected


async def test_connects_after_a_handshake_outage_at_start(dsn: str, fake_slack: FakeSlack,
                                                          socket: TicketedSocket) -> None:
    socket.down_until = time.monotonic() + OUTAGE
    async with start_bot(dsn, fake_slack, SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET=None):
        await _connected_within(socket, fake_slack, "connected")
        assert socket.refused and all(r.endswith(":503") for r in socket.refused), socket.refused
        assert len(set(r.split(":")[0] for r in socket.refused)) == len(socket.refused), "a URL was tried twice"
        assert socket.most_open == 1


async def test_reconnects_when_the_reconnect_handshake_fails(dsn: str, fake_slack: FakeSlack,
                                                              socket: TicketedSocket) -> None:
    async with start_bot(dsn, fake_slack, SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET=None) as bot:
        await asyncio.wait_for(socket.connected.wait(), 5)
        socket.connected.clear()
        socket.down_until = time.monotonic() + OUTAGE
        for ws in list(socket._open):
            await ws.close()
        await asyncio.sleep(0.5)
        assert bot.deps.socket is not None and not bot.deps.socket.state.connected  # /health says so meanwhile
        await _connected_within(socket, fake_slack, "reconnected")
        await asyncio.sleep(0.2)
        assert len(socket._open) == 1 and socket.most_open == 1
        assert bot.deps.socket.state.connected
