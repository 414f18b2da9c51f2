"""The local feed's memory: every message the bot would post in local mode, per channel, as it stands now.

ConsoleSender hands each post and update to `LocalFeed.add`; the feed page's event stream replays the
current state and then follows changes by sequence number. In memory, per process, bounded per channel:
like stdout, it starts empty at every start.
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

from bot.clock import Clock, utcnow

MAX_PER_CHANNEL: Final = 200  # messages (replies included) kept per channel; the oldest go first


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

    @property
    def seq(self) -> int:
        """The sequence number of the latest change (0: nothing yet)."""
        return self._seq

    def add(self, channel: str, payload: Mapping[str, Any]) -> None:
        """A ConsoleSender listener: record a post, or apply an update (`update: True`) to message `ts`."""
        ts = str(payload.get("ts") or "")
        if not ts:
            return
        messages = self._channels.setdefault(channel, OrderedDict())
        text, blocks = str(payload.get("text") or ""), tuple(payload.get("blocks") or ())
        if payload.get("update"):
            old = messages.get(ts)
            if old is None:
                return  # evicted (or never seen): nothing on the page to change
            self._seq += 1
            messages[ts] = replace(old, seq=self._seq, text=text, blocks=blocks, edited=True)
        else:
            self._seq += 1
            self._pos += 1
            thread = payload.get("thread_ts")
            messages[ts] = Entry(seq=self._seq, pos=self._pos, channel=channel, ts=ts,
                                 thread_ts=str(thread) if thread else None, text=text, blocks=blocks,
                                 posted_at=self._clock())
            while len(messages) > self._per_channel:
                messages.popitem(last=False)
        self._wake()

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
