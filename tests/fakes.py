"""Fakes at the HTTP boundary: a Slack Web API server on 127.0.0.1, and Stripe's request signing."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fake_views import views_answer


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
    headers: dict[str, str] = field(default_factory=dict)  # the request's headers (Authorization: Bearer …)
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))  # when it arrived


@dataclass
class Fault:
    """A canned failure for the next matching calls."""

    status: int
    retry_after: int | None = None
    error: str | None = None  # an `ok: false` error body with HTTP 200
    delay: float = 0.0
    accept: bool = False  # process the call normally, but only answer after `delay` (a reply lost in transit)
    method: str | None = None  # only calls to this method (None: the next call, whatever it is)


@dataclass
class FakeChannel:
    """A channel as Slack keeps it: id, name, public or private, archived, and whether the bot is in it."""

    id: str
    name: str
    private: bool = False
    archived: bool = False
    bot_member: bool = False  # a fresh install with chat:write.public: posts work, reading back does not

    def info(self) -> dict[str, Any]:
        """The conversation object Slack's conversations.* methods answer with (the fields the bot reads)."""
        return {"id": self.id, "name": self.name, "is_channel": not self.private, "is_group": self.private,
                "is_private": self.private, "is_archived": self.archived, "is_member": self.bot_member}


def default_channels() -> dict[str, FakeChannel]:
    """The three channels the bot posts to by default: public, the bot not yet in them."""
    return {c.id: c for c in (FakeChannel("C0SALES", "sales-notifications"), FakeChannel("C0ALERTS", "system-alerts"),
                              FakeChannel("C0REPORTS", "daily-reports"))}


