"""Ways a message reaches Slack: incoming webhooks or stdout in local mode (the Web API: bot.delivery.webapi)."""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TextIO

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.blocks.text import shown_text, unescape_mrkdwn

log = logging.getLogger(__name__)

# Refusals of every message until someone fixes the token, the app or the channel (reinstalls, invites the bot,
# unarchives): messages wait for it, retried slowly, rather than being lost for good. /health says why.
# https://docs.slack.dev/reference/methods/chat.postMessage#errors
HOLD_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "invalid_token",
    "no_permission", "missing_scope", "team_access_not_granted", "ekm_access_denied", "team_disabled", "no_team",
    "no_service", "no_service_id", "access_denied", "two_factor_setup_required", "enterprise_is_restricted",
    "not_allowed_token_type",
    "channel_not_found", "not_in_channel", "is_archived", "channel_is_archived", "restricted_action",
    "restricted_action_read_only_channel", "restricted_action_thread_only_channel", "action_prohibited",
    "posting_to_general_channel_denied",
})
# Refusals of this message alone, which no retry fixes (chat.postMessage's errors, chat.update's): what it says,
# or what it replies to or updates (deleted, locked, not ours).
PERMANENT_ERRORS = frozenset({
    "invalid_blocks", "msg_too_long", "no_text", "invalid_arguments", "invalid_payload", "user_not_found",
    "invalid_blocks_format", "invalid_metadata_format", "invalid_metadata_schema", "metadata_too_large",
    "metadata_must_be_sent_from_app", "too_many_attachments", "invalid_attachments", "as_user_not_supported",
    "method_deprecated", "deprecated_endpoint", "messages_tab_disabled", "invalid_charset", "invalid_form_data",
    "invalid_post_type", "missing_post_type", "invalid_json", "json_not_object",
    "thread_not_found", "cannot_reply_to_message", "restricted_action_non_threadable_channel",
    "restricted_action_thread_locked",
    "message_not_found", "cant_update_message", "edit_window_closed",
})
# Slack's own trouble, retried for as long as it lasts (https://docs.slack.dev/apis/web-api/#errors): with these
# and 5xx, timeouts and network errors, nothing is lost in an outage.
OUTAGE_ERRORS = frozenset({
    "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org", "ratelimited",
})
# Tries of a message Slack refused with an error we don't know (Status.UNEXPECTED) before it is given up as failed:
# a refusal is not an outage, and retrying it for ever would hold every message behind it in its channel.
UNEXPECTED_TRIES = 3
DEFAULT_RETRY_AFTER = 1.0
# Message metadata marking our posts: https://api.slack.com/metadata/using
METADATA_EVENT = "salespulse_message"


class Status(StrEnum):
    """How a send attempt ended."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"  # come back after `retry_after`
    TRANSIENT = "transient"  # 5xx, timeout, network: retry with backoff
    HELD = "held"  # the token or the channel refuses everything until someone fixes it: retry slowly, never drop
    UNEXPECTED = "unexpected"  # an error Slack names that we don't know: retried a few times, then given up
    PERMANENT = "permanent"  # Slack refused for good: record, don't retry


# Answers in which Slack refused the call: nothing of it reached the channel (a 5xx or a timeout may have landed).
REFUSED = frozenset({Status.HELD, Status.UNEXPECTED, Status.PERMANENT, Status.RATE_LIMITED})


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one post."""

    status: Status
    channel_id: str | None = None
    ts: str | None = None
    error: str | None = None
    retry_after: float = 0.0
    found: bool = False  # an earlier attempt's message, found in Slack: it shows what was read then, not now


class Seen(StrEnum):
    """What looking for an earlier attempt's message in Slack told."""

    FOUND = "found"  # it is there: settle it, send nothing
    NOT_FOUND = "not_found"  # Slack has no such message: send it
    LATER = "later"  # Slack could not answer now (5xx, timeout, network, 429): send nothing, look again later
    NEVER = "never"  # the bot cannot read it back (no history scope, a channel it cannot read, webhooks): send it


@dataclass(frozen=True, slots=True)
class Lookup:
    """The outcome of `Sender.find()`: where the message is when FOUND; why Slack could not tell otherwise."""

    seen: Seen
    channel_id: str | None = None
    ts: str | None = None
    error: str | None = None
    retry_after: float = 0.0  # LATER after a 429: Slack's Retry-After


CANNOT_READ_BACK = Lookup(Seen.NEVER, error="this sender cannot read messages back")


