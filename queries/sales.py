"""SQL behind /sales and the sales JSON: window totals per currency, trend, checkouts, last order.

Orders and revenue count completed payments (`payment_status = 'completed'`), as the original guide does;
fully refunded orders leave them and show under refunds. Every window is a half-open [start, end) range, read
from the rollups of migrations 0007 and 0011 for its whole days, hours and quarter hours and from the rows
themselves at its edges (queries/cover.py), so the cost stays flat however many orders the table holds.
Unique customers are in queries/sketch.py; the plain queries the rollups must agree with, in sales_raw.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from queries.cover import DAY, HOUR, cover, local_cuts
from queries.executor import Executor

# A window read from its cover (queries/cover.py): whole UTC days and hours from sales_rollups, quarter hours
# from order_rollups, and the orders themselves at the edges, which the (payment_status, created_at) index
# covering amount and currency answers without touching the table. Tests hold them equal to the plain queries.
SALES_PARTS: Final = """
WITH parts AS (
    SELECT bucket AS at, currency, orders, revenue
      FROM sales_rollups WHERE level = 'day' AND bucket = ANY($1::timestamptz[])
    UNION ALL
    SELECT bucket, currency, orders, revenue
      FROM sales_rollups WHERE level = 'hour' AND bucket = ANY($2::timestamptz[])
       -- the hours' span as an index range: with 720 hours in the list the planner would scan the table
       AND bucket >= (SELECT min(b) FROM unnest($2::timestamptz[]) AS b)
       AND bucket <= (SELECT max(b) FROM unnest($2::timestamptz[]) AS b)
    UNION ALL
    SELECT bucket, currency, orders, revenue
      FROM order_rollups WHERE bucket = ANY($3::timestamptz[])
    UNION ALL
    SELECT o.created_at, coalesce(o.currency, ''), 1, coalesce(o.amount_total, 0)
      FROM unnest($4::timestamptz[], $5::timestamptz[]) AS w (lo, hi)
      JOIN orders AS o ON o.payment_status = 'completed' AND o.created_at >= w.lo AND o.created_at < w.hi
)
"""

WINDOW_TOTALS: Final = SALES_PARTS + """
SELECT currency, sum(orders)::bigint AS orders, sum(revenue)::bigint AS revenue
  FROM parts
 GROUP BY currency
HAVING sum(orders) <> 0
 ORDER BY revenue DESC, currency
"""

# date_trunc with a zone buckets by the store's local hours and days, DST included; the cover is cut at every
# local hour or day, so each rollup piece lies inside one local bucket and regroups exactly.
TREND: Final = SALES_PARTS + """
SELECT date_trunc($6, at, $7) AS bucket, currency, sum(orders)::bigint AS orders, sum(revenue)::bigint AS revenue
  FROM parts
 GROUP BY 1, 2
HAVING sum(orders) <> 0
 ORDER BY 1, 2
"""

# Refunds made, each at its own time, and apart from them those that failed or were canceled (migration 0042: a
# refund's step, or a void's, giving money back; 0045 sums the voids apart): whole days and hours from
# sales_rollups, at most an hour at either edge from refund_steps. The edges are a LATERAL subquery fenced by
# OFFSET 0, so each is an index range on refund_steps_at_idx (as a plain join the planner read the whole index and
# filtered it, the join clause not being an index condition it would parameterise). Per currency a row of the
# refunds made (count, amount) and one of the voids (negative count and amount: the money back), each when any.
REFUNDS: Final = """
WITH parts AS (
    SELECT currency, refunds + voids AS made, refunded + voided AS made_amount, voids, voided
      FROM sales_rollups WHERE level = 'day' AND bucket = ANY($1::timestamptz[])
    UNION ALL
    SELECT currency, refunds + voids, refunded + voided, voids, voided
      FROM sales_rollups WHERE level = 'hour' AND bucket = ANY($2::timestamptz[])
    UNION ALL
    SELECT s.currency, greatest(s.refunds, 0), CASE WHEN s.refunds > 0 THEN s.amount ELSE 0 END,
           greatest(-s.refunds, 0), CASE WHEN s.refunds < 0 THEN -s.amount ELSE 0 END
      FROM unnest($3::timestamptz[], $4::timestamptz[]) AS w (lo, hi)
     CROSS JOIN LATERAL (SELECT currency, refunds, amount FROM refund_steps
                          WHERE at >= w.lo AND at < w.hi OFFSET 0) AS s
), summed AS (
    SELECT currency, sum(made) AS made, sum(made_amount) AS made_amount, sum(voids) AS voids, sum(voided) AS voided
      FROM parts
     GROUP BY currency
)
SELECT s.currency, k.orders::bigint AS orders, k.revenue::bigint AS revenue
  FROM summed AS s
 CROSS JOIN LATERAL (VALUES (s.made, s.made_amount), (-s.voids, -s.voided)) AS k (orders, revenue)
 WHERE k.orders <> 0
 ORDER BY k.orders < 0, abs(k.revenue) DESC, s.currency
