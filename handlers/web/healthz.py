"""GET /healthz: liveness for load balancers; 200 once migrations are applied and routes are ready."""

from __future__ import annotations

from aiohttp import web

from bot.deps import deps_of
from bot.web.guards import answers_while_starting


@answers_while_starting
async def healthz(request: web.Request) -> web.Response:
    """200 when serving, 503 while starting; nothing sensitive either way."""
    if deps_of(request) is None:
        return web.json_response({"status": "starting"}, status=503)
    return web.json_response({"status": "ok"})


def register(app: web.Application) -> None:
    """Add the route."""
    app.router.add_get("/healthz", healthz)
