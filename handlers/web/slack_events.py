"""POST /slack/events: Slack's HTTP requests (commands, buttons, events) into the Bolt app."""

from __future__ import annotations

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.deps import RUNTIME
from bot.web.guards import require_deps
from bot.web.signin import ORIGIN, request_origin


async def slack_events(request: web.Request) -> web.StreamResponse:
    """Verify Slack's signature (401 when missing or bad), then hand the request to Bolt to dispatch.

    In every mode an unsigned request is refused with 401: Socket Mode turns Bolt's own check off (its frames arrive
    on an authenticated WebSocket), and local mode has no Slack at all, so without a signing secret no request can
    be verified and every one is refused.
    """
    deps = require_deps(request)  # Bolt is attached with the deps: until then, "starting up"
    bolt, secret = request.app[RUNTIME].bolt, request.app[RUNTIME].signing_secret
    if bolt is None:
        return web.json_response({"error": "invalid request signature: Slack is not configured (local mode)"},
                                 status=401)
    if secret is None:
        return web.json_response({"error": "invalid request signature: no SLACK_SIGNING_SECRET (Slack requests "
                                           "arrive over Socket Mode)"}, status=401)
    # Bytes that are not UTF-8 are kept as lone surrogates, which slack_sdk's verifier cannot encode back (a
    # ValueError, caught in _signed): such a body can match no signature and is a 401 like any unsigned request.
    raw = (await request.read()).decode("utf-8", errors="surrogateescape")
    # Verified here first (slack_sdk's verifier, as Bolt does again) because Bolt parses the body before it
    # checks the signature: unsigned garbage must be a 401, not a parsing error.
    headers = {k.lower(): v for k, v in request.headers.items()}
    if not _signed(SignatureVerifier(secret), raw, headers):
        return web.json_response({"error": "invalid request signature"}, status=401)
    try:
        origin = request_origin(request, deps.settings.trusted_proxies)
        bolt_request = AsyncBoltRequest(body=raw, query=request.query_string, headers=dict(request.headers),
                                        context={ORIGIN: origin})
    except (ValueError, RecursionError, AttributeError, TypeError):
        # Signed, but not a Slack payload: bad or absurdly deep JSON, or JSON that is not an object (Bolt calls
        # .get on it).
        return web.json_response({"error": "malformed Slack payload"}, status=400)
    return await to_aiohttp_response(await bolt.async_dispatch(bolt_request))


def _signed(verifier: SignatureVerifier, raw: str, headers: dict[str, str]) -> bool:
    try:
        return verifier.is_valid_request(raw, headers)
    except ValueError:  # slack_sdk reads the timestamp with int(): one that is not a number is no signature
        return False
    except TypeError:  # a signature with non-ASCII characters, which hmac.compare_digest refuses to compare
        return False


def register(app: web.Application) -> None:
    """Add the route."""
    app.router.add_post("/slack/events", slack_events)