class Sender(Protocol):
    """Posts a message (text + blocks) to a logical channel: sales, alerts or reports."""

    # Whether messages can be changed after posting (chat.update, threads): not with incoming webhooks.
    supports_updates: bool

    async def post(self, channel: str, payload: Mapping[str, Any], *, thread_ts: str | None = None,
                   ref: int | None = None, channel_id: str | None = None) -> SendResult:
        """Post to `channel` as configured, or to the Slack channel `channel_id` (a thread's parent is there)."""
        ...

    async def update(self, channel: str, *, channel_id: str, ts: str,
                     payload: Mapping[str, Any]) -> SendResult: ...

    async def find(self, *, channel_id: str, ref: int, since: float, thread_ts: str | None = None) -> Lookup:
        """The message posted earlier with this `ref`: FOUND (with its ts), NOT_FOUND, or why Slack cannot tell."""
        ...

    def channel_id(self, channel: str) -> str | None:
        """The Slack id of the channel posts to `channel` go to, when the sender knows it (None: it does not)."""
        ...


def classify_error(error: str) -> Status:
    """Slack's `error` string (or `http_<status>`, without one) → whether retrying can help. An error we don't
    know is neither retried for ever (it would hold its channel's queue) nor given up on at once; an answer naming
    none may have landed, and is retried after a look-up (a 5xx, a 200 cut short, http_0), unless it is a 4xx."""
    if error in PERMANENT_ERRORS:
        return Status.PERMANENT
    if error in HOLD_ERRORS:
        return Status.HELD
    if error in OUTAGE_ERRORS or (error.startswith("http_") and not error.startswith("http_4")):
        return Status.TRANSIENT
    return Status.UNEXPECTED


# Retries of 5xx and timeouts: 2 s, then every 3 s, for ever. A longer cap would leave a channel silent for
# minutes after Slack comes back; each retry is one call (one look-up, one post) per channel, a third of the
# pace Slack allows.
MAX_BACKOFF = dt.timedelta(seconds=3)
# Messages the token or the channel refuses until someone fixes it (Status.HELD) are tried again this often: one
# call per channel, and a fix (an invitation, a reinstall) is noticed within it.
HOLD_RETRY = dt.timedelta(seconds=30)


def backoff(attempts: int) -> dt.timedelta:
    """Backoff after the n-th failed attempt: 2 s, then MAX_BACKOFF."""
    return min(dt.timedelta(seconds=2 ** min(attempts + 1, 16)), MAX_BACKOFF)


def retry_or_fail(status: Status, *, tries: int) -> Status:
    """How to settle a failed call: an error we don't know is retried as a transient one UNEXPECTED_TRIES times."""
    if status is Status.UNEXPECTED:
        return Status.TRANSIENT if tries < UNEXPECTED_TRIES else Status.PERMANENT
    return status


def http_status(exc: SlackApiError) -> int:
    """The answer's HTTP status (0: unknown): slack_sdk's `status_code`, or the `status` of aiohttp's response, which it
    raises with when a body labelled JSON is not JSON (a proxy's HTML 503)."""
    status = getattr(exc.response, "status_code", getattr(exc.response, "status", 0))
    return status if isinstance(status, int) else 0


