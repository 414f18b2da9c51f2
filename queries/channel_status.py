"""SQL behind the configured Slack channels' standing as the replicas learned it (bot/delivery/channel_store.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import asyncpg

from queries.executor import Executor

NOTIFY_CHANNEL: Final = "salespulse_channel_status"  # the trigger in 0052_channel_status.sql notifies here

# A write older than the stored row (two replicas learning at once) leaves the newer one: then no row comes back.
RECORD: Final = """
INSERT INTO channel_status AS s (logical, configured, membership, channel_id, name, error, learned_at)
VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp())
ON CONFLICT (logical, configured) DO UPDATE
   SET membership = EXCLUDED.membership, channel_id = EXCLUDED.channel_id, name = EXCLUDED.name,
       error = EXCLUDED.error, learned_at = EXCLUDED.learned_at
 WHERE s.learned_at <= EXCLUDED.learned_at
RETURNING learned_at
"""

STORED: Final = """
SELECT logical, configured, membership, channel_id, name, error, learned_at FROM channel_status
"""


@dataclass(frozen=True, slots=True)
class StoredStatus:
    """What a replica learned of one configured channel, and when (the database's clock)."""

    logical: str
    configured: str
    membership: str
    channel_id: str | None
    name: str | None
    error: str | None
    learned_at: dt.datetime


async def record(db: Executor, *, logical: str, configured: str, membership: str, channel_id: str | None,
                 name: str | None, error: str | None) -> dt.datetime | None:
    """Store what was just learned; when it was learned (None: a newer row was stored meanwhile)."""
    at: dt.datetime | None = await db.fetchval(RECORD, logical, configured, membership, channel_id, name, error)
    return at


async def stored(db: Executor) -> list[StoredStatus]:
    """Every channel's stored standing (a handful of rows: one per channel and configured value)."""
    return [StoredStatus(**dict(r)) for r in await db.fetch(STORED)]


async def listen(conn: asyncpg.Connection, on_notify: Callable[[], None]) -> None:
    """LISTEN for what any replica records (a connection of its own: LISTEN is per session)."""
    await conn.add_listener(NOTIFY_CHANNEL, lambda *_: on_notify())
