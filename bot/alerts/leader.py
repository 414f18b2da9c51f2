"""Leadership among replicas: whoever holds a session-level advisory lock evaluates alerts and probes.

The lock lives on a dedicated connection. When the leader dies, PostgreSQL drops its session and the lock
with it, so another replica's next attempt (one evaluation interval later at most) takes over.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x73616C6573 + 1  # next to the migration lock's key


class Leadership:
    """Holds (or tries to take) the leader lock."""

    def __init__(self, dsn: str, *, key: int = LEADER_LOCK_KEY) -> None:
        self._dsn = dsn
        self._key = key
        self._conn: asyncpg.Connection | None = None
        self.was_leader = False  # the last known answer, for decisions while the database is away
        self._lock = asyncio.Lock()  # the evaluation and the probe job ask concurrently

    async def hold(self) -> bool:
        """True while this process is the leader; tries to become it when nobody is."""
        async with self._lock:
            return await self._hold()

    async def _hold(self) -> bool:
        try:
            if self._conn is not None and not self._conn.is_closed():
                await self._conn.fetchval("SELECT 1", timeout=5)  # still our session, still our lock
                self.was_leader = True
                return True
            self._conn = await asyncpg.connect(self._dsn, timeout=5)
            if await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key):
                log.info("this replica now evaluates alerts (leader)")
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
        if conn is not None and not conn.is_closed():
            conn.terminate()
