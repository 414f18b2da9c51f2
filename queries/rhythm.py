"""SQL behind the store's rhythm: completed orders per local day and hour from the 15-minute rollups.

Every 15-minute bucket lies inside one local hour (the rollup's reason for 15 minutes), so regrouping whole
buckets by `bucket AT TIME ZONE tz` gives exact local hours, DST included: a fall-back day has two 01:00
hours that land in the same (day, hour) row, a spring-forward day has no 02:00 row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

# Windows are whole local days ([local midnight, local midnight)), so whole buckets are the whole answer.
HOURLY_HISTORY: Final = """
SELECT (bucket AT TIME ZONE $3)::date                   AS day,
       extract(hour FROM bucket AT TIME ZONE $3)::int   AS hour,
       currency,
       sum(orders)::bigint                              AS orders,
       sum(revenue)::bigint                             AS revenue,
       sum(settled_revenue)::bigint                     AS settled_revenue,
       sum(settled)::bigint                             AS settled
  FROM order_rollups
 WHERE bucket >= $1 AND bucket < $2
 GROUP BY 1, 2, 3
HAVING sum(orders) <> 0
 ORDER BY 1, 2, 3
"""

# The primary key (bucket, currency) answers this with one index probe; rows cancelled back to zero don't count.
FIRST_SALE_BUCKET: Final = """
SELECT min(bucket) FROM order_rollups WHERE orders > 0
"""


@dataclass(frozen=True, slots=True)
class HourCount:
    """Completed orders and revenue (minor units) in one currency during one local hour of one local day."""

    day: dt.date
    hour: int
    currency: str
    orders: int
    revenue: int
    settled_revenue: int = 0  # the revenue of those whose settlement has been read (migration 0014)
    settled: int = 0  # what they settled for, in the store currency


async def hourly_history(db: Executor, *, start: dt.datetime, end: dt.datetime, tz: str) -> list[HourCount]:
    """Orders and revenue per local (day, hour, currency) in [start, end), both local midnights."""
    rows = await db.fetch(HOURLY_HISTORY, start, end, tz)
    return [HourCount(**dict(r)) for r in rows]


async def first_sale_bucket(db: Executor) -> dt.datetime | None:
    """The start of the earliest 15-minute bucket with a completed order, or None for a store without any."""
    value: dt.datetime | None = await db.fetchval(FIRST_SALE_BUCKET)
    return value
