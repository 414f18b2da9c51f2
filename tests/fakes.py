"""Fakes at the HTTP boundary: a Slack Web API server on 127.0.0.1, and Stripe's request signing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web


def stripe_signature(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The Stripe-Signature header exactly as Stripe computes it: HMAC-SHA256 of "t.body", hex."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def slack_signature(body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """X-Slack-Signature headers exactly as Slack computes them: v0=HMAC-SHA256("v0:ts:body")."""
    t = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{t}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": t, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class Call:
    """One request the fake received."""

    method: str
    args: dict[str, Any]
    answered: int  # the HTTP status it answered with


@dataclass
class Fault:
    """A canned failure for the next matching calls."""

    status: int
    retry_after: int | None = None
    error: str | None = None  # an `ok: false` error body with HTTP 200
    delay: float = 0.0


@dataclass
class FakeSlack:
    """A Slack Web API stand-in that records calls and fails on demand (429, 5xx, errors, slowness)."""

    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    url: str = ""
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None

    def fail_next(self, count: int, *, status: int = 500, retry_after: int | None = None,
                  error: str | None = None, delay: float = 0.0) -> None:
        """Make the next `count` API calls fail this way."""
        self.faults.extend(Fault(status, retry_after, error, delay) for _ in range(count))

    def posted(self, method: str = "chat.postMessage") -> list[dict[str, Any]]:
        """Arguments of the successful calls to `method`."""
        return [c.args for c in self.calls if c.method == method and c.answered == 200
                and c.args.get("_ok", True)]

    async def start(self) -> FakeSlack:
        """Listen on an ephemeral 127.0.0.1 port; `url` is the API base to configure."""
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post("/hooks/{name}", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started above
        self.url = f"http://127.0.0.1:{port}/api/"
        return self

    async def stop(self) -> None:
        """Shut the server down."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _args(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            data = await request.json()
            return dict(data) if isinstance(data, dict) else {}
        args: dict[str, Any] = dict(parse_qsl(await request.text()))
        for key in ("blocks", "attachments", "view", "files"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        if self.faults:
            fault = self.faults.pop(0)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.error is not None:
                self.calls.append(Call(method, {**args, "_ok": False}, 200))
                return web.json_response({"ok": False, "error": fault.error})
            self.calls.append(Call(method, args, fault.status))
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            body = {"ok": False, "error": "ratelimited" if fault.status == 429 else "internal_error"}
            return web.json_response(body, status=fault.status, headers=headers)
        self.calls.append(Call(method, args, 200))
        return web.json_response(self._answer(method, args))

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "team": "Test Store", "team_id": "T000", "user": "salespulse",
                    "user_id": "U0BOT", "bot_id": "B0BOT", "url": "https://test.slack.com/"}
        if method in ("chat.postMessage", "chat.update"):
            ts = args.get("ts") or f"{1700000000 + next(self._ts)}.000100"
            return {"ok": True, "channel": args.get("channel", "C000"), "ts": ts,
                    "message": {"text": args.get("text"), "blocks": args.get("blocks")}}
        return {"ok": True}

    async def _hook(self, request: web.Request) -> web.Response:
        args = await self._args(request)
        method = f"hook:{request.match_info['name']}"
        if self.faults:
            fault = self.faults.pop(0)
            self.calls.append(Call(method, args, fault.status))
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return web.Response(text=fault.error or "error", status=fault.status, headers=headers)
        self.calls.append(Call(method, args, 200))
        return web.Response(text="ok")
