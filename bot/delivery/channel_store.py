"""The configured channels' standing shared by every replica (README: Several replicas): what one learns from Slack
is stored in PostgreSQL with when it learned it, only when it differs from the newest known; every replica follows
the others' news (LISTEN), and /health reads the newest. Without it each replica would keep asking for an
`/invite` it never saw answered."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Final

import asyncpg

from bot.db import DB_UNAVAILABLE
from bot.delivery.listener import NotifyListener
from queries import channel_status as q

log = logging.getLogger(__name__)

WRITE_SECONDS: Final = 2.0  # a slow database delays a post this long at worst, once per change of standing
POLL_SECONDS: Final = 60.0  # a lost notification (the listener reconnecting) is caught up this late at worst
_DB_ERRORS: Final = (*DB_UNAVAILABLE, asyncpg.PostgresError)


class ChannelStore:
    """Writes what this replica learned, reads what any replica did."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.listener: NotifyListener | None = None  # while following

    async def record(self, *, logical: str, configured: str, membership: str, channel_id: str | None,
                     name: str | None, error: str | None) -> dt.datetime | None:
        """Store a change of standing; when it was learned (None: not stored, this replica still knows it)."""
        try:
            async with asyncio.timeout(WRITE_SECONDS):
                return await q.record(self._pool, logical=logical, configured=configured, membership=membership,
                                      channel_id=channel_id, name=name, error=error)
        except _DB_ERRORS as exc:
            log.warning("could not store Slack channel %s's standing (%s): other replicas learn it later",
                        configured, exc)
            return None

    async def load(self) -> list[q.StoredStatus]:
        """Every stored standing."""
        return await q.stored(self._pool)

    async def follow(self, dsn: str, adopt: Callable[[list[q.StoredStatus]], object]) -> None:
        """Until cancelled: `adopt` what is stored at start, on each notification, and every POLL_SECONDS."""
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
                    adopt(await self.load())
                except _DB_ERRORS as exc:
                    log.warning("could not read the Slack channels' stored standing (%s)", exc)
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