"""

LAST_ORDER_AT: Final = """
SELECT max(created_at) FROM orders WHERE payment_status = 'completed'
"""

# For the no-sales alerts: an order refunded in full since is still a sale (checkout worked, as the failure-rate
# rule counts it), and so for /health, whose silence flag is theirs. /sales keeps LAST_ORDER_AT, the newest of the
# orders it counts (a fully refunded one leaves its counts and its list of orders).
LAST_SALE_AT: Final = """
SELECT max(created_at) FROM orders WHERE payment_status IN ('completed', 'refunded')
"""

PENDING_CHECKOUTS: Final = """
SELECT count(*) FROM checkout_sessions WHERE status = 'pending' AND created_at > $1
"""

RECENT_ORDERS: Final = """
SELECT id, created_at, amount_total AS amount, currency, product_name AS product, customer_email
  FROM orders
 WHERE payment_status = 'completed'
 ORDER BY created_at DESC, id DESC
 LIMIT $1
"""

CONVERSION: Final = """
WITH parts AS (
    SELECT started, completed
      FROM checkout_rollups WHERE level = 'day' AND bucket = ANY($1::timestamptz[])
    UNION ALL
    SELECT started, completed
      FROM checkout_rollups WHERE level = 'hour' AND bucket = ANY($2::timestamptz[])
    UNION ALL
    SELECT 1, (c.status = 'completed')::int
      FROM unnest($3::timestamptz[], $4::timestamptz[]) AS w (lo, hi)
      JOIN checkout_sessions AS c ON c.created_at >= w.lo AND c.created_at < w.hi
)
SELECT coalesce(sum(started), 0)::bigint AS started, coalesce(sum(completed), 0)::bigint AS completed
  FROM parts
"""


@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    """Orders and an amount (minor units) in one currency."""

    currency: str
    orders: int
    revenue: int


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One bucket of the trend in one currency."""

    bucket: dt.datetime
    currency: str
    orders: int
    revenue: int


@dataclass(frozen=True, slots=True)
class RecentOrder:
    """A completed order as the App Home lists it; `amount` in minor units."""

    id: str
    created_at: dt.datetime
    amount: int
    currency: str
    product: str | None
    customer_email: str | None


@dataclass(frozen=True, slots=True)
class Conversion:
    """Checkout sessions started in a window and how many of them completed."""

    started: int
    completed: int

    @property
    def rate(self) -> float | None:
        """Completed ÷ started, or None when nothing started."""
        return self.completed / self.started if self.started else None


def _totals(rows: list[Any]) -> list[CurrencyTotal]:
    return [CurrencyTotal(r["currency"] or "USD", r["orders"], int(r["revenue"])) for r in rows]


async def window_totals(db: Executor, *, start: dt.datetime, end: dt.datetime) -> list[CurrencyTotal]:
    """Completed orders and revenue per currency in [start, end)."""
    return _totals(await db.fetch(WINDOW_TOTALS, *cover(start, end).args("day", "hour", "quarter", "raw")))


async def refunds(db: Executor, *, start: dt.datetime, end: dt.datetime) -> list[CurrencyTotal]:
    """Refunds made in [start, end) and the amount given back, per currency, each refund counted at its own time;
    then, in rows of their own, the refunds that failed or were canceled in [start, end), as a negative count and
    amount (the money back). Never netted: the rows of a currency add up to what it refunded net."""
    pieces = cover(start, end, widths=(DAY, HOUR))
    return _totals(await db.fetch(REFUNDS, *pieces.args("day", "hour", "raw")))


async def trend(db: Executor, *, start: dt.datetime, end: dt.datetime, bucket: str,
                tz: str) -> list[TrendPoint]:
    """Completed orders and revenue per local hour or day and currency."""
    pieces = cover(start, end, cuts=local_cuts(start, end, bucket=bucket, tz=tz))
    rows = await db.fetch(TREND, *pieces.args("day", "hour", "quarter", "raw"), bucket, tz)
    return [TrendPoint(r["bucket"], r["currency"] or "USD", r["orders"], int(r["revenue"])) for r in rows]


async def last_order_at(db: Executor) -> dt.datetime | None:
    """When the most recent completed order happened."""
    value: dt.datetime | None = await db.fetchval(LAST_ORDER_AT)
    return value


async def last_sale_at(db: Executor) -> dt.datetime | None:
    """When the most recent sale happened, one refunded in full since included."""
    value: dt.datetime | None = await db.fetchval(LAST_SALE_AT)
    return value


async def pending_checkouts(db: Executor, *, since: dt.datetime) -> int:
    """Checkouts started after `since` and still open (the guide's 'people in checkout')."""
    value: int = await db.fetchval(PENDING_CHECKOUTS, since)
    return value


async def conversion(db: Executor, *, start: dt.datetime, end: dt.datetime) -> Conversion:
    """Checkout sessions started in [start, end) and completed."""
    pieces = cover(start, end, widths=(DAY, HOUR))
    row = await db.fetchrow(CONVERSION, *pieces.args("day", "hour", "raw"))
    return Conversion(started=row["started"], completed=row["completed"])


async def recent_orders(db: Executor, *, limit: int) -> list[RecentOrder]:
    """The most recent completed orders, newest first."""
    rows = await db.fetch(RECENT_ORDERS, limit)
    return [RecentOrder(id=r["id"], created_at=r["created_at"], amount=int(r["amount"] or 0),
                        currency=r["currency"] or "USD", product=r["product"], customer_email=r["customer_email"])
            for r in rows]
