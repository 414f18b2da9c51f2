"""The configured channels' standing shared by every replica (README: Several replicas): what one learns from Slack
is stored in PostgreSQL with when it learned it, only when it differs from the newest known; every replica follows
the others' news (LISTEN), and /health reads the newest. Without it each replica would keep asking for an
`/invite` it never saw answered."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import asyncpg

from bot.db import DB_UNAVAILABLE
from bot.delivery.listener import NotifyListener
from queries import channel_status as q

log = logging.getLogger(__name__)

# A slow database delays a post this long at worst, once per change of standing (and per post while it fails).
WRITE_SECONDS: Final = 2.0
POLL_SECONDS: Final = 60.0  # a lost notification (the listener reconnecting) is caught up this late at worst
_DB_ERRORS: Final = (*DB_UNAVAILABLE, asyncpg.PostgresError)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What became of a write: stored `at` (the database's clock), or not — `failed` when the database did not take
    it (this replica still knows it and writes it again), else a newer row was stored meanwhile, which counts."""

    at: dt.datetime | None
    failed: bool = False


class ChannelStore:
    """Writes what this replica learned, reads what any replica did."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.listener: NotifyListener | None = None  # while following
        self._skew = dt.timedelta(0)  # the database's clock less this machine's, as the last write showed it

    def now(self) -> dt.datetime:
        """The database's clock as best known: this machine's, corrected by what the last write showed."""
        return dt.datetime.now(dt.UTC) + self._skew

    async def record(self, *, logical: str, configured: str, membership: str, channel_id: str | None,
                     name: str | None, error: str | None) -> Recorded:
        """Store a change of standing, stamped with the database's clock."""
        sent = dt.datetime.now(dt.UTC)
        try:
            async with asyncio.timeout(WRITE_SECONDS):
                at = await q.record(self._pool, logical=logical, configured=configured, membership=membership,
                                    channel_id=channel_id, name=name, error=error)
        except _DB_ERRORS as exc:
            log.warning("could not store Slack channel %s's standing (%s): written again on the next post or"
                        " within %d s", configured, exc, POLL_SECONDS)
            return Recorded(None, failed=True)
        if at is not None:  # stamped about half-way through the round trip
            self._skew = at - (sent + (dt.datetime.now(dt.UTC) - sent) / 2)
        return Recorded(at)

    async def load(self) -> list[q.StoredStatus]:
        """Every stored standing."""
        return await q.stored(self._pool)

    async def follow(self, dsn: str, adopt: Callable[[list[q.StoredStatus]], object],
                     retry: Callable[[], Awaitable[object]]) -> None:
        """Until cancelled: `adopt` what is stored at start, on each notification, and every POLL_SECONDS; then
        `retry` the writes that failed."""
        wake = asyncio.Event()
        self.listener = NotifyListener(dsn, on_notify=wake.set, name="channel status listener",
                                       subscribe=lambda conn: q.listen(conn, wake.set))
        listening = asyncio.create_task(self.listener.run(), name="channel-status-listener")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_SECONDS):  # not wait_for: it can swallow a cancel on 3.11
                        await wake.wait()
                wake.clear()
                try:
                    adopt(await self.load())  # first: a newer standing stored meanwhile is not written over
                    await retry()
                except _DB_ERRORS as exc:
                    log.warning("could not read the Slack channels' stored standing (%s)", exc)
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
