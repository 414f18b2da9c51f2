"""The local feed's memory: every message the bot would post in local mode, per channel, as it stands now.

ConsoleSender hands each post and update to `LocalFeed.add`; the feed page's event stream replays the
current state and then follows changes by sequence number. In memory, bounded per channel, and filled at start from
the outbox (`LocalFeed.restored`): the messages keep their ts across a restart, so a firing alert is still there
with its buttons, and the edits and replies queued for it find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final
from zoneinfo import ZoneInfo

from bot.clock import Clock, utcnow
from bot.delivery.posts import message_payload
from queries import local_feed
from queries.executor import Executor

MAX_PER_CHANNEL: Final = 200  # messages (replies included) kept per channel; the oldest go first
# How far back a start looks for what the console showed: the newest outbox rows, coalesced sales included.
RESTORE_WITHIN_ROWS: Final = 20_000


@dataclass(frozen=True, slots=True)
class Entry:
    """One message as it stands: `seq` is its last change, `pos` its place in the channel's history."""

    seq: int
    pos: int
    channel: str
    ts: str
    thread_ts: str | None
    text: str
    blocks: tuple[Mapping[str, Any], ...]
    posted_at: dt.datetime
    edited: bool = False

    def as_json(self) -> dict[str, Any]:
        """The fields the page needs besides the rendered HTML."""
        return {"seq": self.seq, "pos": self.pos, "channel": self.channel, "ts": self.ts,
                "thread_ts": self.thread_ts, "text": self.text, "edited": self.edited,
                "at": self.posted_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")}


class LocalFeed:
    """Messages per logical channel (sales, alerts, reports), newest last; waiters wake on every change."""

    def __init__(self, *, clock: Clock = utcnow, per_channel: int = MAX_PER_CHANNEL) -> None:
        self.epoch = secrets.token_hex(4)  # a resumed event stream from before a restart starts over
        self._clock = clock
        self._per_channel = per_channel
        self._channels: dict[str, OrderedDict[str, Entry]] = {}
        self._seq = 0
        self._pos = 0
        self._changed = asyncio.Event()
        self.closed = False

    @classmethod
    async def restored(cls, db: Executor, *, tz: ZoneInfo, clock: Clock = utcnow,
                       per_channel: int = MAX_PER_CHANNEL) -> LocalFeed:
        """A feed showing, as they stand, the messages the console showed before this start (the outbox keeps them
        with the ts it gave them): a restart does not lose a firing alert's message and buttons, nor the sales."""
        feed = cls(clock=clock, per_channel=per_channel)
        for shown in await local_feed.console_messages(db, per_channel=per_channel, within_rows=RESTORE_WITHIN_ROWS):
            payload = message_payload(shown.message, tz=tz)
            feed._post(shown.channel, ts=shown.ts, thread_ts=shown.thread_ts, payload=payload, at=shown.shown_at,
                       edited=shown.edited)
        return feed

    @property
    def seq(self) -> int:
        """The sequence number of the latest change (0: nothing yet)."""
        return self._seq

    def add(self, channel: str, payload: Mapping[str, Any]) -> None:
        """A ConsoleSender listener: record a post, or apply an update (`update: True`) to message `ts`."""
        ts = str(payload.get("ts") or "")
        if not ts:
            return
        if payload.get("update"):
            messages = self._channels.get(channel)
            old = messages.get(ts) if messages is not None else None
            if messages is None or old is None:
                return  # evicted (or never seen): nothing on the page to change
            self._seq += 1
            messages[ts] = replace(old, seq=self._seq, text=str(payload.get("text") or ""),
                                   blocks=tuple(payload.get("blocks") or ()), edited=True)
        else:
            thread = payload.get("thread_ts")
            self._post(channel, ts=ts, thread_ts=str(thread) if thread else None, payload=payload, at=self._clock())
        self._wake()

    def _post(self, channel: str, *, ts: str, thread_ts: str | None, payload: Mapping[str, Any], at: dt.datetime,
              edited: bool = False) -> None:
        """Add a message at the end of its channel, forgetting the channel's oldest beyond the bound."""
        messages = self._channels.setdefault(channel, OrderedDict())
        self._seq += 1
        self._pos += 1
        messages[ts] = Entry(seq=self._seq, pos=self._pos, channel=channel, ts=ts, thread_ts=thread_ts,
                             text=str(payload.get("text") or ""), blocks=tuple(payload.get("blocks") or ()),
                             posted_at=at, edited=edited)
        while len(messages) > self._per_channel:
            messages.popitem(last=False)

    def channels(self) -> list[str]:
        """Channels that have had a message, in the order they first did."""
        return list(self._channels)

    def since(self, seq: int) -> list[Entry]:
        """Every message changed after `seq`, oldest change first (0: the whole current state)."""
        changed = [e for messages in self._channels.values() for e in messages.values() if e.seq > seq]
        return sorted(changed, key=lambda e: e.seq)

    def messages(self, channel: str) -> list[Entry]:
        """A channel's messages in the order they were posted."""
        return sorted((self._channels.get(channel) or {}).values(), key=lambda e: e.pos)

    async def wait(self, seq: int, *, within: float) -> bool:
        """Wait until something changes after `seq` (True), or `within` seconds pass, or the feed closes."""
        if self._seq > seq or self.closed:
            return self._seq > seq
        event = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):  # not wait_for: it can swallow a cancel on 3.11
                await event.wait()
        return self._seq > seq

    def close(self) -> None:
        """Let every waiter go (the server is shutting down)."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        # A fresh Event per change: waiters hold the old one, which stays set.
        event, self._changed = self._changed, asyncio.Event()
        event.set()
