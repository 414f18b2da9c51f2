"""What `salespulse run` says about Slack at start-up: never "connected" before Slack has taken the token; a token
Slack refuses is named, in one line saying what to do — the bot token (auth.test, asked in the background) and, in
Socket Mode, the app token (apps.connections.open, retried with backoff but not logged at every retry)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sys
from pathlib import Path

import pytest

from bot.affiliation import Org
from bot.slack_check import check_bot_token
from bot.socket_state import SAID_AGAIN_AFTER, SocketWatch
from tests.conftest import SLACK_SIGNING_SECRET, STRIPE_SECRET, FakeClock, start_bot
from tests.fakes import FakeSlack
from tests.test_replicas import ROOT, free_port

WITHIN = 20.0  # seconds for `run` to start and hear from (the fake) Slack


async def _run_log(dsn: str, fake_slack: FakeSlack, tmp_path: Path, *, until: str) -> list[str]:
    """`salespulse run` with a bot token, against the fake Slack: its log lines, read until one contains `until`
    (and a moment more, for anything said right after it) or WITHIN seconds have passed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "STRIPE_"))}
    env |= {"DATABASE_URL": dsn, "SLACK_BOT_TOKEN": "xoxb-typo", "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
            "SLACK_API_URL": fake_slack.url, "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET, "PORT": str(free_port()),
            "SALESPULSE_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "run", cwd=str(tmp_path), env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WITHIN
        while loop.time() < deadline:
            try:
                raw = await asyncio.wait_for(proc.stderr.readline(), timeout=max(0.1, deadline - loop.time()))
            except TimeoutError:
                break
            if not raw:
                break
            lines.append(raw.decode(errors="replace").rstrip())
            if until in lines[-1]:
                deadline = min(deadline, loop.time() + 1.0)
    finally:
        proc.terminate()
        await proc.wait()
    return lines


async def test_run_with_a_refused_bot_token_does_not_say_connected_to_slack(dsn: str, fake_slack: FakeSlack,
                                                                            tmp_path: Path) -> None:
    """A mistyped or revoked SLACK_BOT_TOKEN: Slack answers invalid_auth to everything. `salespulse run` logged
    'ready: connected to Slack' and never said the token is the problem (only 'held (invalid_auth)' later)."""
    fake_slack.fail_next(10_000, error="invalid_auth")
    lines = await _run_log(dsn, fake_slack, tmp_path, until="SLACK_BOT_TOKEN")
    log = "\n".join(lines)
    assert any("ready:" in line for line in lines), log
    assert "connected to Slack" not in log, "logged as connected while Slack refuses the token:\n" + log
    assert "SLACK_BOT_TOKEN" in log, "nothing names the setting to fix:\n" + log
    named = [line for line in lines if "SLACK_BOT_TOKEN" in line]
    assert len(named) == 1 and "Slack refused SLACK_BOT_TOKEN (invalid_auth)" in named[0], log
    assert "OAuth & Permissions" in named[0] and "ERROR" in named[0], named


async def test_run_with_a_token_slack_takes_says_who_it_is_in_slack(dsn: str, fake_slack: FakeSlack,
                                                                    tmp_path: Path) -> None:
    lines = await _run_log(dsn, fake_slack, tmp_path, until="connected to Slack")
    log = "\n".join(lines)
    ready = [n for n, line in enumerate(lines) if "ready: Slack mode (HTTP" in line]
    connected = [n for n, line in enumerate(lines) if "connected to Slack as @salespulse in Test Store" in line]
    assert len(ready) == 1 and len(connected) == 1 and ready[0] < connected[0], log
    assert [c.answered for c in fake_slack.calls if c.method == "auth.test"] == [200]


async def test_the_start_up_check_is_the_installation_the_access_policy_would_ask_for(
        dsn: str, fake_slack: FakeSlack) -> None:
    """The access policy asks auth.test which workspace installed the app; the start-up check already did."""
    async with start_bot(dsn, fake_slack) as bot:
        await check_bot_token(bot.deps)
        assert await bot.deps.access.installation.learn() == Org(team_id="T000")
    assert len([c for c in fake_slack.calls if c.method == "auth.test"]) == 1


async def test_a_refused_app_token_is_logged_once_not_at_every_retry(dsn: str, fake_slack: FakeSlack,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Slack refusing SLACK_APP_TOKEN: one line saying what to do (slack_sdk's own error line and a warning at every
    retry before), the connection still retried with backoff; /health's Socket Mode line names the token too."""
    caplog.set_level(logging.INFO)
    fake_slack.fail_next(1000, error="invalid_auth", method="apps.connections.open")
    async with start_bot(dsn, fake_slack, SLACK_APP_TOKEN="xapp-1-revoked", SLACK_SIGNING_SECRET=None) as bot:
        for _ in range(100):  # tries at 0, 1 and 3 s
            if len([c for c in fake_slack.calls if c.method == "apps.connections.open"]) >= 3:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("apps.connections.open was not retried")
        assert bot.deps.socket is not None
        last_error = bot.deps.socket.state.last_error
    said = [r for r in caplog.records if r.levelno >= logging.WARNING
            and ("apps.connections.open" in r.getMessage() or "SLACK_APP_TOKEN" in r.getMessage()
                 or "WSS URL" in r.getMessage())]
    assert len(said) == 1, [f"{r.levelname} {r.name}: {r.getMessage()}" for r in said]
    assert said[0].levelno == logging.ERROR and "Slack refused SLACK_APP_TOKEN (invalid_auth)" in said[0].getMessage()
    assert "connections:write" in said[0].getMessage()
    assert last_error is not None and last_error.startswith("Slack refused SLACK_APP_TOKEN (invalid_auth)")


def test_a_failure_the_connection_keeps_meeting_is_news_again_only_when_it_changes_or_minutes_later() -> None:
    clock = FakeClock(dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC))
    watch = SocketWatch(clock)
    assert watch.failed("refused") is True
    clock.advance(seconds=60)
    assert watch.failed("refused") is False
    assert watch.failed("WSServerHandshakeError: 503 Invalid response status") is True
    assert watch.failed("refused") is True  # it changed again
    clock.now += SAID_AGAIN_AFTER
    assert watch.failed("refused") is True  # still so, minutes later
    watch.connected()
    assert watch.failed("refused") is True  # a new outage
