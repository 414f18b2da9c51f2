"""SQL behind the daily reports: what only they show (alerts of a window, top products, disputes), and the
`reports` table that makes each report happen once per local day, chart upload included."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

# An alert "fired" in a window when it started then, whenever (and whether) it was posted: a warning that started
# at 03:00 and was held until business hours is still part of the night the morning report tells.
ALERTS_BETWEEN: Final = """
SELECT id, severity, title, summary, started_at, notified_at, resolved_at, resolved_reason
  FROM alerts
 WHERE started_at >= $1 AND started_at < $2
   AND severity = ANY($3::text[])
 ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, started_at, id
"""

# Firing at `$1`: started by then and not resolved by then (so a report for a past day reads the same).
FIRING_AT: Final = """
SELECT id, severity, title, summary, started_at, notified_at, resolved_at, resolved_reason
  FROM alerts
 WHERE severity <> 'info' AND started_at <= $1 AND (resolved_at IS NULL OR resolved_at > $1)
 ORDER BY CASE severity WHEN 'critical' THEN 0 ELSE 1 END, started_at, id
"""

TOP_PRODUCTS: Final = """
SELECT coalesce(nullif(btrim(product_name), ''), 'Unknown')  AS product,
       coalesce(currency, 'USD')                             AS currency,
       count(*)                                              AS orders,
       coalesce(sum(amount_total), 0)                        AS revenue
  FROM orders
 WHERE payment_status = 'completed'
   AND created_at >= $1 AND created_at < $2
 GROUP BY 1, 2
 ORDER BY orders DESC, revenue DESC, product, currency
 LIMIT $3
"""

# The same in the store currency $4, one line per product whatever it sold in: each order at what settled for it
# or, in the store's own currency, at face value until read (bot/currency.py gross_in); an order in another
# currency not settled yet counts as an order, apart from the revenue: waiting to convert, or (its figures set
# aside, migration 0047) settled in another currency than the store's and never to convert.
TOP_PRODUCTS_IN: Final = """
SELECT coalesce(nullif(btrim(product_name), ''), 'Unknown')  AS product,
       $4::text                                              AS currency,
       count(*)                                              AS orders,
       coalesce(sum(coalesce(settled_amount, CASE WHEN currency = $4 THEN amount_total END)), 0) AS revenue,
       count(*) FILTER (WHERE settled_amount IS NULL AND settled_aside IS NULL
                          AND currency IS DISTINCT FROM $4)  AS not_converted,
       count(*) FILTER (WHERE settled_amount IS NULL AND settled_aside IS NOT NULL
                          AND currency IS DISTINCT FROM $4)  AS aside
  FROM orders
 WHERE payment_status = 'completed'
   AND created_at >= $1 AND created_at < $2
 GROUP BY 1
 ORDER BY orders DESC, revenue DESC, product
 LIMIT $3
"""

DISPUTES: Final = """
SELECT coalesce(currency, 'USD')    AS currency,
       count(*)                     AS orders,
       coalesce(sum(amount), 0)     AS revenue
  FROM disputes
 WHERE created_at >= $1 AND created_at < $2
 GROUP BY 1
 ORDER BY revenue DESC, currency
"""

# ON CONFLICT is what makes a report once per day across replicas: the second writer of (kind, day) gets
# no row back and sends nothing. A day noticed as missed may still be sent later on demand, by the CLI only: a
# replica that read "not recorded" just before the catch-up deadline, while another noted the day as missed just
# after it, must not post the late report under the notice (one message, not both). The report sent then covers
# until its time under the Settings in force then, so scheduled_at follows: the next morning's night starts there.
# A row recorded under another time zone whose day began $11 or more before or after this one's ($10: Tokyo's
# Wednesday, and now Los Angeles' is due) stands for another day: the report takes the row over, chart and message
# link included (migration 0048; a row without day_start, recorded before it, stands for the report if it was due
# less than $11 from this one's time $4). The second of two writers taking it over waits for the first's row and
# then finds it standing for the day. $10 NULL: never taken over.
RECORD: Final = """
INSERT INTO reports (kind, local_date, status, scheduled_at, recorded_at, late, source, chart_status,
                     chart_png, day_start)
VALUES              ($1,   $2,         $3,     $4,           $5,          $6,   $7,     $8,
                     $9,        $10)
