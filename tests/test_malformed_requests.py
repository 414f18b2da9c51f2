"""Malformed requests get a clear 4xx and change nothing, never a 500 (found by a review): a signature header that
is not ASCII (hmac refuses to compare it), a sign-in form in an unknown charset or without its multipart boundary,
a signed Slack body that is JSON but not an object, and in local mode a Host that is not a host, a feed post in an
unknown charset, Unicode digits where an id is expected, a Settings submission of the wrong shape; and the feed's
script and stylesheet exist only in local mode, like the feed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.alerts.respond import alert_id_of
from bot.blocks import settings as view
from bot.blocks.alerts import ACK_ACTION
from tests.conftest import SLACK_SIGNING_SECRET, Bot, start_bot
from tests.fakes import FakeSlack, slack_signature
from tests.reference import stripe_fixture

TOKEN = "monitoring-secret-token-long-enough"


@pytest.fixture
async def guarded(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN,
                         INTAKE_TOKEN="intake-secret-token-long-enough") as bot:
        yield bot


async def raw_post(bot: Bot, path: str, body: bytes, headers: dict[str, bytes]) -> tuple[int, bytes]:
    """POST with header bytes exactly as given (UTF-8 in a header value, as any client can send)."""
    server = bot.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    for name, value in headers.items():
        head += name.encode() + b": " + value + b"\r\n"
    writer.write(head + b"\r\n" + body)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    status = int(raw.split(b" ", 2)[1])
    return status, raw


async def test_stripe_signature_with_non_ascii_v1_is_a_400(guarded: Bot) -> None:
    body = json.dumps(stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")).encode()
    header = f"t={int(time.time())},v1=".encode() + "é".encode() * 64
    status, raw = await raw_post(guarded, "/webhooks/stripe", body,
                                 {"Stripe-Signature": header, "Content-Type": b"application/json"})
    assert status == 400, raw
    assert await guarded.deps.pool.fetchval("SELECT count(*) FROM webhook_logs") == 0


async def test_slack_signature_with_non_ascii_is_a_401(guarded: Bot) -> None:
    body = b"command=%2Fsales&text=&user_id=U1&channel_id=C1&team_id=T1"
    status, raw = await raw_post(guarded, "/slack/events", body, {
        "Content-Type": b"application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(int(time.time())).encode(),
        "X-Slack-Signature": b"v0=" + "é".encode() * 64})
    assert status == 401, raw


@pytest.mark.parametrize("signed", [False, True])
async def test_slack_body_that_is_not_utf8_is_a_401(guarded: Bot, signed: bool) -> None:
    """Unsigned, it is refused as unsigned (the route does not parse before authenticating); signed over its bytes,
    it still matches no signature Slack's verifier can check."""
    body = b"\xff\xfecommand=/sales"
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               **(slack_signature(body, SLACK_SIGNING_SECRET) if signed else {})}
    resp = await guarded.client.post("/slack/events", data=body, headers=headers)
    assert resp.status == 401, (resp.status, await resp.text())


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/x-www-form-urlencoded", b"token=\xff\xfe"),
    ("application/x-www-form-urlencoded; charset=no-such-charset", b"token=abc"),
    ("multipart/form-data", b"token=abc"),
    ("multipart/form-data; boundary=xyz", b"garbage without any boundary"),
])
async def test_malformed_sign_in_form_is_a_4xx(guarded: Bot, content_type: str, body: bytes) -> None:
    resp = await guarded.client.post("/dashboard/login", data=body, headers={"Content-Type": content_type})
    assert 400 <= resp.status < 500, (resp.status, await resp.text())


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/x-www-form-urlencoded", b"payload=1"),
    ("application/x-www-form-urlencoded", b"payload=%5B1%2C2%5D"),
    ("application/x-www-form-urlencoded", b"payload=%22x%22"),
    ("application/json", b"[1, 2]"),
    ("application/json", b"null"),
])
async def test_signed_non_object_payload_is_not_a_500(guarded: Bot, content_type: str, body: bytes) -> None:
    headers = {"Content-Type": content_type, **slack_signature(body, SLACK_SIGNING_SECRET)}
    resp = await guarded.client.post("/slack/events", data=body, headers=headers)
    assert resp.status < 500, (resp.status, await resp.text())


@pytest.mark.parametrize("host", ["[::1", "[", "[not-an-ip]"])
async def test_malformed_host_is_refused_not_a_500(local_bot: Bot, host: str) -> None:
    resp = await local_bot.client.get("/", headers={"Host": host})
    assert resp.status in (400, 421), (resp.status, await resp.text())


@pytest.mark.parametrize("path", ["/feed/command", "/feed/action", "/feed/view"])
async def test_feed_post_with_unknown_charset_is_a_4xx(local_bot: Bot, path: str) -> None:
    resp = await local_bot.client.post(path, data=b'{"line": "/sales"}',
                                       headers={"Content-Type": "application/json; charset=no-such-charset"})
    assert 400 <= resp.status < 500, (resp.status, await resp.text())


def test_alert_id_of_never_raises() -> None:
    assert alert_id_of("²") is None  # str.isdigit() is True for '²', int('²') raises ValueError


@pytest.mark.parametrize("value", ["²", "①"])
async def test_feed_alert_button_with_superscript_digit_is_a_400(local_bot: Bot, value: str) -> None:
    resp = await local_bot.client.post("/feed/action", json={"action_id": ACK_ACTION, "value": value,
                                                             "channel": "alerts"})
    assert resp.status == 400, (resp.status, await resp.text())


async def test_last_event_id_with_superscript_digit_is_not_a_500(local_bot: Bot) -> None:
    server = local_bot.client.server
    epoch = local_bot.deps.feed.epoch
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /feed/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                 b"Last-Event-ID: " + f"{epoch}-²".encode() + b"\r\n\r\n")
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert b" 200 " in status_line, status_line


@pytest.mark.parametrize("values", [
    {view.TZ: "Europe/Paris"},                                   # a block's state that is not an object
    {view.DAYS: {view.VALUE: {"selected_options": ["1", "2"]}}},  # options that are not objects
    {view.READERS: {view.VALUE: {"selected_users": 5}}},          # users that are not a list
])
async def test_malformed_settings_submission_is_not_a_500(local_bot: Bot, values: dict[str, Any]) -> None:
    resp = await local_bot.client.post("/feed/view", json={"values": values})
    assert resp.status < 500, (resp.status, await resp.text())


@pytest.mark.parametrize("name", ["feed.js", "feed.css"])
async def test_feed_assets_are_404_with_slack_credentials(bot: Bot, name: str) -> None:
    assert not bot.deps.settings.local_mode and bot.deps.feed is None
    resp = await bot.client.get(f"/feed/static/{name}")
    assert resp.status == 404, resp.status
