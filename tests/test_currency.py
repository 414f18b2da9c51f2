"""One currency: totals in the store currency equal what Stripe settled (balance transactions from a fake Stripe on
127.0.0.1), on /sales, the App Home, the dashboard, the reports and the JSON API; without a key, never a call."""

from __future__ import annotations

import datetime as dt

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.answers.gather import gather_health, gather_sales
from bot.blocks.reports import comparison_lines
from bot.currency import NO_STORE_CURRENCY, store_totals
from bot.demo.runner import DEMO_RATES, seed_history
from bot.home.render import render_home
from bot.reports.figures import Window, comparison
from bot.stripe.settle_job import SettlementJob
from bot.web.view import dashboard_view
from handlers.scheduled.settlements import register
from queries import demo as demo_queries
from queries import settlements
from tests.blockkit import assert_valid_message, assert_valid_view
from tests.conftest import Bot, make_settings, start_bot
from tests.fake_stripe import FakeStripe
from tests.fakes import FakeSlack
from tests.settled_store import SALES, TOKEN, sell, totals

pytest_plugins = ["tests.settled_store"]  # the `stripe_api` and `store` fixtures


async def test_totals_in_the_store_currency_equal_the_settled_amounts(store: Bot, stripe_api: FakeStripe) -> None:
    """After the fees job, gross is the sum of what settled in USD and net = gross − fees."""
    at = await sell(store, 1, 2, 3, 4)
    before = await totals(store, at)
    assert before.gross == 3000 and {t.currency for t in before.pending} == {"EUR", "JPY", "GBP"}
    assert await SettlementJob(store.deps).tick() == 4
    after = await totals(store, at)
    assert after.gross == sum(s[2] for s in SALES.values()) == 19731
    assert after.fees == sum(s[3] for s in SALES.values()) and after.refunds == 0
    assert after.net == after.gross - after.fees and not after.pending and after.unsettled == 0
    assert await store.deps.pool.fetchval("SELECT default_currency FROM stripe_account") == "USD"
    assert await store.deps.pool.fetchval("SELECT count(*) FROM settlement_fetches") == 0


async def test_sales_and_the_api_give_revenue_in_the_store_currency(store: Bot, stripe_api: FakeStripe) -> None:
    """/sales and /api/monitoring/sales show gross and net in USD, with the per-currency breakdown beside them."""
    job = SettlementJob(store.deps)
    assert await job.tick() == 0  # reads the account's currency: USD
    await sell(store, 1, 2, 3, 4)
    pending = await store.command("/sales")
    assert_valid_message(pending)
    assert "$30.00 + €45.00 + £78.00 + ¥2,980 not converted yet" in str(pending["blocks"])
    assert "fees of 4 orders still to come" in str(pending["blocks"])
    assert "$30.00 (3 not converted yet)" in str(pending["blocks"])  # the average of what is converted
    assert await job.tick() == 4
    answer = await store.command("/sales")
    assert_valid_message(answer)
    text = str(answer["blocks"])
    assert "$197.31" in text and "Net" in text and "$190.39 (fees $6.92)" in text
    assert "*Avg order:*\\n$49.33'" in text  # $197.31 ÷ 4 = $49.3275, rounded half up
    assert "By currency: €45.00 + £78.00 + ¥2,980 + $30.00" in text and "$197.31" in answer["text"]
    api = await (await store.client.get("/api/monitoring/sales",
                                        headers={"Authorization": f"Bearer {TOKEN}"})).json()
    today = api["today"]
    assert (today["revenue"], today["currency"], today["revenue_net"], today["fees"]) == (19731,
                                                                                          "USD", 19039, 692)
    assert today["revenue_by_currency"] == {"USD": 3000, "EUR": 4500, "JPY": 2980, "GBP": 7800}
    assert today["not_converted"] == {} and today["fees_pending_orders"] == 0
    sales, hourly = await gather_sales(store.deps)
    figures = dashboard_view(sales, hourly, await gather_health(store.deps), tz=store.deps.settings.tz)["figures"]
    assert (figures["today_revenue"], figures["today_net"]) == ("$197.31", "Net $190.39 (fees $6.92)")
    assert figures["today_currencies"].startswith("By currency: €45.00")
    home = await render_home(store.deps, buttons=True)
    assert_valid_view(home)
    assert "$190.39 (fees $6.92)" in str(home["blocks"])


async def test_reports_give_the_day_in_the_store_currency(store: Bot, stripe_api: FakeStripe) -> None:
    """The report's comparison leads with the day in the store currency, gross against a week earlier and net."""
    at = await sell(store, 1, 2, 3, 4)
    await SettlementJob(store.deps).tick()
    window = Window(at - dt.timedelta(hours=1), at + dt.timedelta(hours=1))
    async with store.deps.pool.acquire() as conn:
        day = await comparison(conn, window, store.deps.settings)
    lines = comparison_lines(day)
    assert lines[0] == "• *All in USD* $197.31 (new) · net $190.39 (fees $6.92)"
    assert len(lines) == 5 and lines[1].startswith("• *")


async def test_without_a_key_stripe_is_never_called(dsn: str, fake_slack: FakeSlack,
                                                    stripe_api: FakeStripe) -> None:
    """No STRIPE_API_KEY: the fees job does nothing, no request reaches Stripe, other currencies stay apart."""
    async with start_bot(dsn, fake_slack, STRIPE_API_URL=stripe_api.url, STORE_CURRENCY="usd") as bot:
        at = await sell(bot, 1, 2)
        assert await SettlementJob(bot.deps).tick() is None
        assert register(AsyncIOScheduler(), bot.deps) is None
        answer = await bot.command("/sales")
        got = store_totals(await settlements.settled_totals(bot.deps.pool, start=at - dt.timedelta(hours=1),
                                                            end=at + dt.timedelta(hours=1)), "USD", with_fees=False)
    assert stripe_api.requests == []
    assert got.gross == 3000 and [(t.currency, t.revenue) for t in got.pending] == [("EUR", 4500)]
    assert "$30.00 + €45.00 (no STRIPE_API_KEY to convert)" in str(answer["blocks"])
    assert "Net" not in str(answer["blocks"])


async def test_without_key_or_store_currency_totals_stay_per_currency_saying_so(bot: Bot) -> None:
    """Neither STRIPE_API_KEY nor STORE_CURRENCY: /sales lists each currency and says how to get one total."""
    await sell(bot, 1, 2)
    answer = await bot.command("/sales")
    assert_valid_message(answer)
    text = str(answer["blocks"])
    assert "*USD* 1 order · $30.00" in text and "*EUR* 1 order · €45.00" in text
    assert NO_STORE_CURRENCY in text


async def test_the_demo_history_sells_in_four_currencies_settled_in_usd(dsn: str) -> None:
    """The demo seeds USD, EUR, GBP and JPY sales and settles them itself: all in USD, net below gross."""
    await seed_history(dsn, make_settings(), orders=400)
    conn = await asyncpg.connect(dsn)
    try:
        now = dt.datetime.now(dt.UTC)
        rows = await settlements.settled_totals(conn, start=now - dt.timedelta(days=31), end=now)
        assert {r.currency for r in rows} == set(DEMO_RATES)
        st = store_totals(rows, "USD")
        assert not st.pending and st.unsettled == 0 and st.with_fees
        assert st.gross == sum(r.settled for r in rows) and 0 < st.fees < st.gross // 10
        assert st.net == st.gross - st.fees - st.refunds < st.gross
        assert await demo_queries.settle_demo_orders(conn, at=now, rates=DEMO_RATES) == 0  # nothing new
    finally:
        await conn.close()
