"""GET /api/monitoring/sales|errors|health: token-protected JSON from the same lookups as the commands."""

from __future__ import annotations

from aiohttp import web

from bot.answers.errors_snapshot import errors_snapshot
from bot.answers.gather import API_BUDGET, gather_health, gather_sales
from bot.answers.json_views import errors_json, health_json, sales_json
from bot.deps import Deps
from bot.periods import parse_period
from bot.web.guards import require_bearer, require_deps


def _authorized(request: web.Request) -> Deps:
    """The deps, once the request carries MONITORING_TOKEN (401/503 otherwise)."""
    deps = require_deps(request)
    require_bearer(request, deps.settings.monitoring_token, setting="MONITORING_TOKEN")
    return deps


def _respond(body: dict[str, object], *, everything_missing: bool) -> web.Response:
    if everything_missing:  # nothing could be read: say so, don't serve an all-null document
        return web.json_response({"error": "database unavailable", **body}, status=503)
    return web.json_response(body)


async def sales_api(request: web.Request) -> web.Response:
    """Last hour, today (store time zone), hourly sales over 24 h, pending checkouts."""
    deps = _authorized(request)
    today, hourly = await gather_sales(deps)
    # 503 when (nearly) every lookup of the sales figures failed: the database, not one slow part. The hourly
    # series is counted apart, so its own miss does not tip a 200 into a 503.
    sales_missing = [m for m in today.missing if m != "hourly"]
    return _respond(sales_json(today, hourly), everything_missing=len(sales_missing) >= 9)


async def errors_api(request: web.Request) -> web.Response:
    """Errors in the last hour, as the original guide's errors endpoint."""
    deps = _authorized(request)
    now, tz = deps.clock(), deps.settings.tz
    snapshot = await errors_snapshot(deps.pool, period=parse_period("1h", now=now, tz=tz), now=now,
                                     budget=API_BUDGET)
    return _respond(errors_json(snapshot), everything_missing=len(snapshot.missing) >= 9)


async def health_api(request: web.Request) -> web.Response:
    """Component states and ages; 503 when the database cannot be reached."""
    deps = _authorized(request)
    snapshot = await gather_health(deps)
    body = health_json(snapshot)
    return web.json_response(body, status=200 if snapshot.database_ok else 503)


def register(app: web.Application) -> None:
    """Add the routes."""
    app.router.add_get("/api/monitoring/sales", sales_api)
    app.router.add_get("/api/monitoring/errors", errors_api)
    app.router.add_get("/api/monitoring/health", health_api)
