"""One currency, net of fees: balance transactions read from a fake Stripe on 127.0.0.1, shaped as Stripe returns
them (stripe/openapi fixtures3.json, stripe-ruby-mock's dispute), folded into store-currency totals."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.answers.gather import gather_health, gather_sales
from bot.blocks.reports import comparison_lines
from bot.currency import NO_STORE_CURRENCY, store_totals
from bot.demo.runner import DEMO_RATES, seed_history
from bot.home.render import render_home
from bot.reports.figures import Window, comparison
from bot.stripe.backfill import backfill_fees
from bot.stripe.events_api import StripeApi
from bot.stripe.settle_job import SettlementJob
from bot.web.view import dashboard_view
from handlers.scheduled.settlements import register
from queries import demo as demo_queries
from queries import settlements
from tests.blockkit import assert_valid_message, assert_valid_view
from tests.conftest import Bot, FakeClock, make_settings, paid_checkout, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.reference import stripe_fixture, wrap_event

TOKEN = "monitoring-token-for-currency-tests"
# Four sales in four currencies and what the account (USD) settled for each: (currency, amount, settled, fee).
SALES = {1: ("usd", 3000, 3000, 117), 2: ("eur", 4500, 4871, 171), 3: ("jpy", 2980, 2010, 88),
         4: ("gbp", 7800, 9850, 316)}


def resource(name: str) -> dict[str, Any]:
    """An object as Stripe's API returns it (stripe/openapi fixtures3.json), to patch."""
    return copy.deepcopy(stripe_fixture("openapi/fixtures3.json")["resources"][name])


def balance_transaction(txn_id: str, *, amount: int, fee: int, source: str, type_: str = "charge",
                        currency: str = "usd", rate: float | None = None) -> dict[str, Any]:
    """A BalanceTransaction: amount and fee in the account's currency, net = amount − fee."""
    txn = resource("balance_transaction")
    details = [{"amount": fee, "application": None, "currency": currency, "description": "Stripe processing fees",
                "type": "stripe_fee"}] if fee else []
    txn.update(id=txn_id, amount=amount, fee=fee, net=amount - fee, currency=currency, source=source, type=type_,
               exchange_rate=rate, fee_details=details, reporting_category=type_)
    return txn


def serve_sale(stripe: FakeStripe, n: int) -> None:
    """Stripe's side of sale n: its PaymentIntent, Charge and the charge's balance transaction."""
    currency, amount, settled, fee = SALES[n]
    charge = resource("charge")
    charge.update(id=f"ch_{n}", amount=amount, currency=currency, payment_intent=f"pi_{n}", paid=True,
                  balance_transaction=f"txn_{n}", refunds={"object": "list", "data": [], "has_more": False,
                                                           "url": f"/v1/charges/ch_{n}/refunds"})
    stripe.charges[charge["id"]] = charge
    stripe.intents.append({"id": f"pi_{n}", "object": "payment_intent", "amount": amount, "currency": currency,
                           "status": "succeeded", "created": 1, "latest_charge": f"ch_{n}"})
    stripe.balance_transactions[f"txn_{n}"] = balance_transaction(
        f"txn_{n}", amount=settled, fee=fee, source=f"ch_{n}", rate=None if currency == "usd" else 1.08)


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API with the four sales' charges."""
    fake = await FakeStripe().start()
    for n in SALES:
        serve_sale(fake, n)
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack, stripe_api: FakeStripe) -> AsyncIterator[Bot]:
    """A store with STRIPE_API_KEY pointing at the fake, STORE_CURRENCY unset (the account's default: USD)."""
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe_api.url,
                         MONITORING_TOKEN=TOKEN) as bot:
        yield bot


