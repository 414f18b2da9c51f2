"""Business time: how much of a span falls inside business hours on business days, in the store's zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from bot.config import HourWindow


def business_time_between(start: dt.datetime, end: dt.datetime, *, tz: ZoneInfo, hours: HourWindow,
                          days: frozenset[int] = frozenset(range(7))) -> dt.timedelta:
    """How much of [start, end) falls inside business hours on business days, day by day in the store's zone."""
    total = dt.timedelta()
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    day = start.astimezone(tz).date() - dt.timedelta(days=1)
    # Opening and closing in UTC: Python subtracts two datetimes sharing one tzinfo on the wall clock, which
    # would count a whole 23-hour spring-forward day as 24 hours.
    while (opening := dt.datetime.combine(day, hours.start, tzinfo=tz).astimezone(dt.UTC)) < end:
        if day.weekday() not in days:  # a closed day: none of its opening counts
            day += dt.timedelta(days=1)
            continue
        closing_day = day if hours.end > hours.start else day + dt.timedelta(days=1)
        closing = dt.datetime.combine(closing_day, hours.end, tzinfo=tz).astimezone(dt.UTC)
        overlap = min(closing, end) - max(opening, start)
        if overlap > dt.timedelta():
            total += overlap
        day += dt.timedelta(days=1)
    return total
