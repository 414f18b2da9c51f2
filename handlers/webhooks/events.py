"""POST /webhooks/events: the store's own app reports errors, sync failures and orders (Bearer INTAKE_TOKEN).

The body is one event object or {"events": [...]} with up to 100; every event is validated before any is
stored, and a batch is stored in one transaction, so it is all or nothing. Clients should send an `id` with
every event: a resend of an id already stored is a no-op, while events without one are always new.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.intake.app_events import BadEvents, parse_events, store_events
from bot.web.guards import require_bearer, require_deps

log = logging.getLogger(__name__)


async def events_webhook(request: web.Request) -> web.Response:
    """Auth before the body is read; validate everything; store in one transaction; then answer."""
    deps = require_deps(request)
    require_bearer(request, deps.settings.intake_token, setting="INTAKE_TOKEN", challenge="Bearer",
                   refusal="missing or invalid bearer token")
    if request.content_type != "application/json":
        return web.json_response({"error": "Content-Type must be application/json"}, status=415)
    body = await request.read()  # over client_max_size → 413 from aiohttp before we get here
    now = deps.clock()
    try:
        events = parse_events(body, now=now)
    except BadEvents as exc:
        deps.metrics.webhook_received("app", "unknown", "malformed")
        return web.json_response({"error": str(exc), "problems": exc.problems}, status=400)
    async with deps.pool.acquire() as conn, conn.transaction():
        status, queued = await store_events(conn, events, tz=deps.settings.tz, now=now)
    if queued:
        deps.home.changed()  # a custom order: App Home tabs refresh once the burst settles
    results = [{"type": e.type, "id": e.id, "status": status[i]} for i, e in enumerate(events)]
    for index, event in enumerate(events):  # as Stripe's are counted: by source, type and outcome (stored, …)
        deps.metrics.webhook_received("app", event.type, status[index])
    log.info("app events: %d received, %d new", len(events), list(status.values()).count("stored"))
    return web.json_response({"received": len(events), "results": results})


def register(app: web.Application) -> None:
    """Add the route."""
    app.router.add_post("/webhooks/events", events_webhook)