ON CONFLICT (kind, local_date) DO UPDATE
   SET status = EXCLUDED.status, scheduled_at = EXCLUDED.scheduled_at, recorded_at = EXCLUDED.recorded_at,
       late = EXCLUDED.late, source = EXCLUDED.source, chart_status = EXCLUDED.chart_status,
       chart_png = EXCLUDED.chart_png, day_start = EXCLUDED.day_start, outbox_id = NULL, chart_file_id = NULL,
       chart_attempts = 0, chart_error = NULL
 WHERE (reports.status = 'missed' AND EXCLUDED.status = 'sent' AND EXCLUDED.source = 'cli')
    OR ($10 IS NOT NULL
        AND NOT coalesce(reports.day_start > $10 - $11::interval AND reports.day_start < $10 + $11::interval,
                         reports.scheduled_at > $4 - $11::interval AND reports.scheduled_at < $4 + $11::interval))
RETURNING kind
"""

SET_OUTBOX: Final = """
UPDATE reports SET outbox_id = $3 WHERE kind = $1 AND local_date = $2
"""

RECORDED: Final = """
SELECT kind, local_date, status, scheduled_at, recorded_at, late, source, outbox_id, chart_status,
       chart_file_id, chart_error, day_start
  FROM reports
 WHERE local_date = ANY($1::date[])
 ORDER BY scheduled_at, kind
"""

# The latest report of a kind recorded for local days $2..$3 and due before $4: sent, or noticed as missed (its notice
# named that time). Its scheduled_at is the time in force when it was due, whatever the Settings say now.
LAST_DUE: Final = """
SELECT scheduled_at
  FROM reports
 WHERE kind = $1 AND local_date BETWEEN $2 AND $3 AND scheduled_at < $4
 ORDER BY scheduled_at DESC
 LIMIT 1
"""

ANY_BEFORE: Final = """
SELECT EXISTS (SELECT 1 FROM reports WHERE scheduled_at < $1)
"""

# Charts whose message has been settled by the delivery worker (posted, or failed for good).
CHARTS_READY: Final = """
SELECT r.kind, r.local_date, o.status AS message_status, o.slack_channel, o.slack_ts
  FROM reports AS r
  JOIN outbox AS o ON o.id = r.outbox_id
 WHERE r.chart_status = 'pending' AND o.status <> 'pending'
 ORDER BY r.scheduled_at
"""

PENDING_MESSAGES: Final = """
SELECT count(*) FROM outbox WHERE id = ANY($1::bigint[]) AND status = 'pending'
"""

MESSAGE_STATUS: Final = """
SELECT status FROM outbox WHERE id = $1
"""

SETTLE_CHART: Final = """
UPDATE reports
   SET chart_status = $3, chart_file_id = $4, chart_error = $5, chart_attempts = chart_attempts + 1,
       chart_png = CASE WHEN $3 = 'pending' THEN chart_png END
 WHERE kind = $1 AND local_date = $2
