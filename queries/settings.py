"""Settings changed from Slack: the stored overrides, their audit trail, and the notification that reloads them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from queries.executor import Executor

NOTIFY_CHANNEL: Final = "salespulse_settings"  # the trigger in 0013_settings.sql notifies here

ALL: Final = """
SELECT key, value, updated_by, updated_at FROM settings_overrides ORDER BY key
"""

# Serialises changes: two admins saving at once each see the other's value as "before".
LOCK_ALL: Final = """
LOCK TABLE settings_overrides IN SHARE ROW EXCLUSIVE MODE
"""

UPSERT: Final = """
INSERT INTO settings_overrides (key, value, updated_by, updated_at)
VALUES                         ($1,  $2,    $3,         $4)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by,
                                updated_at = EXCLUDED.updated_at
"""

DELETE: Final = """
DELETE FROM settings_overrides WHERE key = $1
"""

AUDIT: Final = """
INSERT INTO settings_audit (at, user_id, key, before, after)
VALUES                     ($1, $2,      $3,  $4,     $5)
"""

LAST_CHANGED_BY: Final = """
SELECT user_id FROM settings_audit WHERE key = $1 ORDER BY id DESC LIMIT 1
"""

RECENT_CHANGES: Final = """
SELECT at, user_id, key, before, after FROM settings_audit ORDER BY at DESC, id DESC LIMIT $1
"""


@dataclass(frozen=True, slots=True)
class Override:
    """One setting changed from Slack, and who changed it last."""

    key: str
    value: Any
    updated_by: str
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Change:
    """One audited change: who, when, which setting, before → after (None: the default)."""

    at: dt.datetime
    user_id: str
    key: str
    before: Any
    after: Any


async def overrides(db: Executor) -> list[Override]:
    """Every stored override, by key."""
    return [Override(**dict(r)) for r in await db.fetch(ALL)]


async def lock_for_change(conn: asyncpg.Connection) -> None:
    """Inside a transaction: one change at a time, so each one's "before" is the value it replaced."""
    await conn.execute(LOCK_ALL)


async def put(db: Executor, *, key: str, value: Any, user_id: str, at: dt.datetime) -> None:
    """Store an override (value None: delete it, back to the default)."""
    if value is None:
        await db.execute(DELETE, key)
    else:
        await db.execute(UPSERT, key, value, user_id[:64], at)


async def audit(db: Executor, change: Change) -> None:
    """Keep one change in the audit trail."""
    await db.execute(AUDIT, change.at, change.user_id[:64], change.key, change.before, change.after)


async def last_changed_by(db: Executor, *, key: str) -> str | None:
    """Who changed this setting last (None: nobody has, from Slack)."""
    value: str | None = await db.fetchval(LAST_CHANGED_BY, key)
    return value


async def recent_changes(db: Executor, *, limit: int) -> list[Change]:
    """The latest changes, newest first."""
    return [Change(**dict(r)) for r in await db.fetch(RECENT_CHANGES, limit)]


async def listen(conn: asyncpg.Connection, on_notify: Callable[[], None]) -> None:
    """LISTEN for changes on `conn` (a connection of its own: LISTEN is per session)."""
    await conn.add_listener(NOTIFY_CHANNEL, lambda *_: on_notify())
