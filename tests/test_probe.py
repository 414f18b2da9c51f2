"""The site probe against a local site: capped bodies, bounded same-site redirects, nothing of the page kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.alerts.probe import MAX_BODY, MAX_REDIRECTS, probe
from bot.clock import utcnow


async def endless(request: web.Request) -> web.StreamResponse:
    """A page that never stops sending."""
    resp = web.StreamResponse()
    await resp.prepare(request)
    chunk = b"<p>@channel buy now</p>" * 4096
    try:
        while True:
            await resp.write(chunk)
    except (ConnectionResetError, aiohttp.ClientConnectionError):
        return resp


async def hop(request: web.Request) -> web.Response:
    """Redirects `n` more times on this host, then serves the page."""
    n = int(request.match_info["n"])
    if n == 0:
        return web.Response(text="home")
    raise web.HTTPFound(f"/hop/{n - 1}")


async def loop(request: web.Request) -> web.Response:
    """Redirects to itself forever."""
    raise web.HTTPFound("/loop")


async def elsewhere(request: web.Request) -> web.Response:
    """Redirects to another host (here: the same server by another name)."""
    raise web.HTTPFound(f"http://localhost:{request.url.port}/hop/0")


@pytest.fixture
async def site() -> AsyncIterator[str]:
    """The test site's base URL on 127.0.0.1."""
    app = web.Application()
    app.router.add_get("/endless", endless)
    app.router.add_get("/hop/{n}", hop)
    app.router.add_get("/loop", loop)
    app.router.add_get("/elsewhere", elsewhere)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def test_an_endless_page_is_read_only_up_to_the_cap(site: str) -> None:
    """A body that never ends is cut at MAX_BODY: the probe answers at once, ok, with no page text kept."""
    async with aiohttp.ClientSession() as session:
        result = await asyncio.wait_for(probe(session, f"{site}/endless", clock=utcnow), 5)
    assert result.ok and result.status == 200 and result.error is None
    assert MAX_BODY < 1024 * 1024


async def test_same_site_redirects_are_followed_up_to_the_limit(site: str) -> None:
    """MAX_REDIRECTS hops on the site are fine; one more is reported as too many."""
    async with aiohttp.ClientSession() as session:
        fine = await probe(session, f"{site}/hop/{MAX_REDIRECTS}", clock=utcnow)
        too_many = await probe(session, f"{site}/hop/{MAX_REDIRECTS + 1}", clock=utcnow)
        looping = await probe(session, f"{site}/loop", clock=utcnow)
    assert fine.ok and fine.status == 200
    assert not too_many.ok and too_many.error == f"more than {MAX_REDIRECTS} redirects"
    assert not looping.ok and looping.error == f"more than {MAX_REDIRECTS} redirects"


async def test_an_off_site_redirect_is_reported_not_followed(site: str) -> None:
    """A redirect to another host is not followed; the result says where it pointed."""
    async with aiohttp.ClientSession() as session:
        result = await probe(session, f"{site}/elsewhere", clock=utcnow)
    assert not result.ok and result.status == 302 and result.error == "redirected off-site to localhost"
