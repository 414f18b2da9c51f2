"""Time-zone changes seen whole: a midnight that happens twice, an hour that repeats or never comes, a week that is
168 real hours, a business day that lasts 23 hours."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.alerts.rules import business_time_between
from bot.blocks.sales import trend_counts
from bot.config import parse_window
from bot.periods import parse_period
from bot.rhythm.load import load_rhythm
from bot.rhythm.model import hour_lengths
from queries import sales

NY = ZoneInfo("America/New_York")
HAVANA = ZoneInfo("America/Havana")  # falls back 01:00 → 00:00, so its midnight happens twice
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # half-hour changes
PER_HOUR = 6  # the steady store's orders in every real hour


async def completed(db: asyncpg.Connection, times: list[dt.datetime]) -> None:
    """One completed $10 order at each instant (the rollups follow by trigger)."""
    await db.executemany(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " VALUES ($1, 'completed', 1000, 'usd', $2, $2)", [(f"pi_{n}", t) for n, t in enumerate(times)])


def every(step: dt.timedelta, first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    """Instants from `first` up to `last` (excluded), `step` of real time apart."""
    times, t = [], first
    while t < last:
        times.append(t)
        t += step
    return times


def ny(day: dt.date, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A New York wall-clock time on `day` (the first, for a repeated one), as UTC."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=NY).astimezone(dt.UTC)


# /sales 7d and 30d: one bar per local day


@pytest.mark.parametrize("key", ["7d", "30d"])
async def test_the_daily_trend_counts_the_day_a_zone_falls_back_at_midnight(db: asyncpg.Connection,
                                                                          key: str) -> None:
    """Havana's 1 November starts twice; PostgreSQL names its bucket by the second midnight, the bars by the first,
    and that day's sales still land on its bar (none are lost)."""
    now = dt.datetime(2026, 11, 1, 15, 0, tzinfo=HAVANA).astimezone(dt.UTC)  # Sunday afternoon, after the change
    times = every(dt.timedelta(hours=2), now - dt.timedelta(hours=7 * 24 - 1), now)
    await completed(db, times)
    period = parse_period(key, now=now, tz=HAVANA)
    points = await sales.trend(db, start=period.start, end=period.end, bucket=period.bucket.value, tz=HAVANA.key)
    counts = trend_counts(points, period, HAVANA)
    sunday = [t for t in times if t.astimezone(HAVANA).date() == dt.date(2026, 11, 1)]
    assert len(sunday) == 8
    assert counts[-1] == len(sunday), counts
    assert sum(counts) == len(times)


# The rhythm: expected orders per local weekday and hour


def test_a_local_hour_lasts_as_long_as_the_clocks_say() -> None:
    """The repeated hour lasts two, the skipped one none, half-hour changes a half; every day adds up to its length."""
    assert hour_lengths(dt.date(2026, 11, 1), NY)[:3] == [1, 2, 1]
    assert hour_lengths(dt.date(2026, 3, 8), NY)[:4] == [1, 1, 0, 1]
    assert hour_lengths(dt.date(2026, 11, 1), HAVANA)[:2] == [2, 1]
    assert hour_lengths(dt.date(2026, 10, 4), LORD_HOWE)[:3] == [1, 1, 0.5]  # 02:00 → 02:30
    assert hour_lengths(dt.date(2026, 4, 5), LORD_HOWE)[:3] == [1, 1.5, 1]  # 02:00 → 01:30
    assert sum(hour_lengths(dt.date(2026, 3, 8), NY)) == 23
    assert hour_lengths(dt.date(2026, 3, 8), None) == [1] * 24


@pytest.mark.parametrize("today,hour", [(dt.date(2026, 11, 15), 1),   # two Sundays after fall-back (1 Nov)
                                        (dt.date(2026, 3, 22), 2)])   # two Sundays after spring-forward (8 Mar)
async def test_a_steady_store_expects_the_same_rate_in_the_hour_dst_repeats_or_skips(
        db: asyncpg.Connection, today: dt.date, hour: int) -> None:
    """Six orders every real hour for nine weeks: Sunday's repeated 01:00 (two hours of sales) and skipped 02:00
    (none) expect six an hour like every other hour, not 6.60 and 5.41."""
    now = ny(today, 12)
    await completed(db, every(dt.timedelta(hours=1) / PER_HOUR, ny(today - dt.timedelta(weeks=9)), now))
    rhythm = await load_rhythm(db, now=now, tz=NY)
    assert rhythm is not None and today.weekday() == 6  # a Sunday, as the DST days were
    assert rhythm.rates[6][5].orders == pytest.approx(PER_HOUR, rel=0.01)
    assert rhythm.rates[6][hour].orders == pytest.approx(PER_HOUR, rel=0.01), f"Sunday {hour:02d}:00"


