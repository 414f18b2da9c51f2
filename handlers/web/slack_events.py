"""POST /slack/events: Slack's HTTP requests (commands, buttons, events) into the Bolt app."""

from __future__ import annotations

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.deps import RUNTIME


async def slack_events(request: web.Request) -> web.StreamResponse:
    """Hand the request to Bolt, which verifies the signature (401 when bad) and dispatches it."""
    bolt = request.app[RUNTIME].bolt
    if bolt is None:
        status = 503 if request.app[RUNTIME].deps is None else 404
        return web.json_response({"error": "Slack is not configured (local mode)" if status == 404
                                  else "starting up"}, status=status)
    # Invalid UTF-8 cannot carry a valid signature; decoding leniently lets Bolt answer 401 rather than crash.
    body = (await request.read()).decode("utf-8", errors="replace")
    bolt_request = AsyncBoltRequest(body=body, query=request.query_string,
                                    headers=dict(request.headers))
    return await to_aiohttp_response(await bolt.async_dispatch(bolt_request))


def register(app: web.Application) -> None:
    """Add the route."""
    app.router.add_post("/slack/events", slack_events)
