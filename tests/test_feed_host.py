"""HOST set to the machine's own address (to see the demo from a phone): the local feed answers only loopback, where
nothing then listens, so the banner, the 403 page and the start-up log say what works instead of sending the user
to an address that refuses them or to one where nothing listens."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.demo import runner as demo
from bot.web.feed_door import where_messages_show
from tests.conftest import make_settings, start_bot
from tests.fakes import FakeSlack
from tests.test_demo import free_port

LOCAL: dict[str, Any] = {"SLACK_BOT_TOKEN": None, "SLACK_SIGNING_SECRET": None}
NOW = dt.datetime(2026, 3, 8, 14, 0, tzinfo=dt.UTC)


def own_address() -> str | None:
    """This machine's IPv4 address on its default route (no packet is sent), if it has one beyond loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if ipaddress.ip_address(address).is_loopback else address


def _banner(host: str, port: int = 3000) -> list[str]:
    settings = demo.demo_settings(make_settings(HOST=host, PORT=str(port), **LOCAL), dsn="postgresql://x/y")
    return demo.banner(settings, history=demo.History(orders=1, added=0, kept=False), now=NOW).splitlines()


def _line(lines: list[str], label: str) -> str:
    return next(line for line in lines if line.startswith(f"  {label}"))


def test_the_banner_sends_nobody_to_a_feed_that_refuses_them() -> None:
    """HOST=192.0.2.2: no `local feed http://192.0.2.2:3000/` (403 to every browser) but the HOST that works and
    the loopback URL to open then; the dashboard link, which signs in whoever opens it, at that address, for the
    phone."""
    lines = _banner("192.0.2.2")
    feed = _line(lines, "local feed")
    assert "http://192.0.2.2" not in feed, feed
    assert "HOST=0.0.0.0" in feed and "HOST=127.0.0.1" in feed and "http://127.0.0.1:3000/" in feed, feed
    dashboard = _line(lines, "dashboard")
    assert "http://192.0.2.2:3000/dashboard/link/" in dashboard and "phone" in dashboard, dashboard


@pytest.mark.parametrize(("host", "url"), [("127.0.0.1", "http://127.0.0.1:3000/"),
                                           ("0.0.0.0", "http://127.0.0.1:3000/"),
                                           ("::", "http://[::1]:3000/"), ("::1", "http://[::1]:3000/"),
                                           ("localhost", "http://localhost:3000/")])
def test_the_banner_names_the_loopback_url_the_feed_answers_on(host: str, url: str) -> None:
    """Every interface (0.0.0.0, or :: which asyncio binds IPv6-only) or loopback itself: the feed's URL here."""
    assert _line(_banner(host), "local feed").startswith(f"  local feed  {url} "), _banner(host)


def test_the_start_up_log_does_not_name_a_loopback_url_nothing_listens_on() -> None:
    """What app.py's "ready: local mode (…)" line says (bot.web.feed_door.where_messages_show)."""
    assert where_messages_show(make_settings(HOST="127.0.0.1", PORT="3000", **LOCAL)) == \
        "messages print here and on http://127.0.0.1:3000/"
    told = where_messages_show(make_settings(HOST="192.0.2.2", PORT="3000", **LOCAL))
    assert "and on http://" not in told and "HOST=0.0.0.0" in told, told


async def test_the_403_page_on_the_machines_own_address_says_what_works(dsn: str, fake_slack: FakeSlack) -> None:
    """A browser opening the bot at HOST=<this machine's address> (on the machine itself or a phone) is refused, as
    it must be (the feed acts as the owner). The page must not send it to http://127.0.0.1:PORT/ — nothing listens
    there — but say to restart with HOST=0.0.0.0 or 127.0.0.1, and where the dashboard is."""
    address = own_address()
    if address is None:
        pytest.skip("this machine has no address beyond loopback")
    port = free_port()
    async with start_bot(dsn, fake_slack, HOST=address, PORT=str(port), **LOCAL) as bot:
        runner = bot.client.server.runner
        assert runner is not None
        site = web.TCPSite(runner, address, port)  # listening as HOST=<address> would
        await site.start()
        try:
            async with aiohttp.ClientSession() as session, session.get(f"http://{address}:{port}/") as resp:
                status, told = resp.status, await resp.text()
        finally:
            await site.stop()
    assert status == 403
    assert "ssh -L" not in told, told  # a tunnel to loopback finds nothing listening either
    assert "HOST=0.0.0.0" in told and f"http://{address}:{port}/dashboard" in told, told
