"""POST /webhooks/stripe: verify, store once, queue the ping — then answer. 2xx only for what is stored."""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from bot.intake.events import MalformedEvent
from bot.intake.result import Outcome
from bot.stripe.received import submission
from bot.stripe.signature import BadSignature, verify
from bot.web.guards import require_deps

log = logging.getLogger(__name__)


# The answer to each outcome, encoded once: one per webhook, on the intake's hot path.
_ANSWERS = {o: json.dumps({"received": True, "outcome": o.value}).encode() for o in Outcome}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def stripe_webhook(request: web.Request) -> web.Response:
    """Stripe's webhook endpoint: signature over the raw body first, then parse, then one transaction."""
    deps = require_deps(request)
    secrets = deps.settings.stripe_secrets()
    if not secrets:
        return _error(503, "STRIPE_WEBHOOK_SECRET is not configured")
    started = time.perf_counter()
    body = await request.read()  # over client_max_size → 413 from aiohttp before we get here
    try:
        verify(body, request.headers.get("Stripe-Signature"), secrets)
    except BadSignature as exc:
        deps.metrics.webhook_received("stripe", "unknown", "bad_signature")
        return _error(400, f"invalid signature: {exc}")
    text = body.decode("utf-8")  # verify() has checked it is UTF-8
    try:
        sub = submission(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and MalformedEvent are ValueErrors
        reason = str(exc) if isinstance(exc, MalformedEvent) else _not_json(exc)
        deps.metrics.webhook_received("stripe", "unknown", "malformed")
        return _error(400, f"malformed event: {reason}")
    # When every intake writer is busy the event is only stored, and applied moments later: 202, not 200.
    result = await deps.intake.submit(sub, may_store=True)
    if result.outcome is Outcome.PROCESSED:
        deps.home.changed()  # App Home tabs refresh once the burst settles
    deps.metrics.webhook_received("stripe", sub.event_type, result.outcome.value, time.perf_counter() - started)
    log.debug("stripe %s %s: %s", sub.event_type, sub.event_id, result.outcome.value)
    return web.Response(body=_ANSWERS[result.outcome], status=202 if result.outcome is Outcome.QUEUED else 200,
                        content_type="application/json")


def _not_json(exc: Exception) -> str:
    """Why the body is not JSON we can store: where the parser stopped, a NaN, a NUL character, or too deep."""
    if isinstance(exc, RecursionError):
        return "body is not valid JSON: nested too deeply"
    return f"body is not valid JSON: {str(exc)[:200]}"


def register(app: web.Application) -> None:
    """Add the route."""
    app.router.add_post("/webhooks/stripe", stripe_webhook)
