"""SQL for events the store's app reports (errors, sync failures): store once, count and list by window.

Windows go by received_at (when the bot got the event, by its clock), not the sender's occurred_at: a client
clock hours ahead, or a batch reporting yesterday's failures now, must still count as news when it arrives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from queries.executor import Executor

KINDS: Final = ("error", "sync_failure")

# A client id seen before makes this a no-op; events without an id (NULL) never conflict.
INSERT_APP_EVENT: Final = """
INSERT INTO app_events (source, event_id, kind, system, message, order_id, context, occurred_at, received_at)
VALUES                 ($1,     $2,       $3,   $4,     $5,      $6,       $7,      $8,          $9)
ON CONFLICT (event_id) DO NOTHING
RETURNING id
"""

COUNT_BY_KIND: Final = """
SELECT kind, count(*) AS count
  FROM app_events
 WHERE received_at >= $1 AND received_at < $2
 GROUP BY kind
"""

RECENT: Final = """
SELECT id, source, event_id, kind, system, message, order_id, context, occurred_at, received_at, created_at
  FROM app_events
 WHERE kind = $1 AND received_at >= $2 AND received_at < $3
 ORDER BY received_at DESC, id DESC
 LIMIT $4
"""


@dataclass(frozen=True, slots=True)
class AppEvent:
    """One stored error or sync failure."""

    id: int
    source: str
    event_id: str | None
    kind: str
    system: str | None
    message: str
    order_id: str | None
    context: dict[str, Any]
    occurred_at: dt.datetime  # the sender's time
    received_at: dt.datetime  # when the bot got it
    created_at: dt.datetime


async def insert(db: Executor, *, kind: str, message: str, occurred_at: dt.datetime, received_at: dt.datetime,
                 source: str = "app", event_id: str | None = None, system: str | None = None,
                 order_id: str | None = None, context: Mapping[str, Any] | None = None) -> int | None:
    """Store one event; None when an event with this client id was already stored."""
    row_id: int | None = await db.fetchval(INSERT_APP_EVENT, source, event_id, kind, system, message,
                                           order_id, dict(context or {}), occurred_at, received_at)
    return row_id


async def count_by_kind(db: Executor, *, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """Events per kind received in [start, end); every known kind is present, zero included."""
    rows = await db.fetch(COUNT_BY_KIND, start, end)
    return dict.fromkeys(KINDS, 0) | {row["kind"]: row["count"] for row in rows}


async def recent(db: Executor, *, kind: str, start: dt.datetime, end: dt.datetime,
                 limit: int) -> list[AppEvent]:
    """The latest events of `kind` received in [start, end), newest first, at most `limit`."""
    rows = await db.fetch(RECENT, kind, start, end, limit)
    return [AppEvent(**dict(row)) for row in rows]
