"""What every web route shares: one error handler, the readiness gate and the security headers.

`install(app)` wires them; handlers stay thin — they neither catch unexpected errors, nor check that the
service is ready, nor repeat headers. A route sets only what is its own: a page its Content-Security-Policy,
an asset its long Cache-Control.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from bot.db import DB_UNAVAILABLE
from bot.web.guards import gated, require_deps
from bot.web.signin import TOKEN_GUESSES, FailureLimiter

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# On every response, whatever the route. Pages loosen the CSP for their own script and style; everything
# else (JSON, text, redirects) loads nothing and may not be framed.
SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
DEFAULT_CSP: Final = "default-src 'none'; frame-ancestors 'none'"
DEFAULT_CACHE: Final = "no-store"  # figures and sign-in state must never sit in a shared cache


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place unexpected errors become responses: DB down → 503, anything else → logged 500; and a body
    over client_max_size a JSON 413 like every other refusal (aiohttp's own is plain text)."""
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge as exc:
        return web.json_response({"error": exc.text}, status=413)
    except web.HTTPException:
        raise
    except DB_UNAVAILABLE as exc:
        log.warning("database unavailable for %s %s: %s", request.method, request.path, exc)
        return web.json_response({"error": "database unavailable, retry later"}, status=503)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response({"error": "internal error"}, status=500)


@web.middleware
async def readiness_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every route but /healthz answers 503 "starting up" until Deps exist; unknown paths stay 404/405."""
    if request.match_info.http_exception is None and gated(request.match_info.handler):
        require_deps(request)
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Add the common headers to a response about to be sent, keeping any the route set itself.

    A response-prepare signal rather than a middleware: it also reaches streamed responses (the feed's
    Server-Sent Events send their headers before the handler returns) and raised HTTP exceptions.
    """
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
    response.headers.setdefault("Cache-Control", DEFAULT_CACHE)


def install(app: web.Application) -> None:
    """Wire the shared mechanism into a new application (before any request)."""
    app.middlewares.extend([errors_middleware, readiness_middleware])
    app.on_response_prepare.append(security_headers)
    app[TOKEN_GUESSES] = FailureLimiter()  # wrong tokens per client, whichever route they were tried on
