"""What a request must have before a web handler does anything: Deps (the service is ready), a bearer token.

Each guard returns what the handler needs or raises a typed aiohttp HTTP exception carrying the JSON answer,
so a handler reads top to bottom with no `X | web.Response` to unpack. The readiness middleware
(`bot.web.middleware`) calls `require_deps` before every route, so a route added later cannot forget it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from pydantic import SecretStr

from bot.deps import Deps, deps_of
from bot.web.session import token_matches
from bot.web.signin import TOKEN_GUESSES, client_address

STARTING_UP: Final = "starting up"
# Every route but /healthz answers this while the database is not ready; clients retry after a moment.
RETRY_WHILE_STARTING: Final = "2"
MONITORING_CHALLENGE: Final = 'Bearer realm="salespulse"'
_WHILE_STARTING: Final = "_salespulse_answers_while_starting"

H = TypeVar("H", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])


def json_error(exc: type[web.HTTPException], message: str, **headers: str) -> web.HTTPException:
    """An HTTP exception whose body is `{"error": message}`, ready to raise."""
    return exc(text=json.dumps({"error": message}), content_type="application/json", headers=headers or None)


def from_our_pages(request: web.Request, public_url: str | None) -> bool:
    """Whether a POST comes from this server's own pages: Fetch Metadata says same-origin (a sibling subdomain is
    another site's page), and any Origin is ours — the request's own, or PUBLIC_URL behind a TLS proxy. Browsers
    without Fetch Metadata (Safari before 16.4) still send Origin on a cross-site POST."""
    fetch_site = request.headers.get("Sec-Fetch-Site", "same-origin").lower()
    # "null": our own pages' forms under Referrer-Policy: no-referrer send that (Chromium does); Fetch Metadata
    # then says where the post came from.
    origin = None if request.headers.get("Origin") == "null" else request.headers.get("Origin")
    public = urlsplit(public_url or "")  # an Origin has no path: PUBLIC_URL may have one (a proxy's prefix)
    return fetch_site in ("same-origin", "none") and (not origin or origin in (
        f"{request.scheme}://{request.host}", f"{public.scheme}://{public.netloc}"))


def require_deps(request: web.Request) -> Deps:
    """The service's Deps; 503 `{"error": "starting up"}` (with Retry-After) while the database is not ready."""
    deps = deps_of(request)
    if deps is None:
        raise json_error(web.HTTPServiceUnavailable, STARTING_UP, **{hdrs.RETRY_AFTER: RETRY_WHILE_STARTING})
    return deps


def answers_while_starting(handler: H) -> H:
    """Mark a route the readiness middleware lets through before Deps exist (liveness only)."""
    setattr(handler, _WHILE_STARTING, True)  # a marker on the function itself, read by `gated`
    return handler


def gated(handler: object) -> bool:
    """Whether the readiness middleware holds this handler's requests until Deps exist."""
    return not getattr(handler, _WHILE_STARTING, False)


def bearer_matches(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time over digests (not even the token's length shows
    in the timing; session.token_matches encodes with surrogatepass, so no header value makes it raise)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and token_matches(given.strip(), token)


def guesses_at(setting: str, address: str) -> str:
    """The limiter's key: wrong guesses at one token, from one client. Counted per token, so a scraper left with a
    rotated MONITORING_TOKEN never locks the store's app out of its INTAKE_TOKEN door from the same address."""
    return f"{setting}|{address}"


def require_bearer(request: web.Request, token: SecretStr | None, *, setting: str,
                   challenge: str = MONITORING_CHALLENGE, refusal: str = "unauthorized") -> None:
    """Return when the request carries `token`; else raise 503 (no token configured), 401 with a challenge, or 429
    with Retry-After once this client has tried too many wrong tokens at this one (TOKEN_GUESSES, MONITORING_TOKEN's
    shared with the dashboard's sign-in form: judged or not, no answer then says whether a token was right)."""
    if token is None:
        raise json_error(web.HTTPServiceUnavailable, f"{setting} is not configured")
    limiter = request.app[TOKEN_GUESSES]
    address = guesses_at(setting, client_address(request, require_deps(request).settings.trusted_proxies))
    if wait := limiter.retry_after(address):
        raise json_error(web.HTTPTooManyRequests, f"too many wrong tokens from here; try again in {wait} s",
                         **{hdrs.RETRY_AFTER: str(wait)})
    header = request.headers.get(hdrs.AUTHORIZATION)
    if not bearer_matches(header, token.get_secret_value()):
        if header is not None:  # a guess; a request with no token at all guesses nothing
            limiter.failed(address)
        raise json_error(web.HTTPUnauthorized, refusal, **{hdrs.WWW_AUTHENTICATE: challenge})
