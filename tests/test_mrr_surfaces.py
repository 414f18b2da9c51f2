"""MRR where the owner reads it: /sales 30d, the morning report, the App Home and the JSON API."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.answers.gather import gather_health, gather_sales
from bot.blocks.mrr import WORD_JOINER
from bot.blocks.reports import report_message
from bot.home.render import render_home
from bot.reports.figures import MorningFigures
from bot.reports.reporter import Reporter
from bot.reports.schedule import ReportKind, slot_for
from bot.web.view import dashboard_view
from tests.blockkit import assert_valid_message, assert_valid_view
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack

NOW = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.UTC)
TOKEN = "mon-token-mrr-15-long-enough"
STORY = Path(__file__).parent / "fixtures" / "stripe" / "subscriptions" / "clover"
USD_LINE = "MRR $58.00* ▲ 205% vs 7 days ago · 1 subscriber"


def at(evt: dict[str, Any], when: dt.datetime, n: int) -> dict[str, Any]:
    """The event as if Stripe had sent it at `when`, with an id of its own."""
    evt = copy.deepcopy(evt)
    evt["id"], evt["created"] = f"evt_mrr_surface_{n}", int(when.timestamp())
    return evt


def euro_yearly(evt: dict[str, Any]) -> dict[str, Any]:
    """A second subscriber: €120.00 a year (€10.00 a month)."""
    evt = copy.deepcopy(evt)
    obj = evt["data"]["object"]
    obj["id"], obj["currency"] = "sub_1EuroYearly0001", "eur"
    price = obj["items"]["data"][0]["price"]
    price.update(currency="eur", unit_amount=12000, unit_amount_decimal="12000", nickname="Pro yearly")
    price["recurring"]["interval"] = "year"
    return evt


@pytest.fixture
async def shop(dsn: str, fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[Bot]:
    """A store with a USD subscriber who upgraded two days ago and a EUR yearly subscriber."""
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, MONITORING_TOKEN=TOKEN,
                         SALESPULSE_DATA_DIR=str(tmp_path)) as bot:
        await subscribe(bot)
        yield bot


@pytest.fixture
async def euro_shop(dsn: str, fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[Bot]:
    """The same subscribers in a store whose currency is EUR (STORE_CURRENCY)."""
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, MONITORING_TOKEN=TOKEN, STORE_CURRENCY="EUR",
                         SALESPULSE_DATA_DIR=str(tmp_path)) as bot:
        await subscribe(bot)
        yield bot


async def subscribe(bot: Bot) -> None:
    """A USD subscriber who upgraded two days ago and a EUR yearly subscriber."""
    created = json.loads((STORY / "1_created.json").read_text("utf-8"))
    upgraded = json.loads((STORY / "3_upgraded.json").read_text("utf-8"))
    for n, (evt, when) in enumerate([(created, NOW - dt.timedelta(days=10)), (upgraded, NOW - dt.timedelta(days=2)),
                                     (euro_yearly(created), NOW - dt.timedelta(days=20))]):
        resp = await bot.stripe(at(evt, when, n))
        assert resp.status == 200, await resp.text()


async def test_sales_30d_shows_mrr_its_week_change_and_movements(shop: Bot) -> None:
    """`/sales 30d`: MRR per currency against 7 days ago, subscribers, new, upgrades and churn over 30 days."""
    body = await shop.command("/sales", "30d")
    assert_valid_message(body)
    shown = json.dumps(body["blocks"], ensure_ascii=False)
    assert USD_LINE in shown
    assert f"30 days: new +{WORD_JOINER}$19.00 · upgrades +{WORD_JOINER}$39.00 · none churned" in shown
    assert "MRR €10.00* = 0% vs 7 days ago · 1 subscriber" in shown


async def test_json_api_has_a_subscriptions_key_and_keeps_the_others(shop: Bot) -> None:
    """GET /api/monitoring/sales: `subscriptions` in minor units, per currency; the guide's keys unchanged."""
    resp = await shop.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
    body = await resp.json()
    assert {"lastHour", "today", "hourlySales", "pendingCheckouts", "conversion"} <= set(body)
    subs = body["subscriptions"]
    assert (subs["currency"], subs["mrr"], subs["mrrWeekAgo"], subs["newMrr"], subs["expansionMrr"],
            subs["churnedMrr"], subs["active"]) == ("USD", 5800, 1900, 1900, 3900, 0, 2)
    assert subs["byCurrency"]["EUR"]["mrr"] == 1000 and subs["since"] == "2026-02-18T12:00:00Z"


