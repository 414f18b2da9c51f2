"""GET /metrics: Prometheus text format, behind Bearer MONITORING_TOKEN (503 when none is set)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.answers.snapshots import gather_within
from bot.metrics import Outbox
from bot.web.guards import require_bearer, require_deps
from queries import health

SCRAPE_BUDGET = 1.0


async def metrics(request: web.Request) -> web.Response:
    """Refresh the gauges that live in PostgreSQL, then expose everything."""
    deps = require_deps(request)
    # It counts orders by event type: the store's volume, live. 503 without a token, like the JSON API.
    require_bearer(request, deps.settings.monitoring_token, setting="MONITORING_TOKEN")
    now = deps.clock()
    got, _ = await gather_within(deps.pool, {"outbox": lambda db: health.outbox_backlog(db, now=now)},
                                 budget=SCRAPE_BUDGET)
    outbox = None
    if (backlog := got.get("outbox")) is not None:
        outbox = Outbox(backlog=backlog.pending,
                        oldest_age=(now - backlog.oldest).total_seconds() if backlog.oldest else 0.0,
                        oldest_due_age=(now - backlog.oldest_due).total_seconds() if backlog.oldest_due else 0.0)
    # Not read in time (PostgreSQL down or slow): those gauges are left out, never served stale.
    return web.Response(body=deps.metrics.render(outbox), headers={"Content-Type": CONTENT_TYPE_LATEST})


def register(app: web.Application) -> None:
    """Add the route."""
    app.router.add_get("/metrics", metrics)
