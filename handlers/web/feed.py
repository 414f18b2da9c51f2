"""GET /: the local feed (local mode only) — every message the bot would post, per channel, live, with a
command box for /sales, /errors and /health and working buttons. No Slack and no Bolt: the box calls the
same `answer()` the slash commands use, and the buttons the same alert lifecycle and Share as in Slack.

The page is served only to a loopback or IP-literal Host (or PUBLIC_URL's), so a rebinding DNS name cannot
read it from someone's browser; its POSTs must be same-origin JSON.
"""

from __future__ import annotations

import hashlib
import html
import ipaddress
import json
import logging
from importlib import resources
from string import Template
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web

from bot.access import LOCAL_OWNER
from bot.alerts.respond import Pressed, alert_id_of, press
from bot.answers.commands import answer
from bot.answers.share import parse_share_value, share_answer
from bot.blocks.alerts import ALERT_ACTIONS
from bot.blocks.common import SHARE_ACTION
from bot.deps import RUNTIME, Deps, deps_of
from bot.web.feed import Entry, LocalFeed
from bot.web.feed_render import render_message

log = logging.getLogger(__name__)

CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
              "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS: Final = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                       "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
STATIC_TYPES: Final = {"feed.js": "text/javascript", "feed.css": "text/css"}
LOCAL_USER: Final = LOCAL_OWNER  # who clicked or typed; the messages name them ("Acknowledged by @you")
MAX_LINE: Final = 500
KEEPALIVE_SECONDS: Final = 15.0


class Page:
    """The page template and its static files, read once from the package, each URL carrying its hash."""

    def __init__(self) -> None:
        root = resources.files("bot.web")
        self.files = {name: root.joinpath(name).read_bytes() for name in STATIC_TYPES}
        self.urls = {name: f"/feed/static/{name}?v={hashlib.sha256(body).hexdigest()[:12]}"
                     for name, body in self.files.items()}
        self.template = Template(root.joinpath("feed.html").read_text(encoding="utf-8"))


PAGE: Final = web.AppKey("feed_page", Page)


def channel_names(deps: Deps) -> dict[str, str]:
    """Logical channel → the name people know it by (a configured id is shown as it is)."""
    s = deps.settings
    return {"sales": s.slack_sales_channel, "alerts": s.slack_alerts_channel, "reports": s.slack_reports_channel}


def trusted_host(request: web.Request, deps: Deps) -> bool:
    """localhost, an IP literal, this server's HOST or PUBLIC_URL's host: not a name an attacker's DNS controls."""
    name = urlsplit(f"//{request.host}").hostname or ""
    if name == "localhost" or name.endswith(".localhost") or name == deps.settings.host.lower():
        return True
    public = urlsplit(deps.settings.public_url or "").hostname
    if public and name == public:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _feed(request: web.Request) -> tuple[Deps, LocalFeed] | web.Response:
    """The deps and the feed, or why there is no feed here."""
    deps = deps_of(request)
    if deps is None:
        return web.Response(text="salespulse is starting — reload in a moment.", status=503,
                            headers={"Retry-After": "2", **PAGE_HEADERS})
    if deps.feed is None:
        raise web.HTTPNotFound(text="The local feed exists in local mode only (no Slack credentials).")
    if not trusted_host(request, deps):
        return web.Response(text="Open the feed through localhost or the server's address.", status=421,
                            headers=PAGE_HEADERS)
    return deps, deps.feed


def _same_origin(request: web.Request, deps: Deps) -> web.Response | None:
    """Refuse anything but a same-origin JSON POST, so no other page can click or type for you."""
    fetch_site = request.headers.get("Sec-Fetch-Site", "same-origin").lower()
    origin = request.headers.get("Origin")
    ours = (f"{request.scheme}://{request.host}", deps.settings.public_url)  # PUBLIC_URL: behind a TLS proxy
    if fetch_site not in ("same-origin", "none") or (origin and origin not in ours):
        return web.json_response({"error": "cross-site requests are refused"}, status=403)
    if request.content_type != "application/json":
        return web.json_response({"error": "send JSON"}, status=415)
    return None


async def page(request: web.Request) -> web.Response:
    """The feed page: channels, messages (filled in by its script) and the command box."""
    found = _feed(request)
    if isinstance(found, web.Response):
        return found
    deps, _ = found
    assets = request.app[PAGE]
    channels = [{"id": key, "name": name} for key, name in channel_names(deps).items()]
    body = assets.template.substitute(css=assets.urls["feed.css"], js=assets.urls["feed.js"],
                                      channels=html.escape(json.dumps(channels), quote=True))
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)


