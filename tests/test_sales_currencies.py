"""/sales without a store currency: each currency on its own, never summed — and a currency that sold a week
earlier but not yet in this period shows as a 0 in that currency with its ▼ 100%, not as "$0.00" or not at all."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

from bot.answers.json_views import sales_json
from bot.answers.snapshots import SalesSnapshot
from bot.blocks.sales import sales_message
from bot.periods import parse_period
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
