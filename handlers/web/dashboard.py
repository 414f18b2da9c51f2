"""GET /dashboard: the phone dashboard — sign-in (token form or signed Slack link) and the JSON it refreshes from.

The page is the same for everyone and holds no figures and no secret: its script fetches /dashboard/data,
which needs the session cookie. So the token never appears in the HTML or a URL, and a SameSite=Strict
cookie works even when the page was opened from a link in Slack (the fetch is same-origin).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Final

from aiohttp import web

from bot.answers.gather import gather_health, gather_sales
from bot.answers.json_views import health_json, sales_json
from bot.deps import Deps, deps_of
from bot.web.session import LINK_SESSION_LIFETIME, SESSION_LIFETIME, Purpose, sign_session, token_matches, verify
from bot.web.signin import FailureLimiter, clear_session, client_address, has_session, set_session
from bot.web.view import dashboard_view

log = logging.getLogger(__name__)

CSP: Final = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS: Final = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                       "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
STATIC_TYPES: Final = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
MAX_TOKEN_CHARS: Final = 1000


@dataclass(frozen=True, slots=True)
class Assets:
    """The page template and the static files, read once from the package, each URL carrying its hash."""

    page: Template
    files: dict[str, bytes]
    urls: dict[str, str]


def load_assets() -> Assets:
    """Read bot/web/ from the installed package (so a wheel serves the same files as a checkout)."""
    root = resources.files("bot.web")
    files = {name: root.joinpath(name).read_bytes() for name in STATIC_TYPES}
    urls = {name: f"/dashboard/static/{name}?v={hashlib.sha256(body).hexdigest()[:12]}"
            for name, body in files.items()}
    return Assets(Template(root.joinpath("dashboard.html").read_text(encoding="utf-8")), files, urls)


class Dashboard:
    """The routes' shared state: assets and the failed sign-in limiter (in memory, per process)."""

    def __init__(self) -> None:
        self.assets = load_assets()
        self.limiter = FailureLimiter()

    def page(self, *, notice: str = "", status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        """The page; a notice shows the sign-in form straight away with the reason."""
        body = self.assets.page.substitute(
            css=self.assets.urls["dashboard.css"], js=self.assets.urls["dashboard.js"],
            notice=html.escape(notice), notice_hidden="" if notice else "hidden",
            signin_hidden="" if notice else "hidden")
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8",
                            headers={**PAGE_HEADERS, **(headers or {})})


DASHBOARD: Final = web.AppKey("dashboard", Dashboard)


def _redirect(to: str = "/dashboard") -> web.Response:
    # 303: the browser follows with a GET, so a reload never re-posts the token.
    return web.Response(status=303, headers={"Location": to, **PAGE_HEADERS})


