"""POST /webhooks/stripe: verify, store once, queue the ping — then answer. 2xx only for what is stored."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from bot.deps import deps_of
from bot.intake import ingest
from bot.payments import MalformedEvent
from bot.stripe.parse import parse_event
from bot.stripe.signature import BadSignature, verify

log = logging.getLogger(__name__)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def stripe_webhook(request: web.Request) -> web.Response:
    """Stripe's webhook endpoint: signature over the raw body first, then parse, then one transaction."""
    deps = deps_of(request)
    if deps is None:
        return _error(503, "starting up: the database is not ready yet")
    secrets = deps.settings.stripe_secrets()
    if not secrets:
        return _error(503, "STRIPE_WEBHOOK_SECRET is not configured")
    body = await request.read()  # over client_max_size → 413 from aiohttp before we get here
    try:
        verify(body, request.headers.get("Stripe-Signature"), secrets)
    except BadSignature as exc:
        return _error(400, f"invalid signature: {exc}")
    try:
        raw = json.loads(body)
        event = parse_event(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and MalformedEvent are ValueErrors
        reason = str(exc) if isinstance(exc, MalformedEvent) else "body is not valid JSON"
        return _error(400, f"malformed event: {reason}")
    async with deps.pool.acquire() as conn:
        result = await ingest(conn, source="stripe", event_id=raw["id"], event_type=raw["type"],
                              payload=raw, event=event, tz=deps.settings.tz, now=deps.clock())
    if result.queued:
        deps.worker.wake.set()
    log.info("stripe %s %s: %s", raw["type"], raw["id"], result.outcome.value)
    return web.json_response({"received": True, "outcome": result.outcome.value})


def register(app: web.Application) -> None:
    """Add the route."""
    app.router.add_post("/webhooks/stripe", stripe_webhook)
