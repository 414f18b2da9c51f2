"""Without a store currency (the default: no STORE_CURRENCY, no STRIPE_API_KEY) the JSON API's `today.revenue`, the
dashboard chart and the report chart show "the day's largest currency by revenue" — but they rank raw minor units
across currencies, so ₩50,000 (about $36) outranks $400.00 and a mostly-dollar store's figures flip to won."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from bot.answers.hourly import Hourly
from bot.answers.json_views import sales_json
from bot.answers.snapshots import SalesSnapshot
from bot.periods import parse_period
from bot.reports.figures import charted_currency
from queries.sales import Conversion, CurrencyTotal, TrendPoint

TZ = ZoneInfo("UTC")
NOW = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)
TODAY = [CurrencyTotal("USD", 8, 40000), CurrencyTotal("KRW", 1, 50000)]  # $400.00 and ₩50,000


def snapshot() -> SalesSnapshot:
    return SalesSnapshot(period=parse_period("", now=NOW, tz=TZ), now=NOW, last_hour=[], last_order_at=NOW,
                         totals=TODAY, previous=[], customers=9, refunds=[], trend=[], pending_checkouts=0,
                         conversion=Conversion(0, 0))


def test_json_today_is_in_the_currency_that_earned_most() -> None:
    today = sales_json(snapshot(), None)["today"]
    assert today["currency"] == "USD", today  # $400.00 earned far more than ₩50,000


def test_report_chart_plots_the_currency_that_earned_most() -> None:
    at = NOW.replace(hour=10)
    points = [TrendPoint(at, "USD", 8, 40000), TrendPoint(at, "KRW", 1, 50000)]
    assert charted_currency(points, [])[0] == "USD"


def test_the_account_currency_wins_when_it_was_read() -> None:
    # A key since removed left the account's currency behind: it stays the main one, however the day's orders fall.
    today = sales_json(snapshot(), Hourly(points=[], account="KRW"))["today"]
    assert today["currency"] == "KRW" and today["revenue"] == 50000, today
    assert charted_currency([TrendPoint(NOW, "USD", 8, 40000)], [], "KRW") == ("KRW", ("USD",))
