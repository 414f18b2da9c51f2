"""The daily retention run: claimed by one replica per local day, then old webhook bodies and message payloads
emptied and old site probes and app events deleted, a chunk per statement, committed one by one."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol
from zoneinfo import ZoneInfo

import asyncpg

from bot.clock import Clock
from bot.deps import Deps
from bot.retention.policy import (
    APP_EVENTS_KEPT,
    CHUNK_PAUSE_SECONDS,
    CHUNK_ROWS,
    MESSAGE_PAYLOADS_KEPT,
    RUN_AFTER,
    SITE_PROBES_KEPT,
    WEBHOOK_BODIES_KEPT,
)
from queries import app_events
from queries import retention as q
from queries.executor import Executor

log = logging.getLogger(__name__)

Pause = Callable[[], Awaitable[None]]


class WalkStep(Protocol):
    """One chunk of a walk by id (queries/retention.py)."""

    async def __call__(self, db: Executor, *, after: int, before: dt.datetime, limit: int,
                       held: int | None) -> q.Step: ...


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one run did: rows emptied or deleted per table, and the statements it took."""

    webhook_bodies: int
    message_payloads: int
    site_probes: int
    app_events: int
    chunks: int


def retention_day(now: dt.datetime, tz: ZoneInfo) -> dt.date:
    """The local day whose run is due at `now`: a day's run starts at RUN_AFTER, so before it, the day before's."""
    local = now.astimezone(tz)
    return local.date() if local.time() >= RUN_AFTER else local.date() - dt.timedelta(days=1)


async def _breathe() -> None:
    await asyncio.sleep(CHUNK_PAUSE_SECONDS)


@dataclass(frozen=True, slots=True)
class Retention:
    """What a run needs: the pool, the store's zone (its day), the clock; `pause` runs between statements."""

    pool: asyncpg.Pool
    tz: ZoneInfo
    clock: Clock
    chunk_rows: int = CHUNK_ROWS
    pause: Pause = _breathe

    @classmethod
    def from_deps(cls, deps: Deps) -> Retention:
        """The running service's retention."""
        return cls(pool=deps.pool, tz=deps.settings.tz, clock=deps.clock)

    async def tick(self) -> Pruned | None:
        """Run the day's retention unless a replica has (None then)."""
        now = self.clock()
        marks = await q.claim(self.pool, day=retention_day(now, self.tz), at=now)
        if marks is None:
            return None
        pruned = await self.run(marks, now=now)
        await q.finish(self.pool, at=self.clock())
        log.info("retention: %d webhook bodies and %d message payloads emptied, %d site probes and %d app events "
                 "deleted (%d statements)", pruned.webhook_bodies, pruned.message_payloads, pruned.site_probes,
                 pruned.app_events, pruned.chunks)
        return pruned

    async def run(self, marks: q.Marks, *, now: dt.datetime) -> Pruned:
        """Prune everything past its period at `now`, the walks going on from `marks`."""
        bodies, n1 = await self._walk(q.empty_webhook_bodies, marks.webhook_logs_upto, now - WEBHOOK_BODIES_KEPT)
        payloads, n2 = await self._walk(q.empty_message_payloads, marks.outbox_upto, now - MESSAGE_PAYLOADS_KEPT)
        probes, n3 = await self._delete(partial(q.delete_site_probes, self.pool, before=now - SITE_PROBES_KEPT))
        events = n4 = 0
        for kind in app_events.KINDS:
            gone, n = await self._delete(partial(q.delete_app_events, self.pool, kind=kind,
                                                 before=now - APP_EVENTS_KEPT))
            events, n4 = events + gone, n4 + n
        return Pruned(webhook_bodies=bodies, message_payloads=payloads, site_probes=probes, app_events=events,
                      chunks=n1 + n2 + n3 + n4)

    async def _walk(self, step: WalkStep, mark: int, before: dt.datetime) -> tuple[int, int]:
        """Chunks of a walk from `mark` until it meets a row too young; (rows pruned, statements)."""
        pruned = chunks = 0
        held: int | None = None  # the mark stays before the first row held for a later run
        while True:
            s = await step(self.pool, after=mark, before=before, limit=self.chunk_rows, held=held)
            pruned, chunks, mark = pruned + s.pruned, chunks + 1, s.reached
            held = s.held if held is None else held
            if s.done:
                return pruned, chunks
            await self.pause()

    async def _delete(self, delete: Callable[..., Awaitable[int]]) -> tuple[int, int]:
        """Delete chunks (`delete(limit=…)`) until one comes back short; (rows deleted, statements)."""
        gone = chunks = 0
        while True:
            n = await delete(limit=self.chunk_rows)
            gone, chunks = gone + n, chunks + 1
            if n < self.chunk_rows:
                return gone, chunks
            await self.pause()