def slack_error(exc: SlackApiError) -> str:
    """The error Slack's answer named ("channel_not_found"): "ratelimited" for any 429 and for chat.postMessage's and
    chat.update's `rate_limited` in a 200 ("Application has posted too many messages": nothing landed, the same wait),
    "http_<status>" for an answer that named none (a proxy's HTML 502, say; http_0: no status either)."""
    status_code = http_status(exc)
    data = getattr(exc.response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    if status_code == 429 or error == "rate_limited":
        return "ratelimited"
    return str(error) if error else f"http_{status_code}"


def server_error(exc: SlackApiError) -> bool:
    """Whether Slack's answer was a 5xx: its trouble, worth a retry whatever error it named."""
    return http_status(exc) >= 500


def retry_after(headers: Mapping[str, str] | None) -> float:
    """Seconds to wait from a 429's Retry-After header (1 s when absent or unreadable)."""
    try:
        return max(float((headers or {}).get("Retry-After", DEFAULT_RETRY_AFTER)), 0.0)
    except ValueError:
        return DEFAULT_RETRY_AFTER


class WebhookSender:
    """Incoming webhooks: one URL per logical channel; no ts comes back, so no in-place updates."""

    supports_updates = False

    def channel_id(self, channel: str) -> str | None:
        """An incoming webhook names no channel."""
        return None

    def __init__(self, urls: Mapping[str, str], *, timeout: int = 10) -> None:
        self._clients = {name: AsyncWebhookClient(url, timeout=timeout, retry_handlers=[])
                         for name, url in urls.items()}

    async def update(self, channel: str, *, channel_id: str, ts: str,
                     payload: Mapping[str, Any]) -> SendResult:
        """Webhooks cannot edit: post the new state as a message of its own."""
        return await self.post(channel, payload)

    async def find(self, *, channel_id: str, ref: int, since: float, thread_ts: str | None = None) -> Lookup:
        """Incoming webhooks cannot read the channel back: never known."""
        return CANNOT_READ_BACK

    async def post(self, channel: str, payload: Mapping[str, Any], *, thread_ts: str | None = None,
                   ref: int | None = None, channel_id: str | None = None) -> SendResult:
        """Post to the channel's webhook, falling back to the alerts webhook (threads unsupported)."""
        client = self._clients.get(channel) or self._clients.get("alerts") or self._clients.get("sales")
        if client is None:
            return SendResult(Status.PERMANENT, error=f"no incoming webhook for {channel}")
        try:
            resp = await client.send(text=payload.get("text", ""), blocks=payload.get("blocks") or None)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return SendResult(Status.TRANSIENT, error=f"{type(exc).__name__}: {exc}"[:300])
        if resp.status_code == 200:
            return SendResult(Status.OK)
        if resp.status_code == 429:
            return SendResult(Status.RATE_LIMITED, error="ratelimited",
                              retry_after=retry_after(resp.headers))
        if resp.status_code >= 500:
            return SendResult(Status.TRANSIENT, error=f"http_{resp.status_code}")
        # Webhooks answer 4xx with a plain-text reason such as "channel_not_found" or "invalid_token".
        error = (resp.body or f"http_{resp.status_code}").strip()[:300]
        return SendResult(Status.HELD if error in HOLD_ERRORS else Status.PERMANENT, error=error)


def render_text(payload: Mapping[str, Any]) -> str:
    """A readable plain-text rendering of a Block Kit message, for terminals: mrkdwn's "&lt;" printed as "<"."""
    lines: list[str] = []
    for block in payload.get("blocks") or []:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"== {block['text']['text']} ==")
        elif kind == "section":
            lines.extend(shown_text(t) for t in [block.get("text")] if t)
            lines.extend(f"  {shown_text(f)}".replace("\n", " ") for f in block.get("fields") or [])
        elif kind == "context":
            lines.append("  " + "  ".join(shown_text(e) for e in block.get("elements", [])))
        elif kind == "divider":
            lines.append("-" * 40)
        elif kind == "actions":
            lines.append("  " + " ".join(f"[{e.get('text', {}).get('text', '?')}]" for e in block.get("elements", [])))
    return "\n".join(lines) if lines else unescape_mrkdwn(str(payload.get("text", "")))  # Slack reads it as mrkdwn


class ConsoleSender:
    """Local mode: print each message readably and hand it to any listener (the local feed page)."""

    supports_updates = True

    def channel_id(self, channel: str) -> str | None:
        """The console has no Slack channels."""
        return None

    def __init__(self, *, stream: TextIO | None = None,
                 listeners: list[Callable[[str, Mapping[str, Any]], None]] | None = None) -> None:
        self._stream = stream or sys.stdout
        self.listeners = listeners if listeners is not None else []
        self._last = 0  # the last ts given, in microseconds since the epoch

    async def find(self, *, channel_id: str, ref: int, since: float, thread_ts: str | None = None) -> Lookup:
        """Nothing printed survives a restart: never known."""
        return CANNOT_READ_BACK

    async def post(self, channel: str, payload: Mapping[str, Any], *, thread_ts: str | None = None,
                   ref: int | None = None, channel_id: str | None = None) -> SendResult:
        """Print to the stream; never fails."""
        self._last = max(self._last + 1, time.time_ns() // 1000)  # from the clock, as Slack's: no restored ts again
        ts = f"{self._last // 1_000_000}.{self._last % 1_000_000:06d}"
        where = f"#{channel}" + (f" thread {thread_ts}" if thread_ts else "")
        print(f"\n[{where}] {payload.get('text', '')}\n{render_text(payload)}", file=self._stream, flush=True)
        for listener in self.listeners:
            listener(channel, {**payload, "ts": ts, "thread_ts": thread_ts})
        return SendResult(Status.OK, channel_id=f"local-{channel}", ts=ts)

    async def update(self, channel: str, *, channel_id: str, ts: str,
                     payload: Mapping[str, Any]) -> SendResult:
        """Print the new version of message `ts`."""
        print(f"\n[#{channel} updated {ts}] {payload.get('text', '')}\n{render_text(payload)}",
              file=self._stream, flush=True)
        for listener in self.listeners:
            listener(channel, {**payload, "ts": ts, "update": True})
        return SendResult(Status.OK, channel_id=channel_id, ts=ts)


