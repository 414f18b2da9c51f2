"""GET /: the local feed (local mode only) — every message the bot would post, per channel, live, with a
command box for /sales, /errors and /health, working buttons and the Settings view (`/sales settings`). No
Slack and no Bolt: the box calls the same `answer()` the slash commands use, the buttons the same alert
lifecycle and Share as in Slack, and the Settings form the same checks and save as its view_submission.

It acts as the owner with no sign-in, so it answers only a browser on this machine: a loopback peer with no
proxy's forwarding headers (`bot.web.feed_door`; 403 otherwise, saying what to use instead). The Host must be
loopback or an IP literal, so a rebinding DNS name cannot read it from that browser; its POSTs must be
same-origin JSON.
"""

from __future__ import annotations

import html
import ipaddress
import json
import logging
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web

from bot.access import LOCAL_OWNER
from bot.alerts.respond import Pressed, alert_id_of, press, unchanged_answer
from bot.answers.commands import answer
from bot.answers.share import parse_share_value, share_answer
from bot.blocks.alerts import ALERT_ACTIONS
from bot.blocks.common import SHARE_ACTION
from bot.deps import RUNTIME, Deps
from bot.settings.change import is_settings_command, submit, view_for
from bot.web.assets import StaticAssets, load_template
from bot.web.feed import Entry, LocalFeed
from bot.web.feed_door import from_this_machine, refusal
from bot.web.feed_modal import render_modal
from bot.web.feed_render import render_message
from bot.web.guards import from_our_pages, json_error, require_deps
from bot.web.signin import request_origin

log = logging.getLogger(__name__)

CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
              "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
LOCAL_USER: Final = LOCAL_OWNER  # who clicked or typed; the messages name them ("Acknowledged by @you")
MAX_LINE: Final = 500
KEEPALIVE_SECONDS: Final = 15.0


class Page:
    """The page template and its script and stylesheet, read once from the package."""

    def __init__(self) -> None:
        self.template = load_template("feed.html")
        self.assets = StaticAssets("/feed/static", {"feed.js": "text/javascript", "feed.css": "text/css"})


PAGE: Final = web.AppKey("feed_page", Page)


def channel_names(deps: Deps) -> dict[str, str]:
    """Logical channel → the name people know it by (a configured id is shown as it is)."""
    s = deps.settings
    return {"sales": s.slack_sales_channel, "alerts": s.slack_alerts_channel, "reports": s.slack_reports_channel}


def trusted_host(request: web.Request, deps: Deps) -> bool:
    """localhost, an IP literal or this server's HOST: not a name an attacker's DNS controls. Not PUBLIC_URL's
    host: that name reaches the bot through a proxy, for clients elsewhere."""
    try:
        name = urlsplit(f"//{request.host}").hostname or ""
    except ValueError:  # not even a host ("[::1" without its bracket)
        return False
    if name == "localhost" or name.endswith(".localhost") or name == deps.settings.host.lower():
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _feed(request: web.Request) -> tuple[Deps, LocalFeed]:
    """The deps and the feed; 404 outside local mode, 403 to anyone but a browser on this machine, 421 for a Host
    a rebinding DNS name could send."""
    deps = require_deps(request)
    if deps.feed is None:
        raise web.HTTPNotFound(text="The local feed exists in local mode only (no Slack credentials).")
    if not from_this_machine(request):
        log.debug("local feed refused to %s (%s): not a browser on this machine", request.remote, request.path)
        raise web.HTTPForbidden(text=refusal(deps.settings))
    if not trusted_host(request, deps):
        raise web.HTTPMisdirectedRequest(text="Open the feed through localhost or the server's address.")
    return deps, deps.feed


def _require_same_origin(request: web.Request, deps: Deps) -> None:
    """Refuse anything but a same-origin JSON POST, so no other page can click or type for you."""
    if not from_our_pages(request, deps.settings.public_url):
        raise json_error(web.HTTPForbidden, "cross-site requests are refused")
    if request.content_type != "application/json":
        raise json_error(web.HTTPUnsupportedMediaType, "send JSON")


async def asset(request: web.Request) -> web.Response:
    """The page's script and stylesheet: like the page, in local mode only (404 otherwise)."""
    _feed(request)
    return await request.app[PAGE].assets.serve(request)


