"""Every advisory-lock key the bot takes, and typed functions to take and release them.

PostgreSQL has one 64-bit advisory-lock key space per database, shared by every replica: a key means the same
thing wherever it is taken, so all of them are named here. Session-level locks (`try_lock`, `lock`) belong to a
connection until unlocked or closed, so they take an `asyncpg.Connection` that the caller opened for that one
purpose, never a pooled one: a lock left on a pooled connection (an unlock that failed) would outlive the work
and, because the pool's reset does not unlock, block every replica until that connection dies. The intake's
per-order locks (queries/intake.py `LOCK_REFS`) and the report-period locks (queries/report_periods.py
`LOCK_PERIOD`) share this key space through hashtextextended(); a collision
with the four constants below is a 1-in-2^62 chance and would only make two unrelated things wait in turn.
"""

from __future__ import annotations

from typing import Final

import asyncpg

# Any constants work as long as every replica uses the same ones; the base is "sales" in ASCII.
_BASE: Final = 0x73616C6573

# Session-level, on the migrating connection: replicas starting together apply migrations one at a time.
MIGRATION: Final = _BASE
# Session-level, on Leadership's dedicated connection: the holder evaluates alerts and probes SITE_URL.
LEADER: Final = _BASE + 1
# Transaction-level, in the evaluation's transaction: one evaluation at a time, whatever leadership believes.
EVALUATION: Final = _BASE + 2
# Session-level, on the Stripe job's dedicated connection: one replica polls the Events API at a time.
STRIPE_SYNC: Final = _BASE + 3

LOCK: Final = "SELECT pg_advisory_lock($1)"
TRY_LOCK: Final = "SELECT pg_try_advisory_lock($1)"
UNLOCK: Final = "SELECT pg_advisory_unlock($1)"
XACT_LOCK: Final = "SELECT pg_advisory_xact_lock($1)"


async def lock(conn: asyncpg.Connection, key: int) -> None:
    """Wait for the session-level lock `key` on this (dedicated) connection."""
    await conn.execute(LOCK, key)


async def try_lock(conn: asyncpg.Connection, key: int) -> bool:
    """Take the session-level lock `key` on this (dedicated) connection if nobody holds it; True if taken."""
    taken: bool = await conn.fetchval(TRY_LOCK, key)
    return taken


async def unlock(conn: asyncpg.Connection, key: int) -> bool:
    """Release a session-level lock this connection holds; False if it held none."""
    released: bool = await conn.fetchval(UNLOCK, key)
    return released


async def xact_lock(conn: asyncpg.Connection, key: int) -> None:
    """Wait for the transaction-level lock `key`; it is released at commit or rollback."""
    await conn.execute(XACT_LOCK, key)
