"""A fake of Slack's Socket Mode WebSocket on 127.0.0.1, for the Socket Mode tests."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class FakeSocketMode:
    """Slack's Socket Mode WebSocket on 127.0.0.1: says hello, sends envelopes, records what the app sends."""

    frames: list[dict[str, Any]] = field(default_factory=list)  # every JSON frame received, in order
    connections: int = 0
    url: str = ""
    connected: asyncio.Event = field(default_factory=asyncio.Event)  # set at the first hello sent
    _ws: web.WebSocketResponse | None = None
    _open: set[web.WebSocketResponse] = field(default_factory=set)
    _waiting: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None

    async def start(self) -> FakeSocketMode:
        """Listen on an ephemeral 127.0.0.1 port; `url` is what apps.connections.open should answer."""
        app = web.Application()
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started above
        self.url = f"ws://127.0.0.1:{port}/link"
        return self

    async def stop(self) -> None:
        """Close open connections, then shut the server down."""
        for ws in list(self._open):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def send(self, type_: str, payload: dict[str, Any], *, within: float = 5.0) -> dict[str, Any]:
        """Send an envelope over the current connection; return the app's response frame to it."""
        assert self._ws is not None and not self._ws.closed, "no Socket Mode connection"
        envelope_id = f"env-{next(self._ids)}"
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[envelope_id] = waiter
        await self._ws.send_json({"envelope_id": envelope_id, "type": type_, "payload": payload,
                                  "accepts_response_payload": True})
        try:
            return await asyncio.wait_for(waiter, within)
        finally:
            self._waiting.pop(envelope_id, None)

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()  # answers the client's pings itself (autoping)
        await ws.prepare(request)
        self.connections += 1
        self._ws = ws
        self._open.add(ws)
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "debug_info": {"host": "fake", "approximate_connection_time": 3600},
                            "connection_info": {"app_id": "A000"}})
        self.connected.set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                self.frames.append(frame)
                waiter = self._waiting.get(frame.get("envelope_id", ""))
                if waiter is not None and not waiter.done():
                    waiter.set_result(frame)
        finally:
            self._open.discard(ws)
        return ws


class TicketedSocket(FakeSocketMode):
    """Slack's temporary Socket Mode URLs: a handshake is accepted only with a ticket issued (by `issue`, which the
    fake Web API's apps.connections.open calls) less than `lifetime` seconds ago and not used before. Until
    `down_until` (time.monotonic()) every handshake gets a 503, as from Slack's edge during an outage."""

    def __init__(self, lifetime: float = 3.0) -> None:
        super().__init__()
        self.lifetime = lifetime
        self.issued: dict[str, float] = {}
        self.refused: list[str] = []  # "ticket:why" for every handshake refused
        self.down_until = 0.0
        self.most_open = 0  # the most sockets open at once
        self._tickets = itertools.count(1)

    def issue(self) -> str:
        ticket = f"t{next(self._tickets)}"
        self.issued[ticket] = time.monotonic()
        return f"{self.url}?ticket={ticket}"

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ticket = request.query.get("ticket", "")
        at = self.issued.get(ticket)
        if time.monotonic() < self.down_until:
            self.refused.append(f"{ticket}:503")
            raise web.HTTPServiceUnavailable()
        if at is None or time.monotonic() - at > self.lifetime:
            self.refused.append(f"{ticket}:expired")
            raise web.HTTPUnauthorized(text="invalid or expired ticket")
        self.issued.pop(ticket, None)
        self.most_open = max(self.most_open, len(self._open) + 1)
        return await super()._link(request)
