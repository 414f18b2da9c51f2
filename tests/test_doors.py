"""Doors an attacker tried on a running bot (issue 13), each through the real route with crafted requests:
the attack fails and changes nothing; the legitimate use still works."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest

from tests.conftest import SLACK_SIGNING_SECRET, Bot, start_bot
from tests.fakes import FakeSlack, slack_signature

TOKEN = "mon-token-123-very-secret"
APP_TOKEN = "xapp-1-A111-222-abc"


def sales_link_form(user: str = "UBOSS") -> dict[str, str]:
    """`/sales link` as a form body: what a dashboard sign-in link is asked for with."""
    return {"command": "/sales", "text": "link", "user_id": user, "channel_id": "C1", "team_id": "T0",
            "token": "legacy", "trigger_id": "1.2", "response_url": "https://attacker.example/hook"}


async def unsigned(bot: Bot, form: dict[str, str]) -> int:
    """POST a form to /slack/events with no signature at all; the status."""
    resp = await bot.client.post("/slack/events", data=urlencode(form).encode(),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    return resp.status


async def forged(bot: Bot, form: dict[str, str]) -> int:
    """POST a form signed with the wrong secret; the status."""
    body = urlencode(form).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_signature(body, "not-the-secret")}
    return (await bot.client.post("/slack/events", data=body, headers=headers)).status


@pytest.mark.parametrize("signing_secret", [None, SLACK_SIGNING_SECRET])
async def test_socket_mode_serves_no_unsigned_slack_request_over_http(dsn: str, fake_slack: FakeSlack,
                                                                      signing_secret: str | None) -> None:
    """Socket Mode: /slack/events refuses everything (401) without a signing secret, and with one takes only signed
    requests;
    the forged `/sales link` gets no sign-in link and a forged alert click changes nothing."""
    async with start_bot(dsn, fake_slack, SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET=signing_secret,
                         MONITORING_TOKEN=TOKEN, PUBLIC_URL="https://sales.example") as bot:
        click = {"payload": json.dumps({"type": "block_actions", "user": {"id": "UBOSS"}, "team": {"id": "T0"},
                                        "actions": [{"action_id": "alert_resolve", "value": "1"}]})}
        for form in (sales_link_form(), click):
            assert await unsigned(bot, form) == 401
            assert await forged(bot, form) == 401
        await asyncio.sleep(0.1)
        assert [c.method for c in fake_slack.calls if c.method.startswith(("hook:", "chat.", "views."))] == []
        assert await bot.deps.pool.fetchval("SELECT count(*) FROM alert_actions") == 0
        if signing_secret:  # the legitimate, signed request still works
            body = await bot.command("/sales", "link", user_id="UBOSS", channel_id="D1")
            assert "/dashboard/link/" in json.dumps(body)


async def test_local_mode_refuses_every_slack_request(local_bot: Bot) -> None:
    """Local mode has no Slack and no secret to verify against: /slack/events answers 401, as in every mode."""
    assert await unsigned(local_bot, sales_link_form()) == 401
    assert await forged(local_bot, sales_link_form()) == 401


async def test_http_mode_refuses_unsigned_and_forged_requests(bot: Bot) -> None:
    """HTTP mode: unsigned and forged requests get 401; a signed one is answered."""
    assert await unsigned(bot, sales_link_form()) == 401
    assert await forged(bot, sales_link_form()) == 401
    assert "text" in await bot.command("/sales")


async def test_slack_ssl_check_is_answered_200_only_when_signed(bot: Bot, fake_slack: FakeSlack) -> None:
    """Slack's certificate check (ssl_check=1, sent when a slash command URL is saved) expects 200 and nothing
    done; unsigned or forged, it is refused like any other request (Bolt alone would answer it unsigned)."""
    form = {"ssl_check": "1", "token": "legacy"}
    before = len(fake_slack.calls)
    resp = await bot.slack(form)
    assert resp.status == 200, (resp.status, await resp.text())
    assert await resp.text() == ""
    assert await unsigned(bot, form) == 401
    assert await forged(bot, form) == 401
    assert len(fake_slack.calls) == before  # nothing said in Slack


@pytest.fixture
async def monitored(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """A bot with a monitoring token, talking to 127.0.0.1 clients directly (no trusted proxy)."""
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN) as bot:
        yield bot


async def test_metrics_need_the_token_and_are_closed_without_one(monitored: Bot, dsn: str,
                                                                 fake_slack: FakeSlack) -> None:
    """/metrics: 401 without or with a wrong token, 200 with it; 503 on a bot with no token configured."""
    assert (await monitored.client.get("/metrics")).status == 401
    assert (await monitored.client.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401
    ok = await monitored.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status == 200 and "salespulse" in await ok.text()
    async with start_bot(dsn, fake_slack) as open_bot:
        closed = await open_bot.client.get("/metrics")
        assert closed.status == 503 and "MONITORING_TOKEN" in await closed.text()


async def test_parallel_sign_in_attempts_cannot_race_the_limit(monitored: Bot) -> None:
    """Twenty wrong tokens at once from one client: at most five are judged (401), the rest wait (429)."""
    async def attempt() -> int:
        resp = await monitored.client.post("/dashboard/login", data={"token": "nope"}, allow_redirects=False)
        return resp.status

    statuses = await asyncio.gather(*(attempt() for _ in range(20)))
    assert statuses.count(401) == 5 and statuses.count(429) == 15


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(monitored: Bot) -> None:
    """Without TRUSTED_PROXIES, rotating X-Forwarded-For does not buy fresh attempts (even from 127.0.0.1)."""
    statuses = []
    for n in range(7):
        resp = await monitored.client.post("/dashboard/login", data={"token": "nope"}, allow_redirects=False,
                                           headers={"X-Forwarded-For": f"203.0.113.{n}"})
        statuses.append(resp.status)
    assert statuses == [401] * 5 + [429] * 2