# /sales rolling periods against a week earlier


async def test_7d_a_week_earlier_does_not_overlap_the_current_week(db: asyncpg.Connection) -> None:
    """Across the spring-forward Sunday, a sale just inside the last 7 days is not counted a week earlier too."""
    now = ny(dt.date(2026, 3, 10), 12)  # Tuesday after the change: the 7 days start Tuesday 3 March 11:00 EST
    period = parse_period("7d", now=now, tz=NY)
    before = period.week_earlier(NY)
    await completed(db, [ny(dt.date(2026, 3, 3), 11, 30)])
    current = sum(t.orders for t in await sales.window_totals(db, start=period.start, end=period.end))
    earlier = sum(t.orders for t in await sales.window_totals(db, start=before.start, end=before.end))
    assert (current, earlier) == (1, 0), (before.start, before.end, period.start)
    assert before.end == period.start


@pytest.mark.parametrize("key", ["1h", "24h", "7d", "30d"])
@pytest.mark.parametrize("now", [ny(dt.date(2026, 3, 8), 12), ny(dt.date(2026, 3, 8), 3, 30),
                                 ny(dt.date(2026, 11, 1), 12), ny(dt.date(2026, 11, 7), 9)])
def test_a_rolling_period_a_week_earlier_is_as_long_and_168_hours_before(key: str, now: dt.datetime) -> None:
    """1h, 24h, 7d and 30d are real time, so their week earlier is as long, exactly 7 × 24 h before."""
    period = parse_period(key, now=now, tz=NY)
    before = period.week_earlier(NY)
    assert before.end - before.start == period.end - period.start
    assert period.start - before.start == dt.timedelta(hours=168)


@pytest.mark.parametrize("key,now,hours", [("today", ny(dt.date(2026, 3, 15), 12), 11),
                                           ("yesterday", ny(dt.date(2026, 3, 16), 12), 23),
                                           ("2026-03-15", ny(dt.date(2026, 3, 16), 12), 23)])
def test_a_calendar_period_a_week_earlier_keeps_the_local_clock(key: str, now: dt.datetime, hours: int) -> None:
    """today, yesterday and a date compare with the same local clock times a week before: from the spring-forward
    Sunday's midnight, however many real hours that makes."""
    period = parse_period(key, now=now, tz=NY)
    before = period.week_earlier(NY)
    assert before.start == ny(dt.date(2026, 3, 8))
    assert before.end.astimezone(NY).time() == period.end.astimezone(NY).time()
    assert before.end - before.start == dt.timedelta(hours=hours)


@pytest.mark.parametrize("key", ["yesterday", "2026-04-24"])
def test_a_day_that_skips_midnight_compares_with_the_whole_day_a_week_earlier(key: str) -> None:
    """Cairo's clocks skip 00:00-01:00 on Friday 24 April 2026, so that day starts at 01:00: the Friday before
    still starts at 00:00, and its first hour is in the comparison (the same clock time would leave it out)."""
    cairo = ZoneInfo("Africa/Cairo")
    period = parse_period(key, now=dt.datetime(2026, 4, 25, 12, tzinfo=cairo), tz=cairo)
    assert period.start.astimezone(cairo).time() == dt.time(1)
    before = period.week_earlier(cairo)
    assert before.start == dt.datetime(2026, 4, 17, tzinfo=cairo)
    assert before.end == dt.datetime(2026, 4, 18, tzinfo=cairo)


# Business time for the fixed no-sales rules


@pytest.mark.parametrize("day,real", [(dt.date(2026, 3, 8), dt.timedelta(hours=22, minutes=59)),
                                      (dt.date(2026, 11, 1), dt.timedelta(hours=24, minutes=59))])
def test_a_whole_business_day_across_a_dst_change_counts_its_real_hours(day: dt.date, real: dt.timedelta) -> None:
    """A store open 00:00-23:59: the spring-forward Sunday gives 22 h 59 min of business time, the fall-back one
    24 h 59 min, as the clocks really ran."""
    start = ny(day - dt.timedelta(days=1), 23, 59)  # the day before, as it closes
    end = ny(day + dt.timedelta(days=1))  # the next midnight
    assert business_time_between(start, end, tz=NY, hours=parse_window("00:00-23:59")) == real
