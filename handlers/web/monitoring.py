"""GET /api/monitoring/sales|errors|health: token-protected JSON from the same lookups as the commands."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from bot import __version__
from bot.api_views import errors_json, health_json, sales_json
from bot.deps import Deps, deps_of
from bot.periods import parse_period
from bot.scheduling import next_runs
from bot.snapshots import (
    HealthSnapshot,
    SalesSnapshot,
    errors_snapshot,
    gather_within,
    health_snapshot,
    sales_snapshot,
)
from handlers.web.auth import bearer_problem
from queries import sales
from queries.sales import TrendPoint

API_BUDGET = 5.0  # dashboards can wait a little longer than Slack


def _deps_or_problem(request: web.Request) -> Deps | web.Response:
    deps = deps_of(request)
    if deps is None:
        return web.json_response({"error": "starting up"}, status=503)
    problem = bearer_problem(request, deps.settings.monitoring_token, setting="MONITORING_TOKEN")
    return problem if problem is not None else deps


async def gather_sales(deps: Deps, *, budget: float = API_BUDGET) -> tuple[SalesSnapshot, list[TrendPoint] | None]:
    """Today's /sales figures and the last 24 hours by hour (None when that lookup did not arrive)."""
    now, tz = deps.clock(), deps.settings.tz
    today = await sales_snapshot(deps.pool, period=parse_period("", now=now, tz=tz), now=now, tz=tz,
                                 budget=budget)
    got, _ = await gather_within(deps.pool, {"hourly": lambda db: sales.trend(
        db, start=now - dt.timedelta(hours=24), end=now, bucket="hour", tz=tz.key)}, budget=budget)
    return today, got.get("hourly")


async def gather_health(deps: Deps, *, budget: float = API_BUDGET) -> HealthSnapshot:
    """The state of every component, as /health and the health JSON report it."""
    now, s = deps.clock(), deps.settings
    mode = "local" if s.local_mode else "socket" if s.slack_app_token else \
        "webhooks" if s.uses_incoming_webhooks else "http"
    return await health_snapshot(deps.pool, now=now, mode=mode, version=__version__,
                                 in_business_hours=s.business_hours.contains(now.astimezone(s.tz).time()),
                                 started_at=deps.started_at, site_url=s.site_url, next_jobs=next_runs(deps.scheduler),
                                 job_failures=tuple(deps.job_failures.recent), budget=budget)


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