"""


@dataclass(frozen=True, slots=True)
class ReportAlert:
    """An alert as the reports list it."""

    id: int
    severity: str  # critical | warning | info
    title: str
    summary: str
    started_at: dt.datetime
    notified_at: dt.datetime | None
    resolved_at: dt.datetime | None
    resolved_reason: str | None = None  # 'rule off': closed because its rule is off now (migration 0044)


@dataclass(frozen=True, slots=True)
class ProductTotal:
    """Completed orders and revenue of one product in one currency (in the store currency: `not_converted` of the
    orders are in another one, not settled yet, and `aside` settled in another currency than the store's; neither
    is in `revenue`)."""

    product: str
    currency: str
    orders: int
    revenue: int
    not_converted: int = 0
    aside: int = 0


@dataclass(frozen=True, slots=True)
class RecordedReport:
    """A row of `reports`: a report sent (or noticed as missed) for one local day."""

    kind: str
    local_date: dt.date
    status: str
    scheduled_at: dt.datetime
    recorded_at: dt.datetime
    late: bool
    source: str
    outbox_id: int | None
    chart_status: str
    chart_file_id: str | None
    chart_error: str | None
    day_start: dt.datetime | None = None  # the instant local_date began in the zone in force then (migration 0048)


@dataclass(frozen=True, slots=True)
class ChartReady:
    """A pending chart whose message is settled: where it landed in Slack, if it did."""

    kind: str
    local_date: dt.date
    message_status: str
    slack_channel: str | None
    slack_ts: str | None


async def alerts_between(db: Executor, *, start: dt.datetime, end: dt.datetime,
                         severities: tuple[str, ...]) -> list[ReportAlert]:
    """Alerts of these severities that fired in [start, end), most severe first."""
    return [ReportAlert(**dict(r)) for r in await db.fetch(ALERTS_BETWEEN, start, end, list(severities))]


async def firing_at(db: Executor, *, at: dt.datetime) -> list[ReportAlert]:
    """Critical and warning alerts firing at `at`."""
    return [ReportAlert(**dict(r)) for r in await db.fetch(FIRING_AT, at)]


async def top_products(db: Executor, *, start: dt.datetime, end: dt.datetime, limit: int,
                       store: str | None = None) -> list[ProductTotal]:
    """The products with the most completed orders in [start, end), per currency, or in the `store` currency."""
    if store is None:
        rows = await db.fetch(TOP_PRODUCTS, start, end, limit)
        return [ProductTotal(r["product"], r["currency"], r["orders"], int(r["revenue"])) for r in rows]
    rows = await db.fetch(TOP_PRODUCTS_IN, start, end, limit, store)
    return [ProductTotal(r["product"], r["currency"], r["orders"], int(r["revenue"]), r["not_converted"], r["aside"])
            for r in rows]


async def disputes(db: Executor, *, start: dt.datetime, end: dt.datetime) -> list[tuple[str, int, int]]:
    """Disputes opened in [start, end): (currency, count, amount in minor units) per currency."""
    return [(r["currency"], r["orders"], int(r["revenue"])) for r in await db.fetch(DISPUTES, start, end)]


async def record(db: Executor, *, kind: str, local_date: dt.date, status: str, scheduled_at: dt.datetime,
                 recorded_at: dt.datetime, late: bool, source: str, chart_status: str,
                 chart_png: bytes | None, day_start: dt.datetime | None = None,
                 same_day_within: dt.timedelta = dt.timedelta(hours=12)) -> bool:
    """Claim (kind, day) for this report; False when it was already sent (by anyone) for the day that began at
    `day_start` (a row of a day that began `same_day_within` or more away is taken over; None: never)."""
    kept = await db.fetchval(RECORD, kind, local_date, status, scheduled_at, recorded_at, late, source,
                             chart_status, chart_png, day_start, same_day_within)
    return kept is not None


async def set_outbox(db: Executor, *, kind: str, local_date: dt.date, outbox_id: int | None) -> None:
    """Link the report to its queued message."""
    await db.execute(SET_OUTBOX, kind, local_date, outbox_id)


async def recorded(db: Executor, *, days: list[dt.date]) -> list[RecordedReport]:
    """The reports recorded for these local days."""
    return [RecordedReport(**dict(r)) for r in await db.fetch(RECORDED, days)]


async def last_due(db: Executor, *, kind: str, first: dt.date, last: dt.date,
                   before: dt.datetime) -> dt.datetime | None:
    """When the latest `kind` report recorded for a local day in [first, last] and due before `before` was due."""
    value: dt.datetime | None = await db.fetchval(LAST_DUE, kind, first, last, before)
    return value


async def any_before(db: Executor, *, at: dt.datetime) -> bool:
    """Whether any report was due before `at` (no report yet: a fresh install, nothing was missed)."""
    value: bool = await db.fetchval(ANY_BEFORE, at)
    return value


async def charts_ready(db: Executor) -> list[ChartReady]:
    """Pending charts whose message the delivery worker has settled."""
    return [ChartReady(**dict(r)) for r in await db.fetch(CHARTS_READY)]


async def settle_chart(db: Executor, *, kind: str, local_date: dt.date, status: str,
                       file_id: str | None = None, error: str | None = None) -> None:
    """Record how the upload went; the PNG is dropped unless the upload is still pending."""
    await db.execute(SETTLE_CHART, kind, local_date, status, file_id, None if error is None else error[:1000])


async def pending_messages(db: Executor, *, ids: list[int]) -> int:
    """How many of these outbox messages the delivery worker has not settled yet."""
    value: int = await db.fetchval(PENDING_MESSAGES, ids)
    return value


async def message_status(db: Executor, *, outbox_id: int | None) -> str | None:
    """The delivery status of one outbox message (pending | delivered | failed …)."""
    value: str | None = None if outbox_id is None else await db.fetchval(MESSAGE_STATUS, outbox_id)
    return value
