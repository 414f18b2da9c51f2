"""Leadership among replicas: whoever holds a session-level advisory lock evaluates alerts and probes.

The lock lives on a dedicated connection. When the leader dies, PostgreSQL drops its session and the lock
with it, so another replica's next attempt (one evaluation interval later at most) takes over.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from queries import health, locks

log = logging.getLogger(__name__)


class Leadership:
    """Holds (or tries to take) the leader lock."""

    def __init__(self, dsn: str, *, key: int = locks.LEADER) -> None:
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
                async with asyncio.timeout(5):
                    await health.ping(self._conn)  # still our session, still our lock
                self.was_leader = True
                return True
            self._conn = await asyncpg.connect(self._dsn, timeout=5)
            if await locks.try_lock(self._conn, self._key):
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
