"""The /sales figures computed from the orders and checkout sessions alone: the exact count of unique
customers, and the plain queries every rollup-backed figure in queries.sales must always agree with."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from queries.executor import Executor
from queries.sales import Conversion, CurrencyTotal, TrendPoint

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

TREND_RAW: Final = """
SELECT date_trunc($3, created_at, $4)  AS bucket,
       coalesce(currency, '')          AS currency,
       count(*)                        AS orders,
       coalesce(sum(amount_total), 0)  AS revenue
  FROM orders
 WHERE payment_status = 'completed'
   AND created_at >= $1 AND created_at < $2
 GROUP BY 1, 2
 ORDER BY 1, 2
"""

# Each order's refund steps (migration 0042's refund_steps_of(), from what Stripe said of its refunds): a refund made
# counts 1 and its amount at its own time; one voided counts in a row of its own, -1 and its amount back, at the
# void's.
REFUNDS_RAW: Final = """
SELECT coalesce(o.currency, '')                   AS currency,
       sign(s.refunds)::int * count(*)            AS orders,
       coalesce(sum(s.amount), 0)                 AS revenue
  FROM orders AS o
 CROSS JOIN LATERAL refund_steps_of(o.refund_ledger, o.payment_status, o.amount_refunded, o.refunded_at) AS s
 WHERE (o.refund_ledger <> '{}' OR o.refunded_at IS NOT NULL)
   AND s.at >= $1 AND s.at < $2
 GROUP BY 1, sign(s.refunds)
 ORDER BY sign(s.refunds) < 0, abs(coalesce(sum(s.amount), 0)) DESC, currency
"""

CONVERSION_RAW: Final = """
SELECT count(*)                                      AS started,
       count(*) FILTER (WHERE status = 'completed')  AS completed
  FROM checkout_sessions
 WHERE created_at >= $1 AND created_at < $2
"""

# Distinct 64-bit hashes instead of distinct text: no collation-aware sort of a million emails (3× faster over
# 30 days at 10 M orders); two addresses sharing a hash is vanishingly unlikely at store scale. The sketches
# (migration 0011) hash the same way.
UNIQUE_CUSTOMERS: Final = """
SELECT count(DISTINCT hashtextextended(customer_email, 0))
  FROM orders
 WHERE payment_status = 'completed'
   AND created_at >= $1 AND created_at < $2
"""

ORDERS_WITHOUT_EMAIL: Final = """
SELECT count(*) FROM orders WHERE payment_status = 'completed' AND customer_email IS NULL
   AND created_at >= $1 AND created_at < $2
"""


def _totals(rows: list[Any]) -> list[CurrencyTotal]:
    return [CurrencyTotal(r["currency"] or "USD", r["orders"], int(r["revenue"])) for r in rows]


async def window_totals(db: Executor, *, start: dt.datetime, end: dt.datetime) -> list[CurrencyTotal]:
    """Completed orders and revenue per currency in [start, end), from orders alone."""
    return _totals(await db.fetch(WINDOW_TOTALS_RAW, start, end))


async def trend(db: Executor, *, start: dt.datetime, end: dt.datetime, bucket: str,
                tz: str) -> list[TrendPoint]:
    """Completed orders and revenue per local hour or day and currency, from orders alone."""
    rows = await db.fetch(TREND_RAW, start, end, bucket, tz)
    return [TrendPoint(r["bucket"], r["currency"] or "USD", r["orders"], int(r["revenue"])) for r in rows]


async def refunds(db: Executor, *, start: dt.datetime, end: dt.datetime) -> list[CurrencyTotal]:
    """Refunds made in [start, end) and the amount given back, per currency, then those that failed or were
    canceled (negative count and amount), from the orders alone."""
    return _totals(await db.fetch(REFUNDS_RAW, start, end))


async def conversion(db: Executor, *, start: dt.datetime, end: dt.datetime) -> Conversion:
    """Checkout sessions started in [start, end) and completed, from the sessions alone."""
    row = await db.fetchrow(CONVERSION_RAW, start, end)
    return Conversion(started=row["started"], completed=row["completed"])


async def unique_customers(db: Executor, *, start: dt.datetime, end: dt.datetime) -> int:
    """Distinct customer emails among completed orders in [start, end), counted exactly."""
    value: int = await db.fetchval(UNIQUE_CUSTOMERS, start, end)
    return value


async def orders_without_email(db: Executor, *, start: dt.datetime, end: dt.datetime) -> int:
    """Completed orders in [start, end) without a customer email, counted in the orders."""
    value: int = await db.fetchval(ORDERS_WITHOUT_EMAIL, start, end)
    return value
