"""The rhythm and today's pace read from the database: the rollups of the last weeks, today's totals."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from bot.currency import PER_CURRENCY, CurrencyChoice, store_totals
from bot.periods import local_midnight
from bot.rhythm.model import DEFAULT_PARAMS, Rhythm, RhythmParams, build
from bot.rhythm.pace import Pace, project
from queries import rhythm as q
from queries import sales, settlements
from queries.executor import Executor

_Key = tuple[dt.date, int, str, RhythmParams, str | None]


@dataclass(slots=True)
class RhythmCache:
    """The rhythm built at most once per local hour, zone and parameters.

    The model reads only whole days before today, so it cannot change within a day except when history is
    backfilled; rebuilding it on every /sales took ~60 ms of Python at 10 M orders, more than the rest of the
    answer. An hour bounds how long a backfill goes unseen.
    """

    _key: _Key | None = None
    _rhythm: Rhythm | None = None
    hits: int = field(default=0)

    async def get(self, db: Executor, *, now: dt.datetime, tz: ZoneInfo, params: RhythmParams = DEFAULT_PARAMS,
                  store_currency: str | None = None) -> Rhythm | None:
        """The rhythm in force at `now`, from the cache when it was built this local hour."""
        local = now.astimezone(tz)
        key = (local.date(), local.hour, tz.key, params, store_currency)
        if key == self._key:
            self.hits += 1
            return self._rhythm
        rhythm = await load_rhythm(db, now=now, tz=tz, params=params, store_currency=store_currency)
        self._key, self._rhythm = key, rhythm
        return rhythm


@dataclass(frozen=True, slots=True)
class RhythmSource:
    """Where a caller gets the rhythm: its cache and the [rhythm] parameters in force."""

    cache: RhythmCache
    params: RhythmParams = DEFAULT_PARAMS


async def load_rhythm(db: Executor, *, now: dt.datetime, tz: ZoneInfo, params: RhythmParams = DEFAULT_PARAMS,
                      store_currency: str | None = None) -> Rhythm | None:
    """The store's rhythm from the whole local days before today (revenue in `store_currency` when there is one),
    or None without enough history."""
    today = now.astimezone(tz).date()
    first = await q.first_sale_bucket(db)
    if first is None:
        return None
    start = local_midnight(today - dt.timedelta(weeks=params.weeks), tz)
    counts = await q.hourly_history(db, start=start, end=local_midnight(today, tz), tz=tz.key)
    return build(counts, today=today, first_day=first.astimezone(tz).date(), params=params,
                 store_currency=store_currency, tz=tz)


async def pace_today(db: Executor, *, now: dt.datetime, tz: ZoneInfo, source: RhythmSource | None = None,
                     currency: CurrencyChoice = PER_CURRENCY) -> Pace | None:
    """Today's pace, or None while the store has no rhythm. With a store currency its revenue is today's gross
    in it, the figure /sales shows beside it, against usual days counted the same way."""
    store = await currency.read(db)
    if source is None:
        rhythm = await load_rhythm(db, now=now, tz=tz, store_currency=store)
    else:
        rhythm = await source.cache.get(db, now=now, tz=tz, params=source.params, store_currency=store)
    if rhythm is None:
        return None
    start = local_midnight(now.astimezone(tz).date(), tz)
    if store is not None:
        today = store_totals(await settlements.settled_totals(db, start=start, end=now), store)
        return project(rhythm, orders=today.orders, revenue=today.gross, now=now, tz=tz)
    totals = await sales.window_totals(db, start=start, end=now)
    revenue = sum(t.revenue for t in totals if t.currency == rhythm.currency)
    return project(rhythm, orders=sum(t.orders for t in totals), revenue=revenue, now=now, tz=tz,
                   one_currency_of_several=any(t.currency != rhythm.currency for t in totals))
