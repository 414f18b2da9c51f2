"""SQL behind /errors and the errors JSON: webhook errors by type, payment failures, delivery errors."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

# The last error text per event type comes from the newest row of each group.
WEBHOOK_ERRORS: Final = """
SELECT event_type,
       count(*)                                           AS count,
       max(updated_at)                                    AS last_at,
       (array_agg(last_error ORDER BY updated_at DESC))[1] AS last_error
  FROM webhook_logs
 WHERE status = 'error'
   AND updated_at >= $1 AND updated_at < $2
 GROUP BY event_type
 ORDER BY count DESC, event_type
"""

WEBHOOKS_RECEIVED: Final = """
SELECT count(*) FROM webhook_logs WHERE created_at >= $1 AND created_at < $2
"""

PAYMENT_FAILURES: Final = """
SELECT count(*) FROM payment_failures WHERE created_at >= $1 AND created_at < $2
"""

# Attempts = failed attempts + successful payments in the window (the failure rate's denominator).
PAYMENTS_SUCCEEDED: Final = """
SELECT count(*) FROM orders
 WHERE payment_status IN ('completed', 'refunded') AND created_at >= $1 AND created_at < $2
"""

# Stripe's retry number ("… (attempt 2)", on invoices) is left out: a reason counts once whichever try it failed.
FAILURE_REASONS: Final = """
SELECT coalesce(regexp_replace(reason, ' \\(attempt \\d+\\)$', ''), 'Unknown') AS reason, count(*) AS count
  FROM payment_failures
 WHERE created_at >= $1 AND created_at < $2
 GROUP BY 1
 ORDER BY 2 DESC, 1
 LIMIT $3
"""


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """Errors of one kind in a window, with the newest message."""

    event_type: str
    count: int
    last_at: dt.datetime
    last_error: str | None


@dataclass(frozen=True, slots=True)
class ReasonCount:
    """How many payment failures gave this reason."""

    reason: str
    count: int


async def webhook_errors(db: Executor, *, start: dt.datetime, end: dt.datetime) -> list[ErrorGroup]:
    """Webhooks that failed processing in [start, end), grouped by event type."""
    return [ErrorGroup(**dict(r)) for r in await db.fetch(WEBHOOK_ERRORS, start, end)]


async def webhooks_received(db: Executor, *, start: dt.datetime, end: dt.datetime) -> int:
    """Webhooks received in [start, end) (the error rate's denominator)."""
    value: int = await db.fetchval(WEBHOOKS_RECEIVED, start, end)
    return value


async def payment_failures(db: Executor, *, start: dt.datetime, end: dt.datetime) -> int:
    """Failed payment attempts in [start, end)."""
    value: int = await db.fetchval(PAYMENT_FAILURES, start, end)
    return value


async def payments_succeeded(db: Executor, *, start: dt.datetime, end: dt.datetime) -> int:
    """Successful payments in [start, end)."""
    value: int = await db.fetchval(PAYMENTS_SUCCEEDED, start, end)
    return value


async def failure_reasons(db: Executor, *, start: dt.datetime, end: dt.datetime,
                          limit: int = 5) -> list[ReasonCount]:
    """The most frequent payment failure reasons in [start, end)."""
    return [ReasonCount(**dict(r)) for r in await db.fetch(FAILURE_REASONS, start, end, limit)]
