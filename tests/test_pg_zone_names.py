"""Zone names PostgreSQL reads otherwise than Python: STORE_TIMEZONE=CET (EET, MET, WET…) is an IANA zone with
summer time to zoneinfo but a fixed-offset abbreviation to PostgreSQL (pg_timezone_abbrevs: CET is +01:00 all
year), so in summer the SQL buckets and Python's local cuts disagreed by an hour. Such names are refused."""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo, available_timezones

import asyncpg
import pytest

from bot.blocks.sales import trend_counts
from bot.config_values import ABBREVIATION_ZONES
from bot.periods import parse_period
from bot.rhythm.judge import StoppedParams, stopped
from bot.rhythm.load import load_rhythm
from bot.settings.live import stored_over
from bot.settings.values import zone
from queries import sales
from queries import settings as settings_q
from tests.conftest import make_settings

SUMMER, WINTER = dt.datetime(2026, 7, 8, 12, tzinfo=dt.UTC), dt.datetime(2026, 1, 8, 12, tzinfo=dt.UTC)


async def _orders(db: asyncpg.Connection, times: list[dt.datetime]) -> None:
    """Completed orders at `times`."""
    await db.executemany(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " VALUES ($1, 'completed', 2500, 'eur', $2, $2)", [(f"pi_{n}", t) for n, t in enumerate(times)])


def _accepted(name: str) -> bool:
    """Whether the Settings view takes `name` as the store's zone."""
    try:
        zone(name)
    except ValueError:
        return False
    return True


async def test_every_zone_the_bot_accepts_is_read_alike_by_postgresql(db: asyncpg.Connection) -> None:
    """For each zone the Settings view (and so STORE_TIMEZONE) accepts, PostgreSQL's AT TIME ZONE gives the same
    wall-clock time as zoneinfo, in winter and in summer: no zone it reads as an abbreviation gets through."""
    names = sorted(n for n in available_timezones() if _accepted(n))
    assert "Europe/Paris" in names and "CET" not in names
    for at in (SUMMER, WINTER):
        rows = await db.fetch("SELECT n, $1::timestamptz AT TIME ZONE n AS local FROM unnest($2::text[]) AS n",
                              at, names)
        differ = [(r["n"], r["local"]) for r in rows
                  if r["local"] != at.astimezone(ZoneInfo(r["n"])).replace(tzinfo=None)]
        assert differ == []


@pytest.mark.parametrize("name", sorted(ABBREVIATION_ZONES))
def test_the_settings_view_refuses_a_zone_postgresql_reads_as_an_abbreviation(name: str) -> None:
    """zone() refuses CET and the like with a message (within the view's 150 characters) naming a city zone."""
    with pytest.raises(ValueError, match=f"use a city zone such as {ABBREVIATION_ZONES[name]}") as info:
        zone(name)
    assert len(str(info.value)) <= 150
    assert zone(f" {ABBREVIATION_ZONES[name]} ") == ABBREVIATION_ZONES[name]


async def test_a_stored_abbreviation_zone_is_skipped_with_a_warning(pool: asyncpg.Pool,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A zone saved from Slack before the refusal (CET) no longer loads: the environment's zone stands, with a
    warning, and the bot keeps running."""
    await settings_q.put(pool, key="STORE_TIMEZONE", value="CET", user_id="U0ADMIN", at=SUMMER)
    await settings_q.put(pool, key="BUSINESS_HOURS", value="08:00-20:00", user_id="U0ADMIN", at=SUMMER)
    env = make_settings(STORE_TIMEZONE="Europe/Paris")
    with caplog.at_level(logging.WARNING, logger="bot.settings.values"):
        settings = await stored_over(pool, env)
    assert settings.store_timezone == "Europe/Paris" and str(settings.business_hours) == "08:00-20:00"
    assert "ignoring the stored setting STORE_TIMEZONE" in caplog.text and "Europe/Paris" in caplog.text


@pytest.mark.parametrize("name", ["CET", "EET", "WET"])
async def test_the_suggested_city_zone_counts_a_summer_week_in_its_daily_trend(db: asyncpg.Connection,
                                                                               name: str) -> None:
    """/sales 7d in July with the city zone suggested for CET, EET or WET: the daily sparkline adds up to the week's
    orders (with CET itself, PostgreSQL's buckets fell an hour off Python's and it showed none)."""
    city = ABBREVIATION_ZONES[name]
    tz = ZoneInfo(city)
    now = dt.datetime(2026, 7, 8, 15, 0, tzinfo=tz).astimezone(dt.UTC)
    await _orders(db, [now - dt.timedelta(hours=h) for h in range(1, 7 * 24, 3)])  # one every 3 h all week
    period = parse_period("7d", now=now, tz=tz)
    points = await sales.trend(db, start=period.start, end=period.end, bucket=period.bucket.value, tz=city)
    total = sum(t.orders for t in await sales.window_totals(db, start=period.start, end=period.end))
    assert total == 56 and sum(trend_counts(points, period, tz)) == total


async def test_a_summer_rhythm_in_the_suggested_zone_follows_the_wall_clock(db: asyncpg.Connection) -> None:
    """A store selling 12 orders every evening 20:00-21:00 local (Europe/Paris, suggested for CET) for three weeks:
    its rhythm puts them at 20:00, and no "sales stopped" fires at 19:50, before the evening's sales begin."""
    tz = ZoneInfo(ABBREVIATION_ZONES["CET"])
    today = dt.date(2026, 7, 15)
    times = [dt.datetime.combine(today - dt.timedelta(days=d), dt.time(20, 2 + 5 * i), tzinfo=tz).astimezone(dt.UTC)
             for d in range(1, 22) for i in range(12)]
    await _orders(db, times)
    now = dt.datetime.combine(today, dt.time(19, 50), tzinfo=tz).astimezone(dt.UTC)
    rhythm = await load_rhythm(db, now=now, tz=tz)
    assert rhythm is not None
    verdict = stopped(rhythm, StoppedParams(), last_sale=max(times), now=now, tz=tz)
    assert verdict is None, verdict.summary
    evening, before = (dt.datetime.combine(today, t, tzinfo=tz) for t in (dt.time(20, 30), dt.time(19, 30)))
    assert rhythm.rate_at(evening, tz).orders > rhythm.rate_at(before, tz).orders