def _sse(entry: Entry, epoch: str) -> bytes:
    data = {**entry.as_json(), "html": render_message(entry.text, entry.blocks)}
    return f"id: {epoch}-{entry.seq}\ndata: {json.dumps(data)}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: the current messages, then every post and update as it happens.

    The browser resumes with Last-Event-ID (`epoch-seq`); from another epoch (a restart) it starts over.
    """
    found = _feed(request)
    if isinstance(found, web.Response):
        return found
    _, feed = found
    epoch, _, seq = request.headers.get("Last-Event-ID", "").partition("-")
    resumed = epoch == feed.epoch and seq.isdigit()
    last = int(seq) if resumed else 0
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                       "X-Content-Type-Options": "nosniff", "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    try:
        await resp.write(b"retry: 2000\n\n" + (b"" if resumed or not epoch else b"event: reset\ndata: {}\n\n"))
        while not feed.closed:
            for entry in feed.since(last):
                await resp.write(_sse(entry, feed.epoch))
                last = entry.seq
            if not await feed.wait(last, within=KEEPALIVE_SECONDS) and not feed.closed:
                await resp.write(b": keepalive\n\n")  # also how a closed tab is noticed
    except ConnectionResetError:
        pass  # the page was closed or reloaded; EventSource reconnects by itself
    return resp


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise web.HTTPBadRequest(text="invalid JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


async def command(request: web.Request) -> web.Response:
    """POST {"line": "/sales 7d", "channel": "sales"}: the reply only you see, as Slack would show it."""
    found = _feed(request)
    if isinstance(found, web.Response):
        return found
    deps, _ = found
    if (refused := _same_origin(request, deps)) is not None:
        return refused
    body = await _json(request)
    name, _, text = str(body.get("line") or "").strip()[:MAX_LINE].partition(" ")
    name = "/" + name.lstrip("/").lower()
    channel = str(body.get("channel") or "sales")
    msg = await answer(deps, command=name, text=text, user_id=LOCAL_USER, channel_id=channel)
    return web.json_response({"command": f"{name} {text.strip()}".strip(), "text": msg.text,
                              "html": render_message(msg.text, msg.blocks)})


async def action(request: web.Request) -> web.Response:
    """POST {"action_id", "value", "channel"}: a button clicked on the page, handled as a click in Slack."""
    found = _feed(request)
    if isinstance(found, web.Response):
        return found
    deps, _ = found
    if (refused := _same_origin(request, deps)) is not None:
        return refused
    body = await _json(request)
    action_id, value = str(body.get("action_id") or ""), str(body.get("value") or "")
    channel = str(body.get("channel") or "")
    if action_id in ALERT_ACTIONS:
        return await _alert_button(deps, action_id, value)
    if action_id == SHARE_ACTION and channel in channel_names(deps):
        return await _share(deps, value, channel)
    return web.json_response({"error": f"no such button here: {action_id[:60]}"}, status=400)


async def _alert_button(deps: Deps, action_id: str, value: str) -> web.Response:
    """Acknowledge, silence or resolve, through the same code as a click in Slack."""
    alert_id = alert_id_of(value)
    if alert_id is None:
        return web.json_response({"error": "not an alert id"}, status=400)
    pressed = await press(deps, action_id=action_id, alert_id=alert_id, user=LOCAL_USER, surface="feed")
    return web.json_response({"ok": True, "changed": pressed is Pressed.CHANGED})


async def _share(deps: Deps, value: str, channel: str) -> web.Response:
    """Post the answer, fresh, in the channel the command was typed in; the private reply goes away."""
    request = parse_share_value(value)
    if request is None:
        return web.json_response({"error": "not a value this bot wrote"}, status=400)
    post = await share_answer(deps, request, user_id=LOCAL_USER, channel_id=channel)
    await deps.sender.post(channel, post.as_payload())
    return web.json_response({"ok": True, "delete_original": True})


async def static(request: web.Request) -> web.Response:
    """The script and the stylesheet; cached for good, as every URL carries the file's hash."""
    name = request.match_info["name"]
    body = request.app[PAGE].files.get(name)
    if body is None:
        raise web.HTTPNotFound()
    return web.Response(body=body, content_type=STATIC_TYPES[name], charset="utf-8",
                        headers={"Cache-Control": "public, max-age=31536000, immutable",
                                 "X-Content-Type-Options": "nosniff"})


async def _close_streams(app: web.Application) -> None:
    """Shutting down: end the open event streams, or they would hold the server up."""
    deps = app[RUNTIME].deps
    if deps is not None and deps.feed is not None:
        deps.feed.close()


def register(app: web.Application) -> None:
    """Add the routes."""
    app[PAGE] = Page()
    app.router.add_get("/", page)
    app.router.add_get("/feed/events", events)
    app.router.add_post("/feed/command", command)
    app.router.add_post("/feed/action", action)
    app.router.add_get("/feed/static/{name}", static)
    app.on_shutdown.append(_close_streams)
