"""GET /dashboard: the phone dashboard — sign-in (token form or signed Slack link) and the JSON it refreshes from.

The page is the same for everyone and holds no figures and no secret: its script fetches /dashboard/data,
which needs the session cookie. So the token never appears in the HTML or a URL, and a SameSite=Strict
cookie works even when the page was opened from a link in Slack (the fetch is same-origin).
"""

from __future__ import annotations

import asyncio
import html
import logging
from typing import Final

from aiohttp import web

from bot.access import GroupCheck
from bot.answers.gather import gather_health, gather_sales
from bot.answers.json_views import health_json, sales_json
from bot.deps import Deps
from bot.web.assets import StaticAssets, load_template
from bot.web.guards import from_our_pages, guesses_at, json_error, require_deps
from bot.web.session import LINK_SESSION_LIFETIME, SESSION_LIFETIME, Purpose, sign_session, token_matches, verify
from bot.web.signin import TOKEN_GUESSES, clear_session, client_address, session_of, set_session
from bot.web.view import dashboard_view

log = logging.getLogger(__name__)

CSP: Final = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
MAX_TOKEN_CHARS: Final = 1000
GROUPS_BUDGET: Final = 2.0  # seconds for Slack to list ALERT_RESPONDERS' user groups (usually cached)


class Dashboard:
    """The routes' shared state: the page and its assets. (Failed sign-ins are counted in the app's TOKEN_GUESSES,
    with the wrong bearer tokens of the JSON API and /metrics.)"""

    def __init__(self) -> None:
        self.template = load_template("dashboard.html")
        self.assets = StaticAssets("/dashboard/static", {"dashboard.js": "text/javascript",
                                                         "dashboard.css": "text/css"})

    def _body(self, notice: str) -> str:
        return self.template.substitute(
            css=self.assets.url("dashboard.css"), js=self.assets.url("dashboard.js"),
            notice=html.escape(notice), notice_hidden="" if notice else "hidden",
            signin_hidden="" if notice else "hidden")

    def page(self, *, notice: str = "", status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        """The page; a notice shows the sign-in form straight away with the reason."""
        return web.Response(text=self._body(notice), status=status, content_type="text/html", charset="utf-8",
                            headers={"Content-Security-Policy": CSP, **(headers or {})})

    def refusal(self, exc: type[web.HTTPException], notice: str) -> web.HTTPException:
        """The page with a notice, as an exception to raise."""
        return exc(text=self._body(notice), content_type="text/html", headers={"Content-Security-Policy": CSP})


DASHBOARD: Final = web.AppKey("dashboard", Dashboard)


def _redirect(to: str = "/dashboard") -> web.Response:
    # 303: the browser follows with a GET, so a reload never re-posts the token.
    return web.Response(status=303, headers={"Location": to})


def _refuse_cross_site(request: web.Request) -> None:
    """Refuse form posts from other pages, so none can sign people in or out or spend the sign-in limiter."""
    if not from_our_pages(request, require_deps(request).settings.public_url):
        raise json_error(web.HTTPForbidden, "cross-site form posts are refused")


def _configured(request: web.Request) -> tuple[Deps, str]:
    """The deps and MONITORING_TOKEN, or the page explaining that the dashboard is off without it (503)."""
    deps = require_deps(request)
    if deps.settings.monitoring_token is None:
        raise request.app[DASHBOARD].refusal(web.HTTPServiceUnavailable,
                                             "The dashboard is off: set MONITORING_TOKEN to use it.")
    return deps, deps.settings.monitoring_token.get_secret_value()


async def page(request: web.Request) -> web.Response:
    """The page itself; its script shows the figures, or the sign-in form when there is no session."""
    _configured(request)
    return request.app[DASHBOARD].page()


async def login(request: web.Request) -> web.Response:
    """POST the token once: set the session cookie and go to the dashboard. Failures are limited per address."""
    _refuse_cross_site(request)
    deps, token = _configured(request)
    proxies = deps.settings.trusted_proxies
    dashboard, limiter = request.app[DASHBOARD], request.app[TOKEN_GUESSES]
    client = client_address(request, proxies)
    address = guesses_at("MONITORING_TOKEN", client)  # wrong bearers sent to the API count here too
    if wait := limiter.attempt(address):  # counted before the body is read: no race to the check
        minutes = -(-wait // 60)
        return dashboard.page(notice=f"Too many wrong tokens from here. Try again in {minutes} min.", status=429,
                              headers={"Retry-After": str(wait)})
    try:
        given = (await request.post()).get("token")
    except (ValueError, LookupError):  # not UTF-8, an unknown charset, multipart without its boundary
        return dashboard.page(notice="Send the sign-in form.", status=400)
    if not isinstance(given, str) or len(given) > MAX_TOKEN_CHARS or not token_matches(given.strip(), token):
        log.info("dashboard sign-in failed from %s", client)
        return dashboard.page(notice="That token is not right.", status=401)
    limiter.succeeded(address)
    response = _redirect()
    set_session(response, request, sign_session(token, now=deps.clock()), lifetime=SESSION_LIFETIME, proxies=proxies,
                public_url=deps.settings.public_url)
    return response


async def link(request: web.Request) -> web.Response:
    """A `/sales link` from Slack: check its signature and expiry, sign this device in, drop the link's URL."""
    deps, token = _configured(request)
    now = deps.clock()
    if (signed := verify(token, Purpose.LINK, request.match_info["signed"], now=now)) is None:
        return request.app[DASHBOARD].page(
            notice="This sign-in link has expired or is not valid. Type /sales link in Slack for a new one.",
            status=401)
    response = _redirect()
    session = sign_session(token, now=now, lifetime=LINK_SESSION_LIFETIME, subject=signed.subject)
    set_session(response, request, session, lifetime=LINK_SESSION_LIFETIME, proxies=deps.settings.trusted_proxies,
                public_url=deps.settings.public_url)
    return response


async def logout(request: web.Request) -> web.Response:
    """Forget the session cookie in this browser."""
    _refuse_cross_site(request)
    response = _redirect()
    settings = require_deps(request).settings
    clear_session(response, request, settings.trusted_proxies, settings.public_url)
    return response


async def data(request: web.Request) -> web.Response:
    """What the page shows (view), plus the JSON API's sales and health documents; needs the session cookie."""
    deps = require_deps(request)
    token = deps.settings.monitoring_token
    if token is None:
        raise json_error(web.HTTPServiceUnavailable, "MONITORING_TOKEN is not configured")
    if (session := session_of(request, token.get_secret_value(), now=deps.clock())) is None:
        raise json_error(web.HTTPUnauthorized, "sign in first")
    # Signed in from a /sales link: the policy is asked again, so a reader removed since is out at once.
    if session.subject is not None and not deps.access.reads_revenue(session.subject, None):
        raise json_error(web.HTTPUnauthorized, "you are no longer allowed to read the store's figures")
    (today, hourly), health, groups = await asyncio.gather(gather_sales(deps), gather_health(deps),
                                                           _responder_groups(deps))
    body = {"view": dashboard_view(today, hourly, health, tz=deps.settings.tz, groups=groups),
            "sales": sales_json(today, hourly), "health": health_json(health)}
    status = 503 if not health.database_ok and len(today.missing) >= 9 else 200
    return web.json_response(body, status=status)


async def _responder_groups(deps: Deps) -> tuple[GroupCheck, ...]:
    """ALERT_RESPONDERS' user groups for the Health card, as /health has them (cached); a slow Slack leaves them
    out rather than the page late."""
    try:
        async with asyncio.timeout(GROUPS_BUDGET):
            return await deps.access.responder_groups()
    except TimeoutError:
        return ()


async def to_dashboard(request: web.Request) -> web.Response:
    """/dashboard/ (a typed or bookmarked trailing slash) → /dashboard."""
    return _redirect()


def register(app: web.Application) -> None:
    """Add the routes."""
    app[DASHBOARD] = dashboard = Dashboard()
    app.router.add_get("/dashboard", page)
    app.router.add_get("/dashboard/", to_dashboard)
    app.router.add_post("/dashboard/login", login)
    app.router.add_post("/dashboard/logout", logout)
    app.router.add_get("/dashboard/link/{signed}", link)
    app.router.add_get("/dashboard/data", data)
    dashboard.assets.add_route(app)
