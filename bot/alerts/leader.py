"""Leadership among replicas: whoever holds a session-level advisory lock evaluates alerts and probes.

The lock lives on a dedicated connection. When the leader dies, PostgreSQL drops its session and the lock
with it, so another replica's next attempt (one evaluation interval later at most) takes over. A leader whose
machine dies closes no socket: its session is then ended by the server once it has gone `idle_timeout` without
the ping the leader sends every `ping_every` seconds (bot/db.py HOLDER_IDLE_TIMEOUT).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from bot.db import HOLDER_IDLE_TIMEOUT, HOLDER_PING_SECONDS, connect_lock_holder, keep_pinging
from queries import health, locks

log = logging.getLogger(__name__)


class Leadership:
    """Holds (or tries to take) the leader lock."""

    def __init__(self, dsn: str, *, key: int = locks.LEADER, ping_every: float = HOLDER_PING_SECONDS,
                 idle_timeout: float = HOLDER_IDLE_TIMEOUT) -> None:
        self._dsn = dsn
        self._key = key
        self._ping_every, self._idle_timeout = ping_every, idle_timeout
        self._conn: asyncpg.Connection | None = None
        self._pinging: asyncio.Task[None] | None = None
        self.was_leader = False  # the last known answer, for decisions while the database is away
        self._lock = asyncio.Lock()  # the evaluation and the probe job ask concurrently

    async def hold(self) -> bool:
        """True while this process is the leader; tries to become it when nobody is."""
        async with self._lock:
            return await self._hold()

    async def _hold(self) -> bool:
        try:
            if self._conn is not None and not self._conn.is_closed():
                async with asyncio.timeout(5):
                    await health.ping(self._conn)  # still our session, still our lock
                self.was_leader = True
                return True
            await self.release()  # a connection found closed: its ping task ends with it
            self._conn = await connect_lock_holder(self._dsn, idle_timeout=self._idle_timeout,
                                                  connect_within=5)
            if await locks.try_lock(self._conn, self._key):
                log.info("this replica now evaluates alerts (leader)")
                # The alert and probe jobs come every minute or less often: too rare to keep the session alive.
                self._pinging = keep_pinging(self._conn, every=self._ping_every, guard=self._lock)
                self.was_leader = True
                return True
            await self.release()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("leader lock unavailable: %s", exc)
            await self.release()
        self.was_leader = False
        return False

    async def release(self) -> None:
        """Give the lock up (closing the session releases it)."""
        conn, self._conn = self._conn, None
        pinging, self._pinging = self._pinging, None
        if pinging is not None:
            pinging.cancel()
        if conn is not None and not conn.is_closed():
            conn.terminate()