async def test_the_morning_report_says_mrr_this_week(shop: Bot) -> None:
    """The morning report carries "MRR $58.00 ▲ 205% this week" (and the EUR line), valid Block Kit."""
    reporter = Reporter.from_deps(shop.deps)
    figures = await reporter.figures(slot_for(ReportKind.MORNING, NOW.date(), shop.deps.settings), now=NOW)
    assert isinstance(figures, MorningFigures)
    msg = report_message(figures, tz=shop.deps.settings.tz)
    assert_valid_message(msg)
    assert "MRR $58.00 ▲ 205% this week · MRR €10.00 = 0% this week" in msg.text
    assert "MRR $58.00 ▲ 205% this week" in json.dumps(msg.blocks, ensure_ascii=False)


async def test_the_app_home_shows_mrr(shop: Bot) -> None:
    """The App Home's sales part has the MRR section, and the view stays valid."""
    view = await render_home(shop.deps, buttons=True)
    assert_valid_view(view)
    assert USD_LINE in json.dumps(view["blocks"], ensure_ascii=False)


async def test_the_dashboard_has_an_mrr_card(shop: Bot) -> None:
    """The dashboard view's MRR card: both currencies, the week change and the 30 days' movements."""
    (today, hourly), health = await gather_sales(shop.deps), await gather_health(shop.deps)
    card = dashboard_view(today, hourly, health, tz=shop.deps.settings.tz)["subscriptions"]
    assert card == {"mrr": "$58.00 + €10.00", "detail": "▲ 205% (USD) vs 7 days ago · 2 subscribers · 30 days: "
                    f"USD: new +{WORD_JOINER}$19.00 · upgrades +{WORD_JOINER}$39.00 · none churned; "
                    f"EUR: new +{WORD_JOINER}€10.00 · none churned"}  # as /sales says, each currency named


async def test_a_store_without_subscriptions_shows_no_mrr(bot: Bot) -> None:
    """No subscription ever: /sales has no MRR section at all."""
    body = await bot.command("/sales", "30d")
    assert "MRR" not in json.dumps(body["blocks"], ensure_ascii=False)
    (today, hourly), health = await gather_sales(bot.deps), await gather_health(bot.deps)
    assert dashboard_view(today, hourly, health, tz=bot.deps.settings.tz)["subscriptions"] is None


async def test_with_a_store_currency_mrr_is_in_it_and_the_others_stay_apart(euro_shop: Bot) -> None:
    """STORE_CURRENCY=EUR: MRR leads with the EUR subscriptions; USD MRR is listed apart, never converted."""
    body = await euro_shop.command("/sales", "30d")
    assert_valid_message(body)
    shown = json.dumps(body["blocks"], ensure_ascii=False)
    assert shown.index("MRR €10.00*") < shown.index(USD_LINE)
    assert "MRR billed in other currencies is listed apart, never converted to EUR (no rate is guessed)" in shown
    resp = await euro_shop.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
    subs = (await resp.json())["subscriptions"]
    assert (subs["currency"], subs["store_currency"], subs["mrr"], subs["notConverted"]) == ("EUR", "EUR", 1000,
                                                                                              {"USD": 5800})
    assert subs["byCurrency"]["USD"]["mrr"] == 5800 and subs["active"] == 2
    reporter = Reporter.from_deps(euro_shop.deps)
    figures = await reporter.figures(slot_for(ReportKind.MORNING, NOW.date(), euro_shop.deps.settings), now=NOW)
    msg = report_message(figures, tz=euro_shop.deps.settings.tz)
    assert_valid_message(msg)
    assert "MRR €10.00 = 0% this week · MRR $58.00 ▲ 205% this week (not converted)" in msg.text
    (today, hourly), health = await gather_sales(euro_shop.deps), await gather_health(euro_shop.deps)
    card = dashboard_view(today, hourly, health, tz=euro_shop.deps.settings.tz)["subscriptions"]
    assert card is not None and card["mrr"] == "€10.00 · $58.00 not converted"


async def test_a_past_dates_mrr_movements_are_the_30_days_before_it(dsn: str, fake_slack: FakeSlack,
                                                                    tmp_path: Path) -> None:
    """`/sales <date>` gives MRR as that day ended, and its "30 days" movements are the 30 days up to then — not
    the 30 days before today, which miss a subscriber who came 50 days ago, three days before the date asked."""
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, SALESPULSE_DATA_DIR=str(tmp_path)) as bot:
        created = json.loads((STORY / "1_created.json").read_text("utf-8"))
        assert (await bot.stripe(at(created, NOW - dt.timedelta(days=50), 0))).status == 200
        body = await bot.command("/sales", (NOW - dt.timedelta(days=47)).date().isoformat())
    text = json.dumps(body["blocks"], ensure_ascii=False)
    mrr, moves = re.search(r"MRR (\$[\d,.]+)\* (\S+)", text), re.search(r"30 days: ([^\"]*)", text)
    assert mrr is not None and moves is not None, text
    assert mrr.group(2) == "new"  # no subscriber a week before that day
    assert f"new +{WORD_JOINER}{mrr.group(1)}" in moves.group(1), moves.group(1)
