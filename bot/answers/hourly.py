"""The last 24 hours by local hour, as the JSON API's `hourlySales` and the dashboard's chart show them: per
currency always, and in the store currency when one applies (settled amounts, from the same cover as /sales)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.currency import StoreTotals, store_series
from queries import sales, settlements
from queries.executor import Executor
from queries.sales import TrendPoint

DAY_OF_HOURS = dt.timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Hourly:
    """Each hour's completed orders per currency, and (with a store currency) the hour in it."""

    points: list[TrendPoint]
    store: dict[dt.datetime, StoreTotals] | None = None  # by hour start; hours with neither orders nor fees absent
    account: str | None = None  # without a store currency, the Stripe account's as last read (a key since removed)


async def last_24_hours(db: Executor, *, now: dt.datetime, tz: ZoneInfo, store: str | None,
                        with_fees: bool) -> Hourly:
    """The last 24 hours by hour; `store` the store currency, None for per-currency points only."""
    start = now - DAY_OF_HOURS
    if store is None:
        return Hourly(await sales.trend(db, start=start, end=now, bucket="hour", tz=tz.key),
                      account=await settlements.account_currency(db))
    points = await settlements.settled_trend(db, start=start, end=now, bucket="hour", tz=tz.key)
    return Hourly([TrendPoint(p.bucket, p.total.currency, p.total.orders, p.total.revenue)
                   for p in points if p.total.orders],
                  store_series(points, store, with_fees=with_fees))
