"""Bearer-token checks for the operator routes: constant-time, and 503 when no token is configured."""

from __future__ import annotations

import hmac

from aiohttp import web
from pydantic import SecretStr


def bearer_problem(request: web.Request, token: SecretStr | None, *, setting: str) -> web.Response | None:
    """None when the request carries the configured token; else the response to send instead."""
    if token is None:
        return web.json_response({"error": f"{setting} is not configured"}, status=503)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        return web.json_response({"error": "unauthorized"}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="salespulse"'})
    return None
