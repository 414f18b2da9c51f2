"""SQL behind /health: ages of the last webhook and order, the outbox backlog, Slack delivery errors."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

# Webhooks only: events the Events API brought in must not hide a silent webhook endpoint.
LAST_WEBHOOK_AT: Final = """
SELECT max(created_at) FROM webhook_logs WHERE via = 'webhook'
"""

# `oldest_due`: since when the oldest message that should be out by now has been due: from the end of its hold (a
# sale settling, renewals gathered to the hour's end; a retried message's first_due_at, as its retries move
# available_at on), or from when it was queued. An edit or reply waits behind its target while that is not out:
# by design if the target is held, and the target itself counts if it is stuck.
_DUE: Final = """((attempts > 0 OR available_at <= $1)
        AND NOT EXISTS (SELECT FROM outbox AS t WHERE t.id = o.target_id AND t.status = 'pending'))"""
_DUE_SINCE: Final = f"""min(greatest(created_at, CASE WHEN attempts > 0 THEN coalesce(first_due_at, created_at)
                                              ELSE available_at END)) FILTER (WHERE {_DUE})"""
OUTBOX_BACKLOG: Final = f"""
SELECT count(*) AS pending, min(created_at) AS oldest, {_DUE_SINCE} AS oldest_due
  FROM outbox AS o
 WHERE status = 'pending'
"""
# The channels whose oldest due message has waited since before $2: how many are due, and Slack's last word on the
# channel since then (none: the worker has not tried yet, or is being slow).
STUCK_CHANNELS: Final = f"""
SELECT s.channel, s.waiting, s.due_since,
       (SELECT d.error FROM delivery_errors AS d
         WHERE d.channel = s.channel AND coalesce(d.last_at, d.created_at) >= s.due_since
         ORDER BY d.id DESC LIMIT 1) AS error
  FROM (SELECT channel, count(*) FILTER (WHERE {_DUE}) AS waiting, {_DUE_SINCE} AS due_since
          FROM outbox AS o
         WHERE status = 'pending'
         GROUP BY channel) AS s
 WHERE s.due_since < $2
 ORDER BY s.channel
"""

PING: Final = "SELECT 1"

SERVER_VERSION: Final = "SHOW server_version"

# A row counts its repeats (migration 0028) and spans an hour at most: the created_at bound keeps to the index. An
# end bound $2 (NULL: none) keeps the rows begun before it, so a report for a past day leaves out the errors after it
# (a row straddling the bound counts whole, as one straddling $1 does).
DELIVERY_ERRORS: Final = """
SELECT coalesce(sum(repeats), 0)                                   AS count,
       coalesce(sum(repeats) FILTER (WHERE permanent), 0)          AS permanent,
       max(coalesce(last_at, created_at))                          AS last_at,
       (array_agg(channel || ': ' || error ORDER BY coalesce(last_at, created_at) DESC, id DESC))[1] AS last_error
  FROM delivery_errors
 WHERE created_at >= $1::timestamptz - interval '1 hour' AND coalesce(last_at, created_at) >= $1
   AND ($2::timestamptz IS NULL OR created_at < $2)
"""


@dataclass(frozen=True, slots=True)
class Backlog:
    """Messages waiting for Slack and the age of the oldest."""

    pending: int
    oldest: dt.datetime | None
    oldest_due: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class StuckChannel:
    """A channel whose messages are not reaching Slack."""

    channel: str
    waiting: int
    due_since: dt.datetime
    error: str | None


@dataclass(frozen=True, slots=True)
class DeliveryErrors:
    """Slack delivery problems since a point in time."""

    count: int
    permanent: int
    last_at: dt.datetime | None
    last_error: str | None


async def ping(db: Executor) -> None:
    """A round trip to PostgreSQL; callers bound it with asyncio.timeout()."""
    await db.fetchval(PING)


async def server_version(db: Executor) -> str:
    """PostgreSQL's version, as `SHOW server_version` spells it."""
    version: str = await db.fetchval(SERVER_VERSION)
    return version


async def last_webhook_at(db: Executor) -> dt.datetime | None:
    """When the last webhook (any source) arrived."""
    value: dt.datetime | None = await db.fetchval(LAST_WEBHOOK_AT)
    return value


async def outbox_backlog(db: Executor, *, now: dt.datetime) -> Backlog:
    """Undelivered messages: the oldest of all, and the oldest due by `now`."""
    row = await db.fetchrow(OUTBOX_BACKLOG, now)
    return Backlog(pending=row["pending"], oldest=row["oldest"], oldest_due=row["oldest_due"])


async def delivery_errors(db: Executor, *, since: dt.datetime, until: dt.datetime | None = None) -> DeliveryErrors:
    """Slack delivery errors since `since` (and before `until`, when given)."""
    row = await db.fetchrow(DELIVERY_ERRORS, since, until)
    return DeliveryErrors(**dict(row))


async def stuck_channels(db: Executor, *, now: dt.datetime, since: dt.datetime) -> list[StuckChannel]:
    """Channels with a message due (by `now`) since before `since` and still not delivered."""
    return [StuckChannel(**dict(r)) for r in await db.fetch(STUCK_CHANNELS, now, since)]
