"""Review r1's two defects: a settings-change note pinged people and groups the change did not add (kept ones,
removed ones, and the whole on-call user group at every responders change); `salespulse check` refused a HOST
that `run` listens on under Python 3.13+, whose asyncio skips an address failing with EADDRNOTAVAIL."""

from __future__ import annotations

import asyncio
import errno
import socket
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.blocks import settings as view
from bot.cli import listen
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, make_settings, start_bot
from tests.fakes import FakeSlack
from tests.settings_forms import ADMIN, OTHER, open_settings, put, state_of, submit

KEPT, GONE = "UKEPT001", "UGONE001"
NOT_HERE = "2001:db8::1"  # RFC 3849 documentation prefix: no machine has it, so binding it fails EADDRNOTAVAIL


# 1. A settings change pings only the people it adds, and the admin who made it.

@pytest.fixture
async def grouped(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """One admin; alert responders two people and the on-call user group, which the Settings view cannot pick or
    drop ("User groups from ALERT_RESPONDERS are kept")."""
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN,
                         ALERT_RESPONDERS=f"{KEPT},{GONE},S0ONCALL") as running_bot:
        yield running_bot


async def _change_responders(bot: Bot, picked: list[str]) -> dict[str, Any]:
    """Submit the Settings view with these people as alert responders; the note posted to the alerts channel."""
    state = state_of(await open_settings(bot))
    put(state, view.RESPONDERS, selected_users=picked)
    assert await submit(bot, state) == (200, {})
    await bot.drain(ignore_pace=True)
    [posted] = [m for m in bot.slack_api.posted() if "Settings changed" in m["text"]]
    assert_valid_message(posted)
    return posted


async def test_adding_one_responder_does_not_ping_the_whole_kept_user_group(grouped: Bot) -> None:
    """The on-call group is on both sides of every responders change: <!subteam^…> would notify each of its members
    at each change. It is named by id, inert, in the blocks as in the `text` a phone shows."""
    posted = await _change_responders(grouped, [KEPT, GONE, OTHER])
    for where in (posted["text"], str(posted["blocks"])):
        assert "<!subteam^" not in where and "group S0ONCALL" in where, where


async def test_only_the_added_person_and_the_admin_are_live_mentions(grouped: Bot) -> None:
    """KEPT stays, GONE is removed, OTHER is added: OTHER learns what they may now do and the admin is named;
    KEPT and GONE are not pinged by a change that does nothing to KEPT and takes GONE off — shown by id, readable."""
    posted = await _change_responders(grouped, [KEPT, OTHER])
    for where in (posted["text"], str(posted["blocks"])):
        assert f"<@{OTHER}>" in where and f"<@{ADMIN}>" in where, where
        assert f"<@{KEPT}>" not in where and f"<@{GONE}>" not in where, where
        assert KEPT in where and GONE in where, where


# 2. `check` takes HOST as the running Python's asyncio (so `run`) listens on it.

@pytest.fixture
async def localhost_half_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOST=localhost in a container with IPv6 off: /etc/hosts still lists ::1, which cannot be bound
    (EADDRNOTAVAIL); stood in for by an IPv6 address no machine has, which fails the same way."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host == "localhost":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (NOT_HERE, port, 0, 0)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return await real(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", resolve)


def _listen_line(out: str) -> str:
    [line] = [line.strip() for line in out.splitlines() if line.strip().startswith("listen address:")]
    return line


@pytest.mark.usefixtures("localhost_half_here")
async def test_the_decision_is_the_running_pythons_own() -> None:
    """Whether `check` skips an unavailable address is what this interpreter's asyncio create_server does."""
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(asyncio.Protocol, "localhost", 0)
    except OSError:
        listens = False
    else:
        listens = [s.getsockname()[0] for s in server.sockets] == ["127.0.0.1"]
        server.close()
        await server.wait_closed()
    assert listen.skips_unavailable() is listens


@pytest.mark.usefixtures("localhost_half_here")
async def test_on_python_3_13_an_unavailable_address_is_skipped_and_named(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(listen, "skips_unavailable", lambda: True)
    assert await listen.check_listen_address(make_settings(HOST="localhost", PORT="3000"))
    line = _listen_line(capsys.readouterr().out)
    assert line.startswith("listen address:   ok — localhost:3000"), line
    assert f"{NOT_HERE} skipped" in line, line


@pytest.mark.usefixtures("localhost_half_here")
async def test_before_python_3_13_an_unavailable_address_fails_as_run_does(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(listen, "skips_unavailable", lambda: False)
    assert not await listen.check_listen_address(make_settings(HOST="localhost"))
    assert _listen_line(capsys.readouterr().out) == (
        f"listen address:   FAILED — HOST 'localhost' ({NOT_HERE}) is not an address of this machine:"
        " Cannot assign requested address")


async def test_on_python_3_13_a_host_with_no_address_here_still_fails(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Every address skipped: asyncio raises 'could not bind on any address', so `run` does not start."""
    monkeypatch.setattr(listen, "skips_unavailable", lambda: True)
    assert not await listen.check_listen_address(make_settings(HOST="192.0.2.1"))
    assert _listen_line(capsys.readouterr().out) == (
        "listen address:   FAILED — HOST '192.0.2.1' (192.0.2.1) is not an address of this machine:"
        " Cannot assign requested address")


@pytest.mark.usefixtures("localhost_half_here")
async def test_on_python_3_13_another_bind_error_still_fails(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Only EADDRNOTAVAIL is skipped: any other error (EACCES here) stops create_server, and so `run`."""

    class Refused(socket.socket):
        def bind(self, address: Any) -> None:
            if address[0] == "127.0.0.1":
                raise OSError(errno.EACCES, "Permission denied")
            super().bind(address)

    monkeypatch.setattr(listen, "socket", types.SimpleNamespace(**{**vars(socket), "socket": Refused}))
    monkeypatch.setattr(listen, "skips_unavailable", lambda: True)
    assert not await listen.check_listen_address(make_settings(HOST="localhost"))
    assert _listen_line(capsys.readouterr().out) == (
        "listen address:   FAILED — HOST 'localhost' (127.0.0.1)"
        " cannot be listened on: Permission denied")
