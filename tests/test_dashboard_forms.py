"""The dashboard's forms and cookie against other pages and plain http (found by a review helper): its sign-in and
sign-out refuse posts from other origins as the feed does, and an https PUBLIC_URL makes the session cookie Secure
even when the TLS proxy is not in TRUSTED_PROXIES."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from http.cookies import Morsel, SimpleCookie

import aiohttp
import pytest

from bot.web.feed_render import mrkdwn
from bot.web.session import sign_link
from bot.web.signin import COOKIE
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack

TOKEN = "mon-token-123-very-secret"


def session_cookie(resp: aiohttp.ClientResponse) -> Morsel[str]:
    """The session cookie a response sets."""
    jar: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar[COOKIE]


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """A bot with the dashboard on."""
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN) as bot:
        yield bot


async def test_the_session_cookie_is_secure_when_public_url_is_https(dsn: str, fake_slack: FakeSlack) -> None:
    """Behind a TLS proxy not in TRUSTED_PROXIES the bot sees http, but PUBLIC_URL says people come over https:
    neither the typed-token session nor a /sales link's may then travel over plain http."""
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN, PUBLIC_URL="https://sales.example.com") as bot:
        typed = await bot.client.post("/dashboard/login", data={"token": TOKEN}, allow_redirects=False)
        assert typed.status == 303 and session_cookie(typed)["secure"]
        signed = sign_link(TOKEN, now=dt.datetime.now(dt.UTC), subject="U123")
        link = await bot.client.get(f"/dashboard/link/{signed}", allow_redirects=False)
        assert link.status == 303 and session_cookie(link)["secure"]


async def test_without_an_https_address_the_cookie_stays_usable_over_http(store: Bot) -> None:
    """Plain http and no PUBLIC_URL (a laptop): the cookie is not Secure, or the browser would never send it."""
    typed = await store.client.post("/dashboard/login", data={"token": TOKEN}, allow_redirects=False)
    assert typed.status == 303 and not session_cookie(typed)["secure"]


@pytest.mark.parametrize("path", ["/dashboard/logout", "/dashboard/login"])
@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},  # no Fetch Metadata (Safari before 16.4), Origin still sent
    {"Sec-Fetch-Site": "same-site", "Origin": "https://blog.example.com"},  # a sibling subdomain's page
])
async def test_the_forms_refuse_another_origins_post(store: Bot, path: str, headers: dict[str, str]) -> None:
    """Another page can neither sign you out nor spend the sign-in limiter on wrong tokens."""
    resp = await store.client.post(path, data={"token": "x"}, allow_redirects=False, headers=headers)
    assert resp.status == 403, (path, resp.status)


@pytest.mark.parametrize("origin", ["ours", "null"])
async def test_the_forms_take_a_post_from_their_own_page(store: Bot, origin: str) -> None:
    """The page's own form (Sec-Fetch-Site same-origin) signs in, its Origin ours or "null" — what Chromium sends
    from a page under Referrer-Policy: no-referrer, as the dashboard is."""
    sent = f"http://{store.client.host}:{store.client.port}" if origin == "ours" else origin
    resp = await store.client.post("/dashboard/login", data={"token": TOKEN}, allow_redirects=False,
                                   headers={"Origin": sent, "Sec-Fetch-Site": "same-origin"})
    assert resp.status == 303


async def test_behind_a_path_prefix_the_forms_take_the_public_origin(dsn: str, fake_slack: FakeSlack) -> None:
    """PUBLIC_URL with a proxy's path prefix: the page's posts carry only its scheme and host as Origin."""
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN, PUBLIC_URL="https://shop.example.com/sales") as bot:
        resp = await bot.client.post("/dashboard/login", data={"token": TOKEN}, allow_redirects=False,
                                     headers={"Origin": "https://shop.example.com", "Sec-Fetch-Site": "same-origin"})
        assert resp.status == 303


def test_a_pre_inside_a_code_span_keeps_its_text_in_the_feed() -> None:
    """(Rendering, not security.) ```b``` inside a `code` span is drawn, not left as a NUL placeholder."""
    out = mrkdwn("`a ```b``` c`")
    assert "\x00" not in out and "b" in out, repr(out)