async def page(request: web.Request) -> web.Response:
    """The feed page: channels, messages (filled in by its script) and the command box."""
    deps, _ = _feed(request)
    template, assets = request.app[PAGE].template, request.app[PAGE].assets
    channels = [{"id": key, "name": name} for key, name in channel_names(deps).items()]
    body = template.substitute(css=assets.url("feed.css"), js=assets.url("feed.js"),
                               channels=html.escape(json.dumps(channels), quote=True))
    return web.Response(text=body, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": CSP})


def _sse(entry: Entry, epoch: str) -> bytes:
    data = {**entry.as_json(), "html": render_message(entry.text, entry.blocks)}
    return f"id: {epoch}-{entry.seq}\ndata: {json.dumps(data)}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: the current messages, then every post and update as it happens.

    The browser resumes with Last-Event-ID (`epoch-seq`); from another epoch (a restart) it starts over.
    """
    _, feed = _feed(request)
    epoch, _, seq = request.headers.get("Last-Event-ID", "").partition("-")
    resumed = epoch == feed.epoch and seq.isascii() and seq.isdigit()  # int() refuses '²', which isdigit() takes
    last = int(seq) if resumed else 0
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
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
    except (ValueError, RecursionError, LookupError):  # deep nesting; LookupError: an unknown charset
        raise json_error(web.HTTPBadRequest, "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise json_error(web.HTTPBadRequest, "expected a JSON object")
    return body


async def command(request: web.Request) -> web.Response:
    """POST {"line": "/sales 7d", "channel": "sales"}: the reply only you see, as Slack would show it."""
    deps, _ = _feed(request)
    _require_same_origin(request, deps)
    body = await _json(request)
    name, _, text = str(body.get("line") or "").strip()[:MAX_LINE].partition(" ")
    name = "/" + name.lstrip("/").lower()
    channel = str(body.get("channel") or "sales")
    if is_settings_command(name, text):  # the Settings view, as a form on the page
        modal = render_modal(view_for(deps, LOCAL_USER))
        return web.json_response({"command": f"{name} {text.strip()}", "modal": modal})
    msg = await answer(deps, command=name, text=text, user_id=LOCAL_USER, channel_id=channel,
                       origin=request_origin(request, deps.settings.trusted_proxies))
    return web.json_response({"command": f"{name} {text.strip()}".strip(), "text": msg.text,
                              "html": render_message(msg.text, msg.blocks)})


async def action(request: web.Request) -> web.Response:
    """POST {"action_id", "value", "channel"}: a button clicked on the page, handled as a click in Slack."""
    deps, _ = _feed(request)
    _require_same_origin(request, deps)
    body = await _json(request)
    action_id, value = str(body.get("action_id") or ""), str(body.get("value") or "")
    channel = str(body.get("channel") or "")
    if action_id in ALERT_ACTIONS:
        return await _alert_button(deps, action_id, value)
    if action_id == SHARE_ACTION and channel in channel_names(deps):
        return await _share(deps, value, channel)
    return web.json_response({"error": f"no such button here: {action_id[:60]}"}, status=400)


async def view_submission(request: web.Request) -> web.Response:
    """POST {"values": view.state.values, "private_metadata": …}: the Settings form saved, as a view_submission
    from Slack would be (the metadata says what the form showed, so only what was changed in it is saved)."""
    deps, _ = _feed(request)
    _require_same_origin(request, deps)
    body = await _json(request)
    values, metadata = body.get("values"), body.get("private_metadata")
    if not isinstance(values, dict):
        return web.json_response({"error": "expected the view's state values"}, status=400)
    reply = await submit(deps, user=LOCAL_USER, state=values, metadata=metadata if isinstance(metadata, str) else None)
    return web.json_response(reply or {"ok": True})


async def _alert_button(deps: Deps, action_id: str, value: str) -> web.Response:
    """Acknowledge, silence or resolve, through the same code as a click in Slack; a click that changed nothing
    is answered as Slack answers it (the alert is over; where its incident fires again), for the page to show."""
    alert_id = alert_id_of(value)
    if alert_id is None:
        return web.json_response({"error": "not an alert id"}, status=400)
    pressed = await press(deps, action_id=action_id, alert_id=alert_id, user=LOCAL_USER, surface="feed")
    if pressed is not Pressed.UNCHANGED:
        return web.json_response({"ok": True, "changed": pressed is Pressed.CHANGED})
    said = await unchanged_answer(deps, alert_id, team_domain=None)  # no workspace: no Slack link to give
    return web.json_response({"ok": True, "changed": False, "text": said.text,
                              "html": render_message(said.text, said.blocks)})


async def _share(deps: Deps, value: str, channel: str) -> web.Response:
    """Post the answer, fresh, in the channel the command was typed in; the private reply goes away."""
    request = parse_share_value(value)
    if request is None:
        return web.json_response({"error": "not a value this bot wrote"}, status=400)
    post = await share_answer(deps, request, user_id=LOCAL_USER, channel_id=channel)
    await deps.sender.post(channel, post.as_payload())
    return web.json_response({"ok": True, "delete_original": True})


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
    app.router.add_post("/feed/view", view_submission)
    app.router.add_get("/feed/static/{name}", asset)
    app.on_shutdown.append(_close_streams)
