"""A wrong or revoked SLACK_APP_TOKEN: Socket Mode can never connect, so no slash command, button or App Home event
reaches the bot. `salespulse check` ("exit 1 on any problem") and /health must say so."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from bot.answers.snapshots import HealthSnapshot
from bot.blocks.health import health_message
from bot.cli.main import main
from bot.socket_state import SocketState
from tests.conftest import start_bot
from tests.fake_socket import FakeSocketMode
from tests.fakes import FakeSlack

NOW = dt.datetime(2025, 3, 4, 15, 0, tzinfo=dt.UTC)
UTC = ZoneInfo("UTC")


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch, tmp_path: object, dsn: str, fake_slack: FakeSlack) -> None:
    """`salespulse check`'s environment: a bot token and an app token, the fake Slack, the test database."""
    monkeypatch.chdir(str(tmp_path))
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-test")
    monkeypatch.setenv("SLACK_API_URL", fake_slack.url)


@pytest.mark.usefixtures("checked")
async def test_check_fails_when_slack_refuses_the_app_token(fake_slack: FakeSlack,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    fake_slack.fail_next(5, error="invalid_auth", method="apps.connections.open")
    code = await asyncio.to_thread(main, ["check"])
    out = capsys.readouterr().out
    assert code == 1, out
    opened = [c for c in fake_slack.calls if c.method == "apps.connections.open"]
    assert len(opened) == 1 and opened[0].headers.get("Authorization") == "Bearer xapp-1-test"
    lines = [line for line in out.splitlines() if "socket mode" in line]
    assert len(lines) == 1 and "FAILED" in lines[0] and "invalid_auth" in lines[0], out


@pytest.mark.usefixtures("checked")
async def test_check_accepts_an_app_token_slack_takes_without_opening_the_socket(
        fake_slack: FakeSlack, capsys: pytest.CaptureFixture[str]) -> None:
    socket = await FakeSocketMode().start()
    fake_slack.socket_url = socket.url
    try:
        await asyncio.to_thread(main, ["check"])
    finally:
        await socket.stop()
    out = capsys.readouterr().out
    assert [c.answered for c in fake_slack.calls if c.method == "apps.connections.open"] == [200]
    assert any("socket mode:" in line and " ok " in line for line in out.splitlines()), out
    assert socket.connections == 0


async def test_health_says_socket_mode_is_not_connected(dsn: str, fake_slack: FakeSlack) -> None:
    fake_slack.fail_next(1000, error="invalid_auth", method="apps.connections.open")
    async with start_bot(dsn, fake_slack, SLACK_APP_TOKEN="xapp-1-revoked", SLACK_SIGNING_SECRET=None,
                         MONITORING_TOKEN="m-now-long-enough-for-a-token") as bot:
        await asyncio.sleep(1.5)
        assert any(c.method == "apps.connections.open" for c in fake_slack.calls)
        resp = await bot.client.get("/api/monitoring/health",
                                    headers={"Authorization": "Bearer m-now-long-enough-for-a-token"})
        health = await resp.json()
        assert health["status"] == "degraded", health
        sock = health["components"]["socket_mode"]
        assert sock["connected"] is False and sock["down"] is True and "invalid_auth" in sock["last_error"], sock


def _health(socket: SocketState | None) -> HealthSnapshot:
    return HealthSnapshot(now=NOW, database_ok=True, database_rtt_ms=1.0, last_webhook_at=None, last_order_at=None,
                          backlog=None, delivery_errors=None, in_business_hours=False, mode="socket",
                          version="t", started_at=NOW - dt.timedelta(hours=1), site_url=None, socket=socket)


def _text(s: HealthSnapshot) -> str:
    """The /health answer's section text."""
    return "\n".join(b["text"]["text"] for b in health_message(s, tz=UTC).blocks if b["type"] == "section")


def test_health_line_says_since_when_socket_mode_is_down() -> None:
    down = SocketState(connected=False, since=NOW - dt.timedelta(minutes=12), last_error="WSServerHandshakeError: 503")
    text = _text(_health(down))
    lines = [line for line in text.splitlines() if "Socket Mode" in line and "not connected" in line]
    assert len(lines) == 1 and "since Tue 14:48" in lines[0] and "12 min ago" in lines[0], text
    assert "503" in lines[0]
    assert _health(down).degraded
    # Connected, or reconnecting without a failure for under a minute: no line, not degraded.
    up = SocketState(connected=True, since=NOW - dt.timedelta(hours=1))
    reconnecting = SocketState(connected=False, since=NOW - dt.timedelta(seconds=20))
    for state in (up, reconnecting, None):
        assert not _health(state).degraded
    assert "Socket Mode" not in _text(_health(up))
