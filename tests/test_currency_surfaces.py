"""The store currency beyond today's totals: the JSON API's last hour and hours, the dashboard's chart, the
report's chart and its summary lines — settled amounts from a fake Stripe, orders not converted yet kept apart."""

from __future__ import annotations

import datetime as dt

from bot.answers.gather import gather_health, gather_sales
from bot.blocks.message import Message
from bot.blocks.reports import report_message
from bot.currency import CurrencyChoice
from bot.home.render import render_home
from bot.reports.chart import chart_note, chart_title, render_chart
from bot.reports.figures import EveningFigures, evening, hourly_revenue, whole_day
from bot.reports.schedule import ReportKind, Slot
from bot.stripe.settle_job import SettlementJob
from bot.web.view import dashboard_view
from tests.blockkit import assert_valid_message, assert_valid_view
from tests.conftest import Bot, paid_checkout
from tests.settled_store import SALES, TOKEN, sell

GROSS, FEES = sum(s[2] for s in SALES.values()), sum(s[3] for s in SALES.values())  # 19731, 692


pytest_plugins = ["tests.settled_store"]  # the `stripe_api` and `store` fixtures


async def api_sales(bot: Bot) -> dict:  # type: ignore[type-arg]  # the JSON body, as the guide's dashboard reads it
    """GET /api/monitoring/sales."""
    resp = await bot.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200
    body: dict = await resp.json()  # type: ignore[type-arg]  # JSON
    return body


async def test_last_hour_and_hourly_sales_are_in_the_store_currency(store: Bot) -> None:
    """lastHour and every hourlySales entry give revenue in USD: face value until settled, then what settled."""
    job = SettlementJob(store.deps)
    assert await job.tick() == 0  # reads the account's currency: USD
    await sell(store, 1, 2, 3, 4)
    before = await api_sales(store)
    hour = before["lastHour"]
    assert (hour["order_count"], hour["revenue"], hour["currency"], hour["store_currency"]) == (4, 3000, "USD", "USD")
    assert hour["not_converted"] == {"EUR": 4500, "GBP": 7800, "JPY": 2980} and hour["fees_pending_orders"] == 4
    assert hour["revenue_by_currency"] == {"USD": 3000, "EUR": 4500, "JPY": 2980, "GBP": 7800}
    assert sum(h["revenue"] for h in before["hourlySales"]) == 3000
    assert await job.tick() == 4
    after = await api_sales(store)
    hour = after["lastHour"]
    assert (hour["revenue"], hour["revenue_net"], hour["fees"], hour["not_converted"]) == (GROSS, GROSS - FEES,
                                                                                           FEES, {})
    hours = after["hourlySales"]
    assert {h["currency"] for h in hours} == {"USD"} and sum(h["order_count"] for h in hours) == 4
    assert sum(h["revenue"] for h in hours) == GROSS and sum(h["revenue_net"] for h in hours) == GROSS - FEES
    assert sum(sum(h["revenue_by_currency"].values()) for h in hours) == 3000 + 4500 + 2980 + 7800


async def test_the_dashboard_charts_the_store_currency(store: Bot) -> None:
    """The dashboard's bars are in USD; orders not converted yet are named under the chart, then charted."""
    job = SettlementJob(store.deps)
    await job.tick()
    await sell(store, 1, 3)
    sales, hourly = await gather_sales(store.deps)
    view = dashboard_view(sales, hourly, await gather_health(store.deps), tz=store.deps.settings.tz)
    chart = view["chart"]
    assert chart["currency"] == "USD" and chart["total"] == "$30.00"
    assert chart["note"] == "also ¥2,980 not converted yet, not charted"
    assert view["figures"]["last_hour_revenue"] == "$30.00 + ¥2,980 not converted yet"
    await job.tick()
    sales, hourly = await gather_sales(store.deps)
    chart = dashboard_view(sales, hourly, await gather_health(store.deps), tz=store.deps.settings.tz)["chart"]
    assert (chart["total"], chart["note"]) == ("$50.10", "")
    assert sum(b["revenue"] for b in chart["bars"]) == 3000 + 2010 and sum(b["orders"] for b in chart["bars"]) == 2