async def sell(bot: Bot, *numbers: int) -> dt.datetime:
    """Post the sales' checkout.session.completed webhooks (all 200); when they happened."""
    now = dt.datetime.now(dt.UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    at = max(now - dt.timedelta(minutes=30), midnight + (now - midnight) / 2)  # today (UTC), in the past
    for n in numbers:
        currency, amount, _, _ = SALES[n]
        resp = await bot.stripe(paid_checkout(n, at, amount=amount, currency=currency))
        assert resp.status == 200, await resp.text()
    return at


async def totals(bot: Bot, at: dt.datetime, currency: str = "USD") -> Any:
    """The day around `at` in the store currency, from the rollups."""
    rows = await settlements.settled_totals(bot.deps.pool, start=at - dt.timedelta(days=1),
                                            end=at + dt.timedelta(days=1))
    return store_totals(rows, currency)


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
    assert await job.tick() == 4
    answer = await store.command("/sales")
    assert_valid_message(answer)
    text = str(answer["blocks"])
    assert "$197.31" in text and "Net" in text and "$190.39 (fees $6.92)" in text
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
    home = await render_home(store.deps)
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


async def test_the_triggers_keep_the_rollups_equal_to_a_rebuild(store: Bot, stripe_api: FakeStripe) -> None:
    """Settled columns kept by the triggers equal sales_rollups_rebuild() and the orders themselves."""
    at = await sell(store, 1, 2, 3, 4)
    await SettlementJob(store.deps).tick()
    pool = store.deps.pool
    query = ("SELECT level, bucket, currency, orders, revenue, settled_orders, settled_revenue, settled, fees,"
             " deducted FROM sales_rollups ORDER BY 1, 2, 3")
    quarters = "SELECT * FROM order_rollups WHERE orders <> 0 ORDER BY bucket, currency"
    kept, kept_quarters = await pool.fetch(query), await pool.fetch(quarters)
    await pool.execute("SELECT sales_rollups_rebuild()")
    assert [tuple(r) for r in await pool.fetch(query)] == [tuple(r) for r in kept]
    assert [tuple(r) for r in await pool.fetch(quarters)] == [tuple(r) for r in kept_quarters]
    raw = await pool.fetchrow("SELECT sum(settled_amount) AS settled, sum(fee) AS fees FROM orders")
    edge = await settlements.settled_totals(pool, start=at - dt.timedelta(minutes=7), end=at + dt.timedelta(hours=25))
    assert (sum(r.settled for r in edge), sum(r.fees for r in edge)) == (raw["settled"], raw["fees"]) == (19731, 692)


async def test_refunds_and_disputes_reduce_net(store: Bot, stripe_api: FakeStripe) -> None:
    """A partial refund and a dispute (withdrawal and its 15.00 fee) are read again and come off net."""
    at = await sell(store, 2, 4)
    job = SettlementJob(store.deps)
    assert await job.tick() == 2
    refund = resource("refund")
    refund.update(id="re_2", amount=1000, currency="eur", charge="ch_2", balance_transaction="txn_re_2")
    stripe_api.charges["ch_2"]["refunds"]["data"].append(refund)
    stripe_api.balance_transactions["txn_re_2"] = balance_transaction("txn_re_2", amount=-1082, fee=0,
                                                                      source="re_2", type_="refund")
    refunded = stripe_fixture("pay-rails/charge.refunded.json")  # the event's `data`
    refunded["object"].update(id="ch_2", payment_intent="pi_2", amount=4500, amount_refunded=1000, currency="eur",
                              refunded=False)
    event = wrap_event(refunded, "charge.refunded", event_id="evt_re_2", created=int(time.time()))
    assert (await store.stripe(event)).status == 200
    withdrawal = stripe_fixture("stripe-ruby-mock/charge.dispute.funds_withdrawn.json")["data"]["object"]
    lost = {**withdrawal["balance_transactions"][0], "amount": -9850, "net": -11350}  # fee 1500: the dispute fee
    dispute = {**withdrawal, "id": "dp_4", "charge": "ch_4", "payment_intent": "pi_4", "amount": 7800,
               "currency": "gbp", "balance_transactions": [lost]}
    stripe_api.disputes.append({**dispute, "created": int(time.time())})
    stripe_api.charges["ch_4"]["disputed"] = True
    created = {**stripe_fixture("stripe-ruby-mock/charge.dispute.created.json"), "id": "evt_dp_4",
               "created": int(time.time())}
    created["data"]["object"] = {**dispute, "balance_transactions": []}
    assert (await store.stripe(created)).status == 200
    assert await job.tick() == 2
    after = await totals(store, at)
    assert after.gross == 4871 + 9850
    assert after.fees == 171 + 316 + 1500 and after.refunds == 1082 + 9850
    assert after.net == after.gross - after.fees - after.refunds == 4871 - 171 - 1082 + 9850 - 316 - 9850 - 1500
    nets = await store.deps.pool.fetch("SELECT id, net FROM orders ORDER BY id")
    assert [(r["id"], r["net"]) for r in nets] == [("pi_2", 4871 - 171 - 1082), ("pi_4", 9850 - 316 - 11350)]


async def test_backfill_reads_the_fees_of_past_orders(store: Bot, stripe_api: FakeStripe) -> None:
    """`salespulse backfill` reads the balance transactions of the days it imported, and the account's currency."""
    at = await sell(store, 1, 2, 3, 4)
    async with aiohttp.ClientSession() as session:
        api = StripeApi(session, api_key=API_KEY, base_url=stripe_api.url)
        assert await backfill_fees(store.deps.pool, api, days=2, now=dt.datetime.now(dt.UTC), store=None) == 4
    assert (await totals(store, at)).gross == 19731
    assert await settlements.account_currency(store.deps.pool) == "USD"


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


async def test_slow_or_failing_stripe_delays_neither_intake_nor_the_ping(store: Bot, stripe_api: FakeStripe) -> None:
    """While the fees job waits on a Stripe that hangs, a webhook is answered 200 and its sale pinged at once."""
    await sell(store, 1)
    stripe_api.fail_next(1, status=500, delay=3.0)  # the account read hangs 3 s, then fails
    job = asyncio.create_task(SettlementJob(store.deps).tick())
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await sell(store, 2)
    await store.drain()
    assert time.monotonic() - started < 2.0 and not job.done()
    assert any("€45.00" in p["text"] for p in store.slack_api.posted())
    assert await job == 0  # the run gave up quietly; the orders wait for the next one


async def test_rate_limits_and_errors_are_retried_later(dsn: str, fake_slack: FakeSlack,
                                                         stripe_api: FakeStripe) -> None:
    """A 500 backs the order off with an attempt counted; a 429 reschedules it without one; a later run succeeds."""
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with start_bot(dsn, fake_slack, clock=clock, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe_api.url) as bot:
        waits: list[float] = []
        job = SettlementJob(bot.deps, sleep=lambda s: _record(waits, s))
        assert await job.tick() == 0  # reads the account; nothing sold yet
        await sell(bot, 2)
        stripe_api.fail_next(1, status=500)
        assert await job.tick() == 0
        row = await bot.deps.pool.fetchrow("SELECT attempts, due_at, last_error FROM settlement_fetches")
        assert row["attempts"] == 1 and "HTTP 500" in row["last_error"] and row["due_at"] > clock.now
        assert await job.tick() == 0  # not due yet: no request
        clock.advance(minutes=2)
        stripe_api.fail_next(4, status=429, retry_after="2")
        assert await job.tick() == 0
        row = await bot.deps.pool.fetchrow("SELECT attempts, last_error FROM settlement_fetches")
        assert row["attempts"] == 1 and "429" in row["last_error"] and waits == [2.0, 2.0, 2.0]
        clock.advance(minutes=2)
        assert await job.tick() == 1
        assert await bot.deps.pool.fetchval("SELECT settled_amount FROM orders WHERE id = 'pi_2'") == 4871
    calls = [r.path for r in stripe_api.requests]
    assert calls.count("/v1/account") == 1 and calls.count("/v1/payment_intents/pi_2") == 6


async def _record(waits: list[float], seconds: float) -> None:
    """A rate-limit wait, recorded instead of slept."""
    waits.append(seconds)


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
