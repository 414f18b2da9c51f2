"""The rhythm and today's pace read from the database: the rollups of the last weeks, today's totals."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from bot.periods import local_midnight
from bot.rhythm.model import DEFAULT_PARAMS, Rhythm, RhythmParams, build
from bot.rhythm.pace import Pace, project
from queries import rhythm as q
from queries import sales
from queries.executor import Executor


async def load_rhythm(db: Executor, *, now: dt.datetime, tz: ZoneInfo,
                      params: RhythmParams = DEFAULT_PARAMS) -> Rhythm | None:
    """The store's rhythm from the whole local days before today, or None without enough history."""
    today = now.astimezone(tz).date()
    first = await q.first_sale_bucket(db)
    if first is None:
        return None
    start = local_midnight(today - dt.timedelta(weeks=params.weeks), tz)
    counts = await q.hourly_history(db, start=start, end=local_midnight(today, tz), tz=tz.key)
    return build(counts, today=today, first_day=first.astimezone(tz).date(), params=params)


async def pace_today(db: Executor, *, now: dt.datetime, tz: ZoneInfo,
                     params: RhythmParams = DEFAULT_PARAMS) -> Pace | None:
    """Today's pace, or None while the store has no rhythm."""
    rhythm = await load_rhythm(db, now=now, tz=tz, params=params)
    if rhythm is None:
        return None
    totals = await sales.window_totals(db, start=local_midnight(now.astimezone(tz).date(), tz), end=now)
    revenue = sum(t.revenue for t in totals if t.currency == rhythm.currency)
    return project(rhythm, orders=sum(t.orders for t in totals), revenue=revenue, now=now, tz=tz)