async def test_the_report_chart_plots_the_store_currency(store: Bot) -> None:
    """The report's hourly series is every order in USD once settled; before, the others are left out and said."""
    job = SettlementJob(store.deps)
    await job.tick()
    at = await sell(store, 1, 2, 3, 4)
    tz = store.deps.settings.tz
    day = whole_day(at.astimezone(tz).date(), tz)
    week = whole_day(at.astimezone(tz).date() - dt.timedelta(days=7), tz)
    choice = CurrencyChoice.of(store.deps.settings)
    async with store.deps.pool.acquire() as conn:
        waiting = await hourly_revenue(conn, current=day, previous=week, tz=tz, store=choice)
    assert waiting.store and sum(waiting.current) == 3000 and chart_title(waiting) == "Revenue by hour · all in USD"
    assert [(t.currency, t.revenue) for t in waiting.pending] == [("GBP", 7800), ("EUR", 4500), ("JPY", 2980)]
    assert chart_note(waiting) == ("Not charted, not converted to USD yet (Stripe's figures still to come):"
                                   " GBP 78.00 + EUR 45.00 + JPY 2,980 (3 orders)")
    await job.tick()
    async with store.deps.pool.acquire() as conn:
        settled = await hourly_revenue(conn, current=day, previous=week, tz=tz, store=choice)
    assert sum(settled.current) == GROSS and settled.current[at.astimezone(tz).hour] == GROSS
    assert settled.pending == () and chart_note(settled) is None
    assert render_chart(settled) != render_chart(waiting)


async def evening_report(store: Bot, at: dt.datetime) -> tuple[EveningFigures, Message]:
    """The evening report of the day of `at`, as it would be posted now (its blocks valid)."""
    settings, now = store.deps.settings, dt.datetime.now(dt.UTC)
    slot = Slot(ReportKind.EVENING, at.astimezone(settings.tz).date(), now + dt.timedelta(minutes=1))
    async with store.deps.pool.acquire() as conn:
        figures = await evening(conn, slot, settings=settings, now=now)
    msg = report_message(figures, tz=settings.tz)
    assert_valid_message(msg.as_payload())
    return figures, msg


async def test_the_evening_report_sums_the_day_in_the_store_currency(store: Bot) -> None:
    """The evening report's summary text gives the day in USD, not per currency."""
    job = SettlementJob(store.deps)
    await job.tick()
    at = await sell(store, 1, 2, 3, 4)
    await job.tick()
    figures, msg = await evening_report(store, at)
    assert msg.text.endswith(": 4 orders · $197.31")
    assert figures.chart.store and sum(figures.chart.current) == GROSS


async def test_sales_and_home_give_the_last_hour_in_the_store_currency(store: Bot) -> None:
    """/sales's and the App Home's "Last hour" field is in USD once settled, not a per-currency list."""
    job = SettlementJob(store.deps)
    await job.tick()
    await sell(store, 1, 2, 3, 4)
    await job.tick()
    answer = await store.command("/sales")
    assert_valid_message(answer)
    last_hour = answer["blocks"][1]["fields"]
    assert last_hour[0]["text"] == "*Last hour:*\n4 orders · $197.31"
    home = await render_home(store.deps, buttons=True)
    assert_valid_view(home)
    assert "4 orders · $197.31" in str(home["blocks"]) and "€45.00 + £78.00" not in str(home["blocks"][:3])


async def test_the_evening_reports_top_products_are_in_the_store_currency(store: Bot) -> None:
    """One line per product whatever currencies it sold in, at what settled; what has not settled yet is counted
    apart, not summed at face value."""
    job = SettlementJob(store.deps)
    await job.tick()  # reads the account's currency: USD
    at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    for n, product in ((1, "Course"), (2, "Course"), (3, "Ebook"), (4, "Course")):
        currency, amount, _, _ = SALES[n]
        assert (await store.stripe(paid_checkout(n, at, amount=amount, currency=currency, product=product))).status \
            == 200

    async def top_lines() -> tuple[list[tuple[str, str, int, int, int]], str]:
        figures, msg = await evening_report(store, at)
        top = next(b["text"]["text"] for b in msg.blocks if "Top products" in str(b))
        return [(p.product, p.currency, p.orders, p.revenue, p.not_converted) for p in figures.top_products], top

    waiting, text = await top_lines()
    assert waiting == [("Course", "USD", 3, 3000, 2), ("Ebook", "USD", 1, 0, 1)]
    assert "1. Course — 3 orders · $30.00 (2 not converted yet)" in text, text
    await job.tick()
    settled, text = await top_lines()
    assert settled == [("Course", "USD", 3, 3000 + 4871 + 9850, 0), ("Ebook", "USD", 1, 2010, 0)]
    assert text.endswith("1. Course — 3 orders · $177.21\n2. Ebook — 1 order · $20.10"), text