def _cross_site(request: web.Request) -> web.Response | None:
    """Refuse form posts from other sites (Fetch Metadata), so no page elsewhere can sign people in or out."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return web.json_response({"error": "cross-site form posts are refused"}, status=403)
    return None


def _configured(request: web.Request) -> tuple[Deps, str] | web.Response:
    """The deps and the token, or the page explaining why the dashboard cannot be used yet."""
    deps = deps_of(request)
    if deps is None:
        return request.app[DASHBOARD].page(notice="salespulse is starting — try again in a moment.", status=503)
    if deps.settings.monitoring_token is None:
        return request.app[DASHBOARD].page(notice="The dashboard is off: set MONITORING_TOKEN to use it.",
                                           status=503)
    return deps, deps.settings.monitoring_token.get_secret_value()


async def page(request: web.Request) -> web.Response:
    """The page itself; its script shows the figures, or the sign-in form when there is no session."""
    configured = _configured(request)
    return configured if isinstance(configured, web.Response) else request.app[DASHBOARD].page()


async def login(request: web.Request) -> web.Response:
    """POST the token once: set the session cookie and go to the dashboard. Failures are limited per address."""
    if (refused := _cross_site(request)) is not None:
        return refused
    configured = _configured(request)
    if isinstance(configured, web.Response):
        return configured
    deps, token = configured
    dashboard, address = request.app[DASHBOARD], client_address(request)
    if wait := dashboard.limiter.retry_after(address):
        minutes = -(-wait // 60)
        return dashboard.page(notice=f"Too many wrong tokens from here. Try again in {minutes} min.", status=429,
                              headers={"Retry-After": str(wait)})
    given = (await request.post()).get("token")
    if not isinstance(given, str) or len(given) > MAX_TOKEN_CHARS or not token_matches(given.strip(), token):
        dashboard.limiter.failed(address)
        log.info("dashboard sign-in failed from %s", address)
        return dashboard.page(notice="That token is not right.", status=401)
    dashboard.limiter.succeeded(address)
    response = _redirect()
    set_session(response, request, sign_session(token, now=deps.clock()), lifetime=SESSION_LIFETIME)
    return response


async def link(request: web.Request) -> web.Response:
    """A `/sales link` from Slack: check its signature and expiry, sign this device in, drop the link's URL."""
    configured = _configured(request)
    if isinstance(configured, web.Response):
        return configured
    deps, token = configured
    now = deps.clock()
    if verify(token, Purpose.LINK, request.match_info["signed"], now=now) is None:
        return request.app[DASHBOARD].page(
            notice="This sign-in link has expired or is not valid. Type /sales link in Slack for a new one.",
            status=401)
    response = _redirect()
    set_session(response, request, sign_session(token, now=now, lifetime=LINK_SESSION_LIFETIME),
                lifetime=LINK_SESSION_LIFETIME)
    return response


async def logout(request: web.Request) -> web.Response:
    """Forget the session cookie in this browser."""
    if (refused := _cross_site(request)) is not None:
        return refused
    response = _redirect()
    clear_session(response, request)
    return response


async def data(request: web.Request) -> web.Response:
    """What the page shows (view), plus the JSON API's sales and health documents; needs the session cookie."""
    deps = deps_of(request)
    if deps is None:
        return web.json_response({"error": "starting up"}, status=503)
    token = deps.settings.monitoring_token
    if token is None:
        return web.json_response({"error": "MONITORING_TOKEN is not configured"}, status=503)
    if not has_session(request, token.get_secret_value(), now=deps.clock()):
        return web.json_response({"error": "sign in first"}, status=401, headers={"Cache-Control": "no-store"})
    (today, hourly), health = await asyncio.gather(gather_sales(deps), gather_health(deps))
    body = {"view": dashboard_view(today, hourly, health, tz=deps.settings.tz),
            "sales": sales_json(today, hourly), "health": health_json(health)}
    status = 503 if not health.database_ok and len(today.missing) >= 9 else 200
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


async def to_dashboard(request: web.Request) -> web.Response:
    """/dashboard/ (a typed or bookmarked trailing slash) → /dashboard."""
    return _redirect()


async def static(request: web.Request) -> web.Response:
    """The script and the stylesheet; cached for good, as every URL carries the file's hash."""
    name = request.match_info["name"]
    body = request.app[DASHBOARD].assets.files.get(name)
    if body is None:
        raise web.HTTPNotFound()
    return web.Response(body=body, content_type=STATIC_TYPES[name], charset="utf-8",
                        headers={"Cache-Control": "public, max-age=31536000, immutable",
                                 "X-Content-Type-Options": "nosniff"})


def register(app: web.Application) -> None:
    """Add the routes."""
    app[DASHBOARD] = Dashboard()
    app.router.add_get("/dashboard", page)
    app.router.add_get("/dashboard/", to_dashboard)
    app.router.add_post("/dashboard/login", login)
    app.router.add_post("/dashboard/logout", logout)
    app.router.add_get("/dashboard/link/{signed}", link)
    app.router.add_get("/dashboard/data", data)
    app.router.add_get("/dashboard/static/{name}", static)
