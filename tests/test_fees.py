"""Net of fees: refunds and disputes come off net, backfill fills in past orders, and a slow, rate-limited or
failing Stripe (a fake on 127.0.0.1) delays neither intake nor pings; the orders are read again later."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import aiohttp

from bot.answers.gather import gather_health
from bot.answers.json_views import health_json
from bot.db import bundled_migrations
from bot.stripe.backfill import backfill_fees
from bot.stripe.events_api import StripeApi
from bot.stripe.settle_job import SettlementJob
from queries import settlements
from tests.conftest import Bot, FakeClock, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.reference import stripe_fixture, wrap_event
from tests.settled_store import lose_dispute, refund_sale_2, sell, totals

pytest_plugins = ["tests.settled_store"]  # the `stripe_api` and `store` fixtures


async def test_refunds_and_disputes_reduce_net(store: Bot, stripe_api: FakeStripe) -> None:
    """A partial refund and a dispute (withdrawal and its 15.00 fee) are read again and come off net."""
    at = await sell(store, 2, 4)
    job = SettlementJob(store.deps)
    assert await job.tick() == 2
    assert (await store.stripe(refund_sale_2(stripe_api, amount=1000, settled=1082))).status == 200
    await lose_dispute(store, stripe_api)
    assert await job.tick() == 2
    after = await totals(store, at)
    assert after.gross == 4871 + 9850
    assert after.fees == 171 + 316 + 1500 and after.refunds == 1082 + 9850
    assert after.net == after.gross - after.fees - after.refunds == 4871 - 171 - 1082 + 9850 - 316 - 9850 - 1500
    nets = await store.deps.pool.fetch("SELECT id, net FROM orders ORDER BY id")
    assert [(r["id"], r["net"]) for r in nets] == [("pi_2", 4871 - 171 - 1082), ("pi_4", 9850 - 316 - 11350)]
    # /sales names the two refund figures apart: the net's are these orders', "Refunds made" those made today
    text = str((await store.command("/sales"))["blocks"])
    assert "(fees $19.87 · refunds and disputes of these orders $109.32)" in text, text
    assert "*Refunds made:*\\n1 · €10.00" in text, text


async def test_backfill_reads_the_fees_of_past_orders(store: Bot, stripe_api: FakeStripe) -> None:
    """`salespulse backfill` reads the balance transactions of the days it imported, and the account's currency."""
    at = await sell(store, 1, 2, 3, 4)
    async with aiohttp.ClientSession() as session:
        api = StripeApi(session, api_key=API_KEY, base_url=stripe_api.url)
        assert await backfill_fees(store.deps.pool, api, days=2, now=dt.datetime.now(dt.UTC), store=None) == 4
    assert (await totals(store, at)).gross == 19731
    assert await settlements.account_currency(store.deps.pool) == "USD"


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
        health = health_json(await gather_health(bot.deps))
        assert health["components"]["stripe_fees"] == {"waiting": 1, "given_up": 0}
        clock.advance(minutes=2)
        assert await job.tick() == 1
        assert await bot.deps.pool.fetchval("SELECT settled_amount FROM orders WHERE id = 'pi_2'") == 4871
    calls = [r.path for r in stripe_api.requests]
    assert calls.count("/v1/account") == 1 and calls.count("/v1/payment_intents/pi_2") == 6


async def _record(waits: list[float], seconds: float) -> None:
    """A rate-limit wait, recorded instead of slept."""
    waits.append(seconds)


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


async def test_with_store_currency_set_the_account_is_never_read(dsn: str, fake_slack: FakeSlack,
                                                                 stripe_api: FakeStripe) -> None:
    """STORE_CURRENCY with a key: no GET /v1/account (a restricted key needs no Account permission)."""
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe_api.url,
                         STORE_CURRENCY="USD") as bot:
        at = await sell(bot, 1, 3)
        assert await SettlementJob(bot.deps).tick() == 2
        assert (await totals(bot, at)).gross == 3000 + 2010
    assert "/v1/account" not in {r.path for r in stripe_api.requests}


