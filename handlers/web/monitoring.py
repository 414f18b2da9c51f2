"""GET /api/monitoring/sales|errors|health: token-protected JSON from the same lookups as the commands."""

from __future__ import annotations

from aiohttp import web

from bot.answers.gather import API_BUDGET, gather_health, gather_sales
from bot.answers.json_views import errors_json, health_json, sales_json
from bot.answers.snapshots import (
    errors_snapshot,
)
from bot.deps import Deps, deps_of
from bot.periods import parse_period
from bot.web.auth import bearer_problem


def _deps_or_problem(request: web.Request) -> Deps | web.Response:
    deps = deps_of(request)
    if deps is None:
        return web.json_response({"error": "starting up"}, status=503)
    problem = bearer_problem(request, deps.settings.monitoring_token, setting="MONITORING_TOKEN")
    return problem if problem is not None else deps


def _respond(body: dict[str, object], *, everything_missing: bool) -> web.Response:
    if everything_missing:  # nothing could be read: say so, don't serve an all-null document
        return web.json_response({"error": "database unavailable", **body}, status=503)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def sales_api(request: web.Request) -> web.Response:
    """Last hour, today (store time zone), hourly sales over 24 h, pending checkouts."""
    deps = _deps_or_problem(request)
    if isinstance(deps, web.Response):
        return deps
    today, hourly = await gather_sales(deps)
    return _respond(sales_json(today, hourly), everything_missing=len(today.missing) >= 9)


async def errors_api(request: web.Request) -> web.Response:
    """Errors in the last hour, as the original guide's errors endpoint."""
    deps = _deps_or_problem(request)
    if isinstance(deps, web.Response):
        return deps
    now, tz = deps.clock(), deps.settings.tz
    snapshot = await errors_snapshot(deps.pool, period=parse_period("1h", now=now, tz=tz), now=now,
                                     budget=API_BUDGET)
    return _respond(errors_json(snapshot), everything_missing=len(snapshot.missing) >= 9)


async def health_api(request: web.Request) -> web.Response:
    """Component states and ages; 503 when the database cannot be reached."""
    deps = _deps_or_problem(request)
    if isinstance(deps, web.Response):
        return deps
    snapshot = await gather_health(deps)
    body = health_json(snapshot)
    return web.json_response(body, status=200 if snapshot.database_ok else 503,
                             headers={"Cache-Control": "no-store"})


def register(app: web.Application) -> None:
    """Add the routes."""
    app.router.add_get("/api/monitoring/sales", sales_api)
    app.router.add_get("/api/monitoring/errors", errors_api)
    app.router.add_get("/api/monitoring/health", health_api)
