"""SQL for the Events API sync: its cursor and state, which events are already stored, what was recovered."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

# Watching starts with the first Stripe event this install stored (webhook or poll), else now: nothing
# older is pinged by the poller (`salespulse backfill` imports it without pings).
ENSURE_STATE: Final = """
INSERT INTO stripe_sync_state (id, started_at)
SELECT 'events', LEAST($1::timestamptz, (SELECT min(created_at) FROM webhook_logs
                                           WHERE source = 'stripe' AND via <> 'backfill'))
ON CONFLICT (id) DO NOTHING
"""

STATE: Final = """
SELECT started_at, cursor_id, cursor_created, last_poll_at, last_ok_at, last_error, last_error_at,
       last_reconcile_at
  FROM stripe_sync_state
 WHERE id = 'events'
"""

SET_CURSOR: Final = """
UPDATE stripe_sync_state SET cursor_id = $1, cursor_created = $2, updated_at = now() WHERE id = 'events'
"""

RECORD_OK: Final = """
UPDATE stripe_sync_state SET last_poll_at = $1, last_ok_at = $1, updated_at = now() WHERE id = 'events'
"""

RECORD_ERROR: Final = """
UPDATE stripe_sync_state
   SET last_poll_at = $1, last_error = $2, last_error_at = $1, updated_at = now()
 WHERE id = 'events'
"""

RECORD_RECONCILED: Final = """
UPDATE stripe_sync_state SET last_reconcile_at = $1, updated_at = now() WHERE id = 'events'
"""

KNOWN_EVENTS: Final = """
SELECT event_id FROM webhook_logs WHERE source = 'stripe' AND event_id = ANY($1::text[])
"""

RECOVERED_EVENTS: Final = """
SELECT count(*) FROM webhook_logs WHERE via = 'recovered' AND created_at >= $1 AND created_at < $2
"""

# Events Stripe created in the window that only the Events API brought in (stored after they happened,
# so `created_at >= $1` bounds the index scan without losing any).
RECOVERED_RECENT: Final = """
SELECT count(*) FROM webhook_logs
 WHERE via = 'recovered' AND created_at >= $1 AND event_created_at >= $1
"""

LAST_STRIPE_WEBHOOK: Final = """
SELECT max(created_at) FROM webhook_logs WHERE source = 'stripe' AND via = 'webhook'
"""

SYNC_STATUS: Final = """
SELECT s.started_at, s.last_poll_at, s.last_ok_at, s.last_error, s.last_error_at, s.last_reconcile_at,
       (SELECT count(*) FROM webhook_logs WHERE via = 'recovered' AND created_at >= $1) AS recovered_24h
  FROM stripe_sync_state AS s
 WHERE s.id = 'events'
"""

@dataclass(frozen=True, slots=True)
class SyncState:
    """Where the poller stands."""

    started_at: dt.datetime
    cursor_id: str | None
    cursor_created: dt.datetime | None
    last_poll_at: dt.datetime | None
    last_ok_at: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None
    last_reconcile_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What /health shows about the Events API."""

    started_at: dt.datetime
    last_poll_at: dt.datetime | None
    last_ok_at: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None
    last_reconcile_at: dt.datetime | None
    recovered_24h: int

    @property
    def failing(self) -> bool:
        """The last poll failed."""
        return self.last_error_at is not None and (self.last_ok_at is None or self.last_error_at > self.last_ok_at)


async def ensure_state(db: Executor, *, now: dt.datetime) -> SyncState:
    """The sync state, created on first use."""
    await db.execute(ENSURE_STATE, now)
    return SyncState(**dict(await db.fetchrow(STATE)))


async def set_cursor(db: Executor, *, event_id: str, created: dt.datetime) -> None:
    """Remember the newest event consumed."""
    await db.execute(SET_CURSOR, event_id, created)


async def record_ok(db: Executor, *, at: dt.datetime) -> None:
    """A poll succeeded."""
    await db.execute(RECORD_OK, at)


async def record_error(db: Executor, *, at: dt.datetime, error: str) -> None:
    """A poll failed; the cursor stays where it was."""
    await db.execute(RECORD_ERROR, at, error[:1000])


async def record_reconciled(db: Executor, *, at: dt.datetime) -> None:
    """A reconciliation pass finished."""
    await db.execute(RECORD_RECONCILED, at)


async def known_event_ids(db: Executor, event_ids: Sequence[str]) -> set[str]:
    """Which of these Stripe event ids are already stored (by any path)."""
    if not event_ids:
        return set()
    return {r["event_id"] for r in await db.fetch(KNOWN_EVENTS, list(event_ids))}


async def recovered_events(db: Executor, *, start: dt.datetime, end: dt.datetime) -> int:
    """Events the webhook missed that the Events API recovered, stored in [start, end) — for reports."""
    count: int = await db.fetchval(RECOVERED_EVENTS, start, end)
    return count


async def recovered_recent(db: Executor, *, since: dt.datetime) -> int:
    """Events created since `since` that arrived only through the Events API while a webhook was expected."""
    count: int = await db.fetchval(RECOVERED_RECENT, since)
    return count


async def last_stripe_webhook_at(db: Executor) -> dt.datetime | None:
    """When Stripe last reached POST /webhooks/stripe (polled events excluded)."""
    value: dt.datetime | None = await db.fetchval(LAST_STRIPE_WEBHOOK)
    return value


async def sync_status(db: Executor, *, since: dt.datetime) -> SyncStatus | None:
    """The Events API's state for /health (recovered counted since `since`); None when never polled."""
    row = await db.fetchrow(SYNC_STATUS, since)
    return None if row is None else SyncStatus(**dict(row))
