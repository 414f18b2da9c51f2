"""What every HTTP route shares: 503 "starting up" until Deps exist, and the common security headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import build_web_app
from bot.web.middleware import SECURITY_HEADERS
from tests.conftest import Bot


def every_route(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) for every route the app serves, placeholders filled in; HEAD is GET's twin."""
    return [(route.method, re.sub(r"\{\w+\}", "x", route.resource.canonical))
            for route in app.router.routes() if route.method != "HEAD" and route.resource is not None]


def assert_common_headers(resp: ClientResponse, where: str) -> None:
    """The headers every response carries, whichever route answered and however."""
    headers = resp.headers
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, f"{where}: {name}"
    assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), where
    assert headers.get("Cache-Control"), where


@pytest.fixture
async def starting() -> AsyncIterator[TestClient]:
    """The web app as it is before the database is ready: routes, no Deps."""
    async with TestClient(TestServer(build_web_app())) as client:
        yield client


async def test_every_route_answers_503_while_starting(starting: TestClient) -> None:
    """Before Deps exist every route answers 503 {"error": "starting up"} — /healthz its own body."""
    routes = every_route(starting.app)
    assert len(routes) >= 15  # the listing really found the routes
    for method, path in routes:
        resp = await starting.request(method, path, allow_redirects=False)
        where = f"{method} {path}"
        assert resp.status == 503, where
        expected = {"status": "starting"} if path == "/healthz" else {"error": "starting up"}
        assert await resp.json() == expected, where
        if path != "/healthz":
            assert resp.headers["Retry-After"] == "2", where
        assert_common_headers(resp, where)
    assert (await starting.get("/no/such/page")).status == 404  # unknown paths stay 404, starting or not


async def test_every_route_sends_the_common_security_headers_when_ready(bot: Bot) -> None:
    """Ready, without credentials: whatever each route answers carries the common headers."""
    for method, path in every_route(bot.client.app):
        resp = await bot.client.request(method, path, allow_redirects=False)
        assert_common_headers(resp, f"{method} {path} ({resp.status})")
    assert_common_headers(await bot.client.get("/no/such/page"), "404")


async def test_routes_keep_their_own_policy_and_caching(local_bot: Bot) -> None:
    """A page's CSP (its refusals' too), an asset's immutable caching and the event stream keep their headers."""
    asset = await local_bot.client.get("/feed/static/feed.css")
    assert "immutable" in asset.headers["Cache-Control"] and asset.headers["X-Content-Type-Options"] == "nosniff"
    off = await local_bot.client.get("/dashboard")  # no MONITORING_TOKEN: the page explaining why, as a 503
    assert off.status == 503 and "default-src 'self'" in off.headers["Content-Security-Policy"]
    stream = await local_bot.client.get("/feed/events")
    assert stream.content_type == "text/event-stream"
    assert_common_headers(stream, "event stream")
    stream.close()