@dataclass
class FakeSlack:
    """A Slack Web API stand-in that records calls and fails on demand (429, 5xx, errors, slowness)."""

    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    url: str = ""
    socket_url: str | None = None  # what apps.connections.open answers with (a FakeSocketMode's `url`)
    socket_urls: Callable[[], str] | None = None  # when set, a new URL for each apps.connections.open (wins)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    uploads: dict[str, bytes] = field(default_factory=dict)  # file id → bytes POSTed to its upload URL
    _files: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    messages: list[dict[str, Any]] = field(default_factory=list)  # what the channels now show
    chaos: Callable[[str], Fault | None] | None = None  # consulted on every call when no fault is queued
    usergroups: dict[str, list[str]] = field(default_factory=dict)  # user group id → member ids
    channels: dict[str, FakeChannel] = field(default_factory=default_channels)  # id → channel
    page_size: int | None = None  # at most this many items per page, whatever `limit` asks (Slack may send fewer)
    dead_hooks: dict[str, str] = field(default_factory=dict)  # response_url name → "expired_url" | "used_url"
    hook_uses: int | None = None  # like Slack's response_url: at most this many uses each (Slack: 5)
    file_shares: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # file id → where it was shared
    team_orgs: dict[str, str] = field(default_factory=dict)  # workspace id → its Grid organisation (team.info)
    home_hashes: dict[str, str] = field(default_factory=dict)  # user id → the hash of the view on their Home tab

    def add_channel(self, channel_id: str, name: str, *, private: bool = False, member: bool = False) -> FakeChannel:
        """Create a channel in the workspace."""
        self.channels[channel_id] = FakeChannel(channel_id, name, private=private, bot_member=member)
        return self.channels[channel_id]

    def channel(self, ref: Any, *, by_name: bool = False) -> FakeChannel | None:
        """The channel with this id (or, where Slack accepts one, `#name`/`name`)."""
        found = self.channels.get(str(ref))
        if found is None and by_name:
            found = next((c for c in self.channels.values() if str(ref).removeprefix("#") == c.name), None)
        return found

    def fail_next(self, count: int, *, status: int = 500, retry_after: int | None = None,
                  error: str | None = None, delay: float = 0.0, accept: bool = False,
                  method: str | None = None) -> None:
        """Make the next `count` API calls (to `method`, when given) fail this way (`accept`: succeed, but
        answer only after `delay`)."""
        self.faults.extend(Fault(status, retry_after, error, delay, accept, method) for _ in range(count))

    def _fault_for(self, method: str) -> Fault | None:
        """The first queued fault that applies to a call of `method`, taken off the queue."""
        if not self.faults and self.chaos is not None and (fault := self.chaos(method)) is not None:
            return fault
        for n, fault in enumerate(self.faults):
            if fault.method in (None, method):
                return self.faults.pop(n)
        return None

    def posted(self, method: str = "chat.postMessage") -> list[dict[str, Any]]:
        """Arguments of the successful calls to `method`."""
        return [c.args for c in self.calls if c.method == method and c.answered == 200
                and c.args.get("_ok", True)]

    async def start(self) -> Self:
        """Listen on an ephemeral 127.0.0.1 port; `url` is the API base to configure."""
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/hooks/{name}", self._hook)
        app.router.add_post("/upload/{file_id}", self._upload)
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
        if request.method == "GET":
            return dict(request.query)
        if request.content_type == "application/json":
            data = await request.json()
            return dict(data) if isinstance(data, dict) else {}
        # slack_sdk sends some methods' arguments (files.*UploadExternal) as a POST's query string.
        args: dict[str, Any] = {**request.query, **dict(parse_qsl(await request.text()))}
        for key in ("blocks", "attachments", "view", "files"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        headers = dict(request.headers)
        fault = self._fault_for(method)
        if fault is not None and fault.accept:
            answer = self._answer(method, args)
            self.calls.append(Call(method, args if answer["ok"] else {**args, "_ok": False}, 200, headers))
            await asyncio.sleep(fault.delay)  # the message is in the channel; the answer is late
            return web.json_response(answer)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.error is not None:
                self.calls.append(Call(method, {**args, "_ok": False}, 200, headers))
                return web.json_response({"ok": False, "error": fault.error})
            self.calls.append(Call(method, args, fault.status, headers))
            retry = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            body = {"ok": False, "error": "ratelimited" if fault.status == 429 else "internal_error"}
            return web.json_response(body, status=fault.status, headers=retry)
        answer = self._answer(method, args)
        self.calls.append(Call(method, args if answer["ok"] else {**args, "_ok": False}, 200, headers))
        return web.json_response(answer)

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "team": "Test Store", "team_id": "T000", "user": "salespulse",
                    "user_id": "U0BOT", "bot_id": "B0BOT", "url": "https://test.slack.com/"}
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            return self._chat(method, args)
        if method in ("conversations.history", "conversations.replies"):
            return self._history(method, args)
        if method.startswith("conversations."):
            return self._conversations(method, args)
        if method == "usergroups.users.list":
            group = str(args.get("usergroup"))
            if group not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": self.usergroups[group]}
        if method == "team.info":  # a workspace's `enterprise_id` only when it belongs to a Grid organisation
            team = str(args.get("team") or "T000")
            return {"ok": True, "team": {"id": team, "name": team, "domain": team.lower()}
                    | ({"enterprise_id": self.team_orgs[team]} if team in self.team_orgs else {})}
        if method == "apps.connections.open" and self.socket_urls is not None:
            return {"ok": True, "url": self.socket_urls()}
        if method == "apps.connections.open" and self.socket_url is not None:
            return {"ok": True, "url": self.socket_url}
        if method.startswith("files."):
            return self._file_method(method, args)
        if method in ("views.open", "views.update", "views.push"):
            return views_answer(method, args)
        if method == "views.publish":
            return self._publish_home(args)
        return {"ok": True}

    def _publish_home(self, args: dict[str, Any]) -> dict[str, Any]:
        """views.publish as Slack answers it: refused (hash_conflict) when given a `hash` other than that of the view
        on the tab now; otherwise the view with its new hash."""
        user = str(args.get("user_id"))
        if args.get("hash") and args["hash"] != self.home_hashes.get(user):
            return {"ok": False, "error": "hash_conflict"}
        self.home_hashes[user] = new = f"{next(self._ts)}.{user}"
        view = args.get("view")
        return {"ok": True, "view": {"id": f"VH{user}", **(view if isinstance(view, dict) else {}), "hash": new}}

    def _refusal(self, channel: FakeChannel | None, *, read: bool) -> dict[str, Any] | None:
        """Slack's answer when the bot may not use `channel`: invisible when private and not joined; public
        ones take posts without joining (chat:write.public) but not reads or file shares."""
        if channel is None or (channel.private and not channel.bot_member):
            return {"ok": False, "error": "channel_not_found"}
        if channel.archived:
            return {"ok": False, "error": "is_archived"}
        if read and not channel.bot_member:
            return {"ok": False, "error": "not_in_channel"}
        return None

    def _chat(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        # chat.postMessage takes a `#name` too; the others want the id.
        channel = self.channel(args.get("channel"), by_name=method != "chat.update")
        if (refused := self._refusal(channel, read=False)) is not None:
            return refused
        assert channel is not None
        # Like Slack's: the current unix time with a unique fraction (history lookups filter on it).
        ts = args.get("ts") or f"{int(time.time())}.{next(self._ts):06d}"
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": ts}
        if method == "chat.update":
            # Slack edits a message it has (its text is what conversations.history shows from then on), and answers
            # message_not_found for a ts it has none for: https://docs.slack.dev/reference/methods/chat.update#errors
            shown = next((m for m in self.messages if m["channel_id"] == channel.id and m["ts"] == ts), None)
            if shown is None:
                return {"ok": False, "error": "message_not_found"}
            shown["text"] = args.get("text")
        if method == "chat.postMessage":
            metadata = args.get("metadata")
            self.messages.append({"channel": args.get("channel"), "channel_id": channel.id, "ts": ts,
                                  "text": args.get("text"), "thread_ts": args.get("thread_ts"),
                                  "metadata": json.loads(metadata) if isinstance(metadata, str) else metadata})
        return {"ok": True, "channel": channel.id, "ts": ts,
                "message": {"text": args.get("text"), "blocks": args.get("blocks")}}

    def _page(self, items: list[Any], args: dict[str, Any], *, default: int = 100) -> tuple[list[Any], str]:
        """One page of `items` from the request's cursor, `limit` honoured (and capped by `page_size`)."""
        start = int(base64.b64decode(args["cursor"]).decode().removeprefix("next:")) if args.get("cursor") else 0
        size = int(args.get("limit") or default)
        if self.page_size is not None:
            size = min(size, self.page_size)
        end = start + size
        cursor = base64.b64encode(f"next:{end}".encode()).decode() if end < len(items) else ""
        return items[start:end], cursor

    def _history(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if (refused := self._refusal(self.channel(args.get("channel")), read=True)) is not None:
            return refused
        thread = args.get("ts") if method == "conversations.replies" else None
        oldest = float(args.get("oldest") or 0)
        found = [m for m in reversed(self.messages) if m["channel_id"] == args.get("channel")
                 and m["thread_ts"] == thread and float(m["ts"]) >= oldest]
        page, cursor = self._page(found, args)
        return {"ok": True, "messages": page, "has_more": bool(cursor),
                "response_metadata": {"next_cursor": cursor}}

    def _conversations(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = self.channel(args.get("channel"))
        if method == "conversations.list":
            types = str(args.get("types") or "public_channel").split(",")
            visible = [c.info() for c in self.channels.values()
                       if (c.private and c.bot_member and "private_channel" in types)
                       or (not c.private and "public_channel" in types)]
            page, cursor = self._page(visible, args)
            return {"ok": True, "channels": page, "response_metadata": {"next_cursor": cursor}}
        if method == "conversations.join" and channel is not None and channel.private:
            # private channels take an invitation: conversations.join cannot
            return {"ok": False, "error": "method_not_supported_for_channel_type"}
        if channel is None or (channel.private and not channel.bot_member):
            return {"ok": False, "error": "channel_not_found"}
        if method == "conversations.join":
            if channel.archived:
                return {"ok": False, "error": "is_archived"}
            already, channel.bot_member = channel.bot_member, True
            return {"ok": True, "channel": channel.info(), **({"warning": "already_in_channel"} if already else {})}
        return {"ok": True, "channel": channel.info()}

    def _file_method(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "files.getUploadURLExternal":
            # Shapes as in reference/slack/java-slack-sdk-samples/files.*.json; the URL is on this server.
            file_id = f"F{next(self._files):08d}"
            return {"ok": True, "file_id": file_id,
                    "upload_url": self.url.removesuffix("/api/") + f"/upload/{file_id}"}
        if method == "files.completeUploadExternal":
            if args.get("channel_id") and (refused := self._refusal(self.channel(args["channel_id"]),
                                                                      read=True)) is not None:
                return refused  # sharing a file in a channel needs the bot in it, chat:write.public or not
            files = args.get("files") or []
            if args.get("channel_id"):  # shared: files.info names the channel (and thread) from now on
                for f in files:
                    self.file_shares.setdefault(str(f.get("id")), []).append(
                        {"channel": args["channel_id"], "thread_ts": args.get("thread_ts"),
                         "ts": f"{int(time.time())}.{next(self._ts):06d}"})
            return {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title", "")} for f in files]}
        if method == "files.info":
            return self._file_info(str(args.get("file")))
        return {"ok": True}

    def _file_info(self, file_id: str) -> dict[str, Any]:
        """files.info as Slack answers it (needs files:read): the file object, whose `shares` list each message
        sharing it by public/private channel (a reply with its `thread_ts`), and `channels`/`groups` their ids;
        no `shares` until it is shared. An id Slack never handed out (or a deleted file): file_not_found."""
        if file_id not in self.uploads and file_id not in self.file_shares:
            return {"ok": False, "error": "file_not_found"}
        shares: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for share in self.file_shares.get(file_id, []):
            channel = self.channel(share["channel"])
            kind = "private" if channel is not None and channel.private else "public"
            shares.setdefault(kind, {}).setdefault(share["channel"], []).append(
                {"ts": share["ts"], "reply_count": 0, "reply_users": [], "reply_users_count": 0,
                 **({"thread_ts": share["thread_ts"]} if share["thread_ts"] else {}),
                 "channel_name": channel.name if channel is not None else ""})
        file = {"id": file_id, "name": file_id, "mimetype": "image/png", "filetype": "png",
                "channels": sorted(shares.get("public", {})), "groups": sorted(shares.get("private", {})),
                "ims": [], **({"shares": shares} if shares else {})}
        return {"ok": True, "file": file, "comments": [], "response_metadata": {"next_cursor": ""}}

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL files.getUploadURLExternal hands out: stores the raw bytes POSTed to it."""
        file_id = request.match_info["file_id"]
        self.uploads[file_id] = await request.read()
        self.calls.append(Call(f"upload:{file_id}", {"length": len(self.uploads[file_id])}, 200,
                               dict(request.headers)))
        return web.Response(text=f"OK - {len(self.uploads[file_id])}")

    async def _hook(self, request: web.Request) -> web.Response:
        """A response_url: Slack takes it for 30 minutes and 5 uses, then answers 404 `expired_url`/`used_url`."""
        args = await self._args(request)
        name = request.match_info["name"]
        method = f"hook:{name}"
        uses = sum(1 for c in self.calls if c.method == method and c.answered == 200)
        if self.hook_uses is not None and uses >= self.hook_uses and name not in self.dead_hooks:
            self.dead_hooks[name] = "used_url"
        if name in self.dead_hooks:
            self.calls.append(Call(method, args, 404))
            return web.Response(text=self.dead_hooks[name], status=404)
        if (fault := next((f for f in self.faults if f.method in (None, method)), None)) is not None:
            self.faults.remove(fault)
            if fault.accept:  # an incoming webhook's post taken, its answer late
                self.calls.append(Call(method, args, 200))
                await asyncio.sleep(fault.delay)
                return web.Response(text="ok")
            self.calls.append(Call(method, args, fault.status))
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return web.Response(text=fault.error or "error", status=fault.status, headers=headers)
        self.calls.append(Call(method, args, 200))
        return web.Response(text="ok")
