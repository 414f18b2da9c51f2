"""Reporting periods in the store's time zone: what "today", "yesterday" and "7d" mean, and a week earlier."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo


class Bucket(StrEnum):
    """The trend's resolution."""

    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open window [start, end) with the label people read and the trend's bucket size."""

    key: str
    label: str
    start: dt.datetime
    end: dt.datetime
    bucket: Bucket
    # A window of real time ending now (1h, 24h, 7d, 30d) rather than of local calendar days.
    rolling: bool = False

    def week_earlier(self, tz: ZoneInfo) -> Period:
        """The window a week before: a rolling one exactly 7 × 24 h earlier (as long as itself, and never
        overlapping it across DST), a calendar one at the same local clock times ('last Saturday 00:00-14:05')."""
        def shift(t: dt.datetime) -> dt.datetime:
            if self.rolling:
                return t.astimezone(dt.UTC) - WEEK  # in UTC: aware arithmetic in a zone is wall-clock
            local = t.astimezone(tz)
            if t == local_midnight(local.date(), tz):  # a day's start, 01:00 where the clocks skip midnight
                return local_midnight(local.date() - WEEK, tz)
            return (local.replace(tzinfo=None) - WEEK).replace(tzinfo=tz).astimezone(dt.UTC)

        return Period(self.key, f"{self.label}, a week earlier", shift(self.start), shift(self.end), self.bucket,
                      self.rolling)


class UnknownPeriod(ValueError):
    """The argument is not one of PERIODS."""


# The earliest date a period may name: no payment is older, and a week before year 1 is not a datetime.
EARLIEST: dt.date = dt.date(1970, 1, 1)
# The arguments /sales accepts, in the order the usage text lists them; "" means today.
PERIODS: tuple[str, ...] = ("today", "1h", "24h", "yesterday", "7d", "30d", "YYYY-MM-DD")
WEEK: dt.timedelta = dt.timedelta(days=7)


def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The instant a local calendar day starts, in UTC."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


def parse_period(arg: str, *, now: dt.datetime, tz: ZoneInfo) -> Period:
    """Turn a command argument into a Period ending now (or at local midnight for 'yesterday')."""
    key = arg.strip().lower() or "today"
    today = now.astimezone(tz).date()
    match key:
        case "today":
            return Period(key, f"Today ({today:%a %d %b})", local_midnight(today, tz), now, Bucket.HOUR)
        case "1h":
            return Period(key, "Last hour", now - dt.timedelta(hours=1), now, Bucket.HOUR, rolling=True)
        case "24h":
            return Period(key, "Last 24 hours", now - dt.timedelta(hours=24), now, Bucket.HOUR, rolling=True)
        case "yesterday":
            day = today - dt.timedelta(days=1)
            return Period(key, f"Yesterday ({day:%a %d %b})", local_midnight(day, tz),
                          local_midnight(today, tz), Bucket.HOUR)
        case "7d" | "30d":
            days = int(key[:-1])
            return Period(key, f"Last {days} days", now - dt.timedelta(days=days), now, Bucket.DAY,
                          rolling=True)
    return _date_period(key, arg, now=now, today=today, tz=tz)


def _date_period(key: str, arg: str, *, now: dt.datetime, today: dt.date, tz: ZoneInfo) -> Period:
    """`2026-11-27`: that local calendar day (until now, when it is today)."""
    try:
        day = dt.date.fromisoformat(key)
    except ValueError:
        raise UnknownPeriod(f"unknown period {arg.strip()!r}") from None
    if len(key) != 10:
        raise UnknownPeriod(f"unknown period {arg.strip()!r}")
    if day > today:
        raise UnknownPeriod(f"{key} is in the future")
    if day < EARLIEST:
        raise UnknownPeriod(f"{key} is before {EARLIEST}")
    end = now if day == today else local_midnight(day + dt.timedelta(days=1), tz)
    return Period(key, f"{day:%a %d %b %Y}", local_midnight(day, tz), end, Bucket.HOUR)
