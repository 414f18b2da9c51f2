"""The Web API sender: chat.postMessage and chat.update with the bot token, and the look-up that keeps a post
whose answer never came from being sent twice."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.channels import ChannelDirectory
from bot.delivery.senders import (
    METADATA_EVENT,
    Lookup,
    Seen,
    SendResult,
    Status,
    classify_error,
    http_status,
    retry_after,
    server_error,
    slack_error,
)

log = logging.getLogger(__name__)

# Message look-ups page through the window since the attempt (`oldest`) with `response_metadata.next_cursor`:
# https://docs.slack.dev/apis/web-api/pagination — Slack may return fewer than `limit` messages per page.
HISTORY_PAGE = 200
MAX_HISTORY_PAGES = 50
# chat.postMessage's and chat.update's `rate_limited` in an HTTP 200 ("Application has posted too many messages"): the
# app's posting limit across the workspace (https://docs.slack.dev/apis/web-api/rate-limits: chat.postMessage allows
# about one message per second per channel "while also maintaining a workspace-wide limit"), told apart from a 429's
# `ratelimited`: every channel waits (bot/delivery/outcomes.py AppLimit).
APP_RATE_LIMITED: Final = "rate_limited"


class WebApiSender:
    """chat.postMessage / chat.update with the bot token; channels are the configured names or ids.

    With a `ChannelDirectory`, a `not_in_channel` answer makes the bot join the (public) channel and try once
    more, and a refusal names the channel and what to do about it (README: How messages reach Slack).
    """

    supports_updates = True

    def __init__(self, client: AsyncWebClient, *, channels: Mapping[str, str],
                 directory: ChannelDirectory | None = None) -> None:
        self._client = client
        self._channels = dict(channels)
        self._directory = directory

    def retarget(self, channels: Mapping[str, str]) -> None:
        """Post to these channels from now on (changed from Slack's Settings view)."""
        self._channels = dict(channels)

    async def post(self, channel: str, payload: Mapping[str, Any], *, thread_ts: str | None = None,
                   ref: int | None = None, channel_id: str | None = None) -> SendResult:
        """Post once (in a thread when `thread_ts`), to `channel_id` when given, else to the channel configured
        for `channel`; classify the outcome instead of raising.

        `ref` (the outbox id) travels in the message's metadata, so `find()` can tell later whether a post
        whose answer never arrived did reach the channel.
        """
        target = channel_id or self._resolved(channel) or self._channels.get(channel, channel)
        metadata = {"event_type": METADATA_EVENT, "event_payload": {"outbox_id": ref}} if ref is not None else None

        def send() -> Awaitable[Any]:
            return self._client.chat_postMessage(
                channel=target, text=payload.get("text", ""), blocks=payload.get("blocks") or None,
                thread_ts=thread_ts, unfurl_links=False, unfurl_media=False, metadata=metadata,
                reply_broadcast=True if thread_ts and payload.get("reply_broadcast") else None)  # a paging reply

        result = await self._call(send())
        if result.error == "not_in_channel" and self._directory is not None:  # no chat:write.public
            refused = await self._join(channel, target, self._directory)
            result = await self._call(send()) if refused is None else \
                replace(result, error=f"not_in_channel (could not join: {refused})")
        # What /health says of the configured channel, when this went there (a thread's parent may be elsewhere).
        if self._directory is not None and channel_id in (None, self._resolved(channel)):
            if result.error in ("channel_not_found", "is_archived"):
                await self._directory.note_refusal(channel, result.error)  # why, and what to do about it
            elif result.status is Status.OK:
                await self._directory.note_delivered(channel, result.channel_id)  # fixed: stop asking
        return result

    def channel_id(self, channel: str) -> str | None:
        """The id the directory resolved for the channel as configured now."""
        return self._resolved(channel)

    def _resolved(self, channel: str) -> str | None:
        """The Slack id the directory resolved for the channel as configured now: posting by id, a renamed channel
        keeps its messages (its old name would be channel_not_found)."""
        status = self._directory.find(channel) if self._directory is not None else None
        if status is None or status.configured != self._channels.get(channel):
            return None
        return status.channel_id

    @staticmethod
    async def _join(channel: str, target: str, directory: ChannelDirectory) -> str | None:
        """Join the channel behind `target` (a name is resolved by the directory); None, or why not."""
        status = directory.find(channel) or directory.find(target)
        return await directory.join(status.channel_id if status is not None and status.channel_id else target)

    async def find(self, *, channel_id: str, ref: int, since: float, thread_ts: str | None = None) -> Lookup:
        """Look for our metadata in the channel's (or thread's) messages since `since` (unix seconds), page by
        page; a channel the bot is not in is joined first (chat:write.public posts without joining). A reply not in
        its thread, or whose thread is gone (thread_not_found), is looked for in the channel itself: a reply whose
        thread went or closed is posted there as a message of its own (threads.THREAD_GONE)."""
        seen = await self._find(channel_id, ref=ref, since=since, thread_ts=thread_ts)
        if thread_ts and (seen.seen is Seen.NOT_FOUND or seen.error == "thread_not_found"):
            seen = await self._find(channel_id, ref=ref, since=since, thread_ts=None)
        if seen.seen is Seen.NEVER:
            log.warning("cannot check Slack for an unconfirmed message (%s): it may be sent twice", seen.error)
        elif seen.seen is Seen.LATER:
            log.warning("Slack could not say whether an unconfirmed message arrived (%s): looking again later",
                        seen.error)
        return seen

    async def _find(self, channel_id: str, *, ref: int, since: float, thread_ts: str | None) -> Lookup:
        """`_search`, joining a public channel the bot is not in first."""
        seen = await self._search(channel_id, ref=ref, since=since, thread_ts=thread_ts)
        if seen.error == "not_in_channel" and self._directory is not None:
            joined = await self._directory.join(channel_id)
            if joined is None:
                return await self._search(channel_id, ref=ref, since=since, thread_ts=thread_ts)
            error = self._directory.explain(channel_id, f"not_in_channel, and joining failed: {joined}")
            seen = Lookup(Seen.LATER if classify_error(joined) is Status.TRANSIENT else Seen.NEVER, error=error)
        return seen

    async def _search(self, channel_id: str, *, ref: int, since: float, thread_ts: str | None) -> Lookup:
        """FOUND, or NOT_FOUND after every page within the window; LATER when Slack could not answer now (5xx,
        timeout, network, 429 with its Retry-After); NEVER when it will not answer (no scope, no access)."""
        cursor: str | None = None
        for _ in range(MAX_HISTORY_PAGES):
            args: dict[str, Any] = {"channel": channel_id, "oldest": f"{since:.6f}", "include_all_metadata": True,
                                    "limit": HISTORY_PAGE, "cursor": cursor}
            try:
                resp: Any = await (self._client.conversations_replies(ts=thread_ts, **args) if thread_ts
                                   else self._client.conversations_history(**args))
            except SlackApiError as exc:
                error = slack_error(exc)
                if error == "ratelimited":  # conversations.history is Tier 3: wait as Slack says
                    return Lookup(Seen.LATER, error=error, retry_after=retry_after(exc.response.headers))
                later = server_error(exc) or classify_error(error) is Status.TRANSIENT
                return Lookup(Seen.LATER if later else Seen.NEVER, error=error)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                return Lookup(Seen.LATER, error=f"{type(exc).__name__}: {exc}"[:300])
            for msg in resp.get("messages") or []:
                meta = msg.get("metadata") or {}
                if meta.get("event_type") == METADATA_EVENT and \
                        (meta.get("event_payload") or {}).get("outbox_id") == ref:
                    return Lookup(Seen.FOUND, channel_id=channel_id, ts=msg.get("ts"))
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return Lookup(Seen.NOT_FOUND)
        return Lookup(Seen.NEVER, error=f"more than {MAX_HISTORY_PAGES} pages of messages since the attempt")

    async def update(self, channel: str, *, channel_id: str, ts: str,
                     payload: Mapping[str, Any]) -> SendResult:
        """Replace a posted message in place."""
        return await self._call(self._client.chat_update(
            channel=channel_id, ts=ts, text=payload.get("text", ""), blocks=payload.get("blocks") or []))

    async def _call(self, request: Awaitable[Any]) -> SendResult:
        try:
            resp = await request
        except SlackApiError as exc:
            error = slack_error(exc)
            if error == "ratelimited":
                data = getattr(exc.response, "data", None)
                if http_status(exc) != 429 and isinstance(data, dict) and data.get("error") == APP_RATE_LIMITED:
                    error = APP_RATE_LIMITED
                return SendResult(Status.RATE_LIMITED, error=error, retry_after=retry_after(exc.response.headers))
            return SendResult(Status.TRANSIENT if server_error(exc) else classify_error(error), error=error)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return SendResult(Status.TRANSIENT, error=f"{type(exc).__name__}: {exc}"[:300])
        return SendResult(Status.OK, channel_id=resp.get("channel"), ts=resp.get("ts"))
