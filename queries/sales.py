"""SQL behind /sales and the sales JSON: window totals per currency, trend, checkouts, last order.

Orders and revenue count completed payments (`payment_status = 'completed'`), as the original guide does;
fully refunded orders leave them and show under refunds. Every window is a half-open [start, end) range on
`created_at`, which the (payment_status, created_at) index covering amount and currency answers without
touching the table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from queries.executor import Executor

# Whole 15-minute buckets in [$3, $4) come from the rollup; the partial buckets at either end, [$1, $3) and
# [$4, $2), from the orders themselves. The two agree exactly (tests compare them with the plain query).
WINDOW_TOTALS: Final = """
WITH parts AS (
    SELECT currency, orders, revenue
      FROM order_rollups
     WHERE bucket >= $3 AND bucket < $4
    UNION ALL
    SELECT coalesce(currency, ''), 1, coalesce(amount_total, 0)
      FROM orders
     WHERE payment_status = 'completed'
       AND (created_at >= $1 AND created_at < $3 OR created_at >= $4 AND created_at < $2)
)
SELECT currency, sum(orders)::bigint AS orders, sum(revenue)::bigint AS revenue
  FROM parts
 GROUP BY currency
HAVING sum(orders) <> 0
 ORDER BY revenue DESC, currency
"""

# The same window read from orders alone: what the rollup must always agree with.
WINDOW_TOTALS_RAW: Final = """
SELECT coalesce(currency, '')          AS currency,
       count(*)                        AS orders,
       coalesce(sum(amount_total), 0)  AS revenue
  FROM orders
 WHERE payment_status = 'completed'
   AND created_at >= $1 AND created_at < $2
 GROUP BY 1
 ORDER BY revenue DESC, currency
"""

# Distinct 64-bit hashes instead of distinct text: no collation-aware sort of a million emails (3× faster over
# 30 days at 10 M orders); two addresses sharing a hash is vanishingly unlikely at store scale.
UNIQUE_CUSTOMERS: Final = """
SELECT count(DISTINCT hashtextextended(customer_email, 0))
  FROM orders
 WHERE payment_status = 'completed'
   AND created_at >= $1 AND created_at < $2
"""

REFUNDS: Final = """
SELECT currency,
       count(*)                           AS orders,
       coalesce(sum(amount_refunded), 0)  AS revenue
  FROM orders
 WHERE refunded_at >= $1 AND refunded_at < $2
 GROUP BY currency
 ORDER BY revenue DESC, currency
"""

# date_trunc with a zone buckets by the store's local hours and days, DST included; every 15-minute rollup
# bucket lies inside one local hour, so whole buckets can be regrouped the same way.
TREND: Final = """
WITH parts AS (
    SELECT date_trunc($5, bucket, $6) AS bucket, currency, orders, revenue
      FROM order_rollups
     WHERE bucket >= $3 AND bucket < $4
    UNION ALL
    SELECT date_trunc($5, created_at, $6), coalesce(currency, ''), 1, coalesce(amount_total, 0)
      FROM orders
     WHERE payment_status = 'completed'
       AND (created_at >= $1 AND created_at < $3 OR created_at >= $4 AND created_at < $2)
)
SELECT bucket, currency, sum(orders)::bigint AS orders, sum(revenue)::bigint AS revenue
  FROM parts
 GROUP BY 1, 2
HAVING sum(orders) <> 0
 ORDER BY 1, 2
"""

LAST_ORDER_AT: Final = """
SELECT max(created_at) FROM orders WHERE payment_status = 'completed'
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
SELECT count(*)                                      AS started,
       count(*) FILTER (WHERE status = 'completed')  AS completed
  FROM checkout_sessions
 WHERE created_at >= $1 AND created_at < $2
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


ROLLUP_BUCKET = dt.timedelta(minutes=15)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def whole_buckets(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The rollup buckets entirely inside [start, end), as [first, last); empty (end, end) when none."""
    first = _EPOCH + -((_EPOCH - start) // ROLLUP_BUCKET) * ROLLUP_BUCKET  # start rounded up
    last = _EPOCH + ((end - _EPOCH) // ROLLUP_BUCKET) * ROLLUP_BUCKET  # end rounded down
    return (first, last) if first < last else (end, end)


def _totals(rows: list[Any]) -> list[CurrencyTotal]:
    return [CurrencyTotal(r["currency"] or "USD", r["orders"], int(r["revenue"])) for r in rows]


async def window_totals(db: Executor, *, start: dt.datetime, end: dt.datetime) -> list[CurrencyTotal]:
    """Completed orders and revenue per currency in [start, end)."""
    return _totals(await db.fetch(WINDOW_TOTALS, start, end, *whole_buckets(start, end)))


async def window_totals_raw(db: Executor, *, start: dt.datetime, end: dt.datetime) -> list[CurrencyTotal]:
    """The same figures computed from orders alone (a check on the rollup)."""
    return _totals(await db.fetch(WINDOW_TOTALS_RAW, start, end))


async def unique_customers(db: Executor, *, start: dt.datetime, end: dt.datetime) -> int:
    """Distinct customer emails among completed orders in [start, end)."""
    value: int = await db.fetchval(UNIQUE_CUSTOMERS, start, end)
    return value


async def refunds(db: Executor, *, start: dt.datetime, end: dt.datetime) -> list[CurrencyTotal]:
    """Orders refunded (fully or partly) in [start, end) and the amount given back, per currency."""
    rows = await db.fetch(REFUNDS, start, end)
    return [CurrencyTotal(r["currency"] or "USD", r["orders"], int(r["revenue"])) for r in rows]


async def trend(db: Executor, *, start: dt.datetime, end: dt.datetime, bucket: str,
                tz: str) -> list[TrendPoint]:
    """Completed orders and revenue per local hour or day and currency."""
    rows = await db.fetch(TREND, start, end, *whole_buckets(start, end), bucket, tz)
    return [TrendPoint(r["bucket"], r["currency"] or "USD", r["orders"], int(r["revenue"])) for r in rows]


async def last_order_at(db: Executor) -> dt.datetime | None:
    """When the most recent completed order happened."""
    value: dt.datetime | None = await db.fetchval(LAST_ORDER_AT)
    return value


async def pending_checkouts(db: Executor, *, since: dt.datetime) -> int:
    """Checkouts started after `since` and still open (the guide's 'people in checkout')."""
    value: int = await db.fetchval(PENDING_CHECKOUTS, since)
    return value


async def conversion(db: Executor, *, start: dt.datetime, end: dt.datetime) -> Conversion:
    """Checkout sessions started in [start, end) and completed."""
    row = await db.fetchrow(CONVERSION, start, end)
    return Conversion(started=row["started"], completed=row["completed"])


async def recent_orders(db: Executor, *, limit: int) -> list[RecentOrder]:
    """The most recent completed orders, newest first."""
    rows = await db.fetch(RECENT_ORDERS, limit)
    return [RecentOrder(id=r["id"], created_at=r["created_at"], amount=int(r["amount"] or 0),
                        currency=r["currency"] or "USD", product=r["product"], customer_email=r["customer_email"])
            for r in rows]
