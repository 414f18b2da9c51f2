"""/sales without a store currency: each currency on its own, never summed — and a currency that sold a week
earlier but not yet in this period shows as a 0 in that currency with its ▼ 100%, not as "$0.00" or not at all."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.answers.json_views import sales_json
from bot.answers.snapshots import SalesSnapshot
from bot.blocks.sales import bucket_starts, sales_message
from bot.periods import local_midnight, parse_period
from queries.sales import Conversion, CurrencyTotal
from tests.blockkit import assert_valid_message

TZ = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


def snapshot(totals: list[CurrencyTotal], previous: list[CurrencyTotal]) -> SalesSnapshot:
    return SalesSnapshot(period=parse_period("", now=NOW, tz=TZ), now=NOW, last_hour=[],
                         last_order_at=NOW - dt.timedelta(hours=14), totals=totals, previous=previous, customers=0,
                         refunds=[], trend=[], pending_checkouts=0, conversion=Conversion(0, 0))


def text(s: SalesSnapshot) -> str:
    msg = sales_message(s, tz=TZ)
    assert_valid_message({"text": msg.text, "blocks": msg.blocks})
    return json.dumps(msg.blocks, ensure_ascii=False) + msg.text


def test_a_euro_stores_quiet_morning_is_in_euros_and_down_on_last_week() -> None:
    shown = text(snapshot([], [CurrencyTotal("EUR", 3, 7000)]))
    assert "$" not in shown, shown  # the store never sold in dollars
    assert "€0.00  ▼ 100%" in shown.split("Revenue")[1], shown
    assert shown.endswith("Today (Fri 20 Nov): 0 orders") and "Last hour:*\\n0 orders\"" in shown, shown
    assert sales_json(snapshot([], [CurrencyTotal("EUR", 3, 7000)]), None)["today"]["currency"] == "EUR"


def test_a_currency_that_sold_last_week_and_not_now_shows_its_drop() -> None:
    week_earlier = [CurrencyTotal("USD", 2, 4000), CurrencyTotal("EUR", 1, 500)]
    shown = text(snapshot([CurrencyTotal("USD", 2, 4000)], week_earlier))
    assert "• *USD* 2 orders · $40.00 (= 0%) · avg $20.00\\n• *EUR* 0 orders · €0.00 (▼ 100%) · avg —" in shown, shown


def test_nothing_sold_in_either_week_shows_no_made_up_currency() -> None:
    shown = text(snapshot([], []))
    assert "$" not in shown and "€" not in shown and "Revenue:*\\nnone" in shown, shown



@pytest.mark.parametrize(("zone", "day"), [("Australia/Lord_Howe", dt.date(2026, 4, 5)),  # back 30 min
                                           ("Australia/Lord_Howe", dt.date(2026, 10, 4)),  # forward 30 min
                                           ("America/New_York", dt.date(2026, 11, 1)),  # back an hour
                                           ("Asia/Kolkata", dt.date(2026, 11, 1))])  # +05:30 all year
async def test_every_hour_bucket_is_where_postgresql_puts_it(pool: asyncpg.Pool, zone: str, day: dt.date) -> None:
    """The trend's hour buckets (/sales, App Home, the dashboard) are the instants PostgreSQL's date_trunc gives in
    the store's zone, on DST days too: after Lord Howe's half-hour change local hours start at :30 UTC."""
    tz = ZoneInfo(zone)
    period = parse_period(day.isoformat(), now=local_midnight(day + dt.timedelta(days=2), tz), tz=tz)
    starts = set(bucket_starts(period, tz))
    instants = [period.start + dt.timedelta(minutes=10 * i)
                for i in range(int((period.end - period.start) / dt.timedelta(minutes=10)))]
    truncated = await pool.fetch("SELECT t, date_trunc('hour', t, $2) AS bucket FROM unnest($1::timestamptz[]) AS t",
                                 instants, zone)
    assert {r["bucket"] for r in truncated} == starts, sorted(starts ^ {r["bucket"] for r in truncated})


@pytest.mark.parametrize("zone", ["America/Santiago", "America/New_York", "Australia/Lord_Howe"])
async def test_every_day_bucket_is_where_postgresql_puts_it(pool: asyncpg.Pool, zone: str) -> None:
    """The same for `/sales 30d`'s days, over a year's DST changes: Chile's clocks jump at midnight, so some days
    start at 01:00."""
    tz = ZoneInfo(zone)
    for month in range(1, 13):
        period = parse_period("30d", now=dt.datetime(2026, month, 15, 12, tzinfo=dt.UTC), tz=tz)
        starts = set(bucket_starts(period, tz))
        instants = [period.start + dt.timedelta(hours=i) for i in range(int((period.end - period.start).total_seconds()
                                                                            // 3600))]
        truncated = {r["b"] for r in await pool.fetch(
            "SELECT date_trunc('day', t, $2) AS b FROM unnest($1::timestamptz[]) AS t", instants, zone)}
        assert truncated <= starts, (month, sorted(truncated - starts))