async def test_a_fully_refunded_order_keeps_its_fee_against_net(store: Bot, stripe_api: FakeStripe) -> None:
    """Stripe keeps the fee on a refund: a fully refunded order's net is −fee, and the store's net counts it."""
    at = await sell(store, 2, 4)
    job = SettlementJob(store.deps)
    assert await job.tick() == 2
    event = refund_sale_2(stripe_api, amount=4500, settled=4871, event_id="evt_re_2_full")
    assert (await store.stripe(event)).status == 200
    assert await job.tick() == 1
    pool = store.deps.pool
    row = await pool.fetchrow("SELECT payment_status, settled_amount, fee, settled_refunded, net FROM orders"
                              " WHERE id = 'pi_2'")
    assert tuple(row) == ("refunded", 4871, 171, 4871, 4871 - 171 - 4871)  # net = gross − fee − refunded = −171
    after = await totals(store, at)
    # By hand: the refunded order's gross and refund cancel and leave the store; its 1.71 fee stays.
    assert (after.gross, after.fees, after.refunds, after.orders) == (9850, 316 + 171, 0, 1)
    assert after.net == (9850 - 316) + (4871 - 171 - 4871) == 9363
    query = ("SELECT level, bucket, currency, orders, revenue, settled, fees, deducted FROM sales_rollups"
             " ORDER BY 1, 2, 3")
    quarters = "SELECT * FROM order_rollups WHERE orders <> 0 OR fees <> 0 ORDER BY bucket, currency"
    kept, kept_quarters = await pool.fetch(query), await pool.fetch(quarters)
    await pool.execute("SELECT sales_rollups_rebuild()")
    assert [tuple(r) for r in await pool.fetch(query)] == [tuple(r) for r in kept]
    assert [tuple(r) for r in await pool.fetch(quarters)] == [tuple(r) for r in kept_quarters]
    edge = await settlements.settled_totals(pool, start=at - dt.timedelta(minutes=7), end=at + dt.timedelta(hours=25))
    assert sum(r.fees for r in edge) == 487 and sum(r.orders for r in edge) == 1


async def test_a_won_dispute_puts_the_reinstated_money_back_into_net(store: Bot, stripe_api: FakeStripe) -> None:
    """charge.dispute.funds_reinstated and .closed (won) queue the order again: the reversal's +amount and the
    dispute fee given back return net to what it was before the dispute, without a ping."""
    at = await sell(store, 4)
    job = SettlementJob(store.deps)
    assert await job.tick() == 1
    reinstated = stripe_fixture("dj-stripe/dispute_dp_funds_reinstated_full.json")  # withdrawal, then reversal
    withdrawal, reversal = reinstated["balance_transactions"]
    dispute = {**reinstated, "id": "dp_4", "charge": "ch_4", "payment_intent": "pi_4", "amount": 7800,
               "currency": "gbp", "status": "needs_response", "created": int(time.time()),
               "balance_transactions": [{**withdrawal, "amount": -9850, "net": -11350}]}
    stripe_api.disputes.append(dispute)
    stripe_api.charges["ch_4"]["disputed"] = True
    assert (await store.stripe(wrap_event({**dispute, "balance_transactions": []}, "charge.dispute.created",
                                          created=int(time.time())))).status == 200
    assert await job.tick() == 1
    lost = await totals(store, at)
    assert (lost.fees, lost.refunds, lost.net) == (316 + 1500, 9850, 9850 - 316 - 9850 - 1500)
    dispute.update(status="won", balance_transactions=[*dispute["balance_transactions"],
                                                       {**reversal, "amount": 9850, "net": 11350}])
    assert await job.tick() == 0  # nothing tells the fees job, but the events below
    await store.drain()
    posts = len(store.slack_api.calls)
    for kind in ("charge.dispute.funds_reinstated", "charge.dispute.closed"):
        assert (await store.stripe(wrap_event(dict(dispute), kind, created=int(time.time())))).status == 200
    assert await job.tick() == 1
    won = await totals(store, at)
    assert (won.fees, won.refunds, won.net) == (316, 0, 9850 - 316)  # by hand: 9850 − 316 − 11350 + 11350
    assert await store.deps.pool.fetchval("SELECT status FROM disputes WHERE id = 'dp_4'") == "won"
    assert await store.deps.pool.fetchval("SELECT net FROM orders WHERE id = 'pi_4'") == 9850 - 316
    await store.drain()
    assert len(store.slack_api.calls) == posts  # no ping for a closed dispute


async def test_migration_0016_adds_the_fees_of_orders_refunded_before_it(store: Bot, stripe_api: FakeStripe) -> None:
    """Rollups kept by 0014's triggers (no refunded order's fee) get those fees from 0016, equal to a rebuild."""
    await sell(store, 2)
    job = SettlementJob(store.deps)
    await job.tick()
    pool = store.deps.pool
    await pool.execute("UPDATE orders SET payment_status = 'refunded', amount_refunded = 4500, refunded_at = now(),"
                       " settled_refunded = 4871, net = -171 WHERE id = 'pi_2'")
    query = "SELECT level, bucket, currency, fees FROM sales_rollups WHERE fees <> 0 ORDER BY 1, 2, 3"
    await pool.execute("SELECT sales_rollups_rebuild()")
    rebuilt = [tuple(r) for r in await pool.fetch(query)]
    assert [r[3] for r in rebuilt] == [171, 171]  # a day and an hour
    await pool.execute("UPDATE sales_rollups SET fees = fees - 171 WHERE currency = 'EUR' AND fees <> 0")
    await pool.execute("UPDATE order_rollups SET fees = fees - 171 WHERE currency = 'EUR' AND fees <> 0")
    delta = next(m.sql for m in bundled_migrations() if m.version.startswith("0016")).rsplit("$$;", 1)[1]
    await pool.execute(delta)
    assert [tuple(r) for r in await pool.fetch(query)] == rebuilt
    assert await pool.fetchval("SELECT sum(fees) FROM order_rollups WHERE currency = 'EUR'") == 171
