"""App Home's news between replicas: a NOTIFY when the figures changed on one, which every replica hears (LISTEN)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import asyncpg

from queries.executor import Executor

NOTIFY_CHANNEL: Final = "salespulse_home"

NOTIFY: Final = """
SELECT pg_notify($1, $2)
"""


async def notify(db: Executor, *, origin: str) -> None:
    """Tell every replica that Home's figures changed; `origin` names the replica that says so."""
    await db.execute(NOTIFY, NOTIFY_CHANNEL, origin)


async def listen(conn: asyncpg.Connection, on_notify: Callable[[str], None]) -> None:
    """LISTEN for those notifications on `conn` (a connection of its own: LISTEN is per session); `on_notify` gets
    the notifying replica's `origin`."""
    await conn.add_listener(NOTIFY_CHANNEL, lambda _conn, _pid, _name, origin: on_notify(origin))
