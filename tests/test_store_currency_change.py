"""README, "One currency, net of fees": "An amount settled in another currency than the store's (an account settling in
several currencies, or a STORE_CURRENCY different from the account's) is not counted" (and said so: "settled in
another currency, not counted", not "not converted yet", which it never will be). Figures read while the store
currency was the account's (USD) stayed counted as if they were in the new STORE_CURRENCY (EUR) once the owner set it
(found by a review): the rollups sum settled amounts whatever their currency. Now the fees job walks the orders when
the store currency changes — figures in another currency go, orders that settled in the new one are read again — in
steps, one replica at a time, and never keeps figures in another currency (nor does the backfill's read)."""

from __future__ import annotations

import datetime as dt

import aiohttp

from bot.stripe import settle_walk
from bot.stripe.events_api import StripeApi
from bot.stripe.settle_job import MAX_ATTEMPTS, SettlementJob, settle_due
from queries import reports, settlements
from tests.conftest import Bot, FakeClock, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.settled_store import keyed_store, refund_sale_2, sell, totals

pytest_plugins = ["tests.settled_store"]

ROLLUPS = ("SELECT level, bucket, currency, orders, revenue, settled_orders, settled_revenue, settled, fees, deducted"
           " FROM sales_rollups ORDER BY 1, 2, 3")
FIGURES = "SELECT id, settled_currency, settled_amount, fee, net FROM orders ORDER BY id"


def reads(stripe_api: FakeStripe) -> int:
    """Requests for the sales' figures so far (one per order read)."""
    return sum(r.path.startswith("/v1/payment_intents/pi_") for r in stripe_api.requests)


async def assert_rollups_match_a_rebuild(bot: Bot) -> None:
    """The triggers kept the rollups equal to sales_rollups_rebuild() through the walk."""
    pool = bot.deps.pool
    kept = [tuple(r) for r in await pool.fetch(ROLLUPS)]
    await pool.execute("SELECT sales_rollups_rebuild()")
    assert [tuple(r) for r in await pool.fetch(ROLLUPS)] == kept


async def test_usd_settlements_are_not_summed_as_euros(dsn: str, fake_slack: FakeSlack,
                                                       stripe_api: FakeStripe) -> None:
    async with keyed_store(dsn, fake_slack, stripe_api) as bot:  # account currency USD, STORE_CURRENCY unset
        at = await sell(bot, 1, 2, 3, 4)
        assert await SettlementJob(bot.deps).tick() == 4
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe_api.url,
                         STORE_CURRENCY="EUR") as bot:
        await SettlementJob(bot.deps).tick()
        eur = await totals(bot, at, "EUR")
        text = str((await bot.command("/sales"))["blocks"])
        products = await reports.top_products(bot.deps.pool, start=at - dt.timedelta(hours=1),
                                              end=at + dt.timedelta(hours=1), limit=10, store="EUR")
        backlog = await settlements.backlog(bot.deps.pool)
        await assert_rollups_match_a_rebuild(bot)
    # $197.31 of USD settlements must not read as €197.31: only the €45.00 order is in euros.
    assert "€197.31" not in text, text
    assert eur.gross == 4500, eur
    assert (eur.fees, eur.refunds) == (0, 0), eur
    assert not eur.pending and sorted(p.currency for p in eur.aside) == ["GBP", "JPY", "USD"], eur
    assert "€45.00 + £78.00 + ¥2,980 + $30.00 settled in another currency, not counted" in text, text
    assert eur.fees_unknown == 1 and "fees of 1 order settled in another currency unknown" in text, text
    # The report's top products: the EUR order at face value, the three others settled in another currency (never
    # converted, not "not converted yet").
    assert (sum(p.revenue for p in products), sum(p.not_converted for p in products),
            sum(p.aside for p in products)) == (4500, 0, 3), products
    # Given up on with the reason, as an order read in another currency is.
    assert backlog == settlements.Backlog(waiting=0, given_up=4)


async def test_back_to_the_account_currency_the_figures_come_back(dsn: str, fake_slack: FakeSlack,
                                                                  stripe_api: FakeStripe) -> None:
    """USD → EUR → USD: the figures set aside come back without a request, but those of sale 2, refunded since
    (read again: one request); meanwhile the daily reconciliation reads none of them again (they settled in USD)."""
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with keyed_store(dsn, fake_slack, stripe_api) as bot:
        at = await sell(bot, 1, 2, 3, 4)
        assert await SettlementJob(bot.deps).tick() == 4
        figures = [tuple(r) for r in await bot.deps.pool.fetch(FIGURES)]
    env = {"clock": clock, "STRIPE_API_KEY": API_KEY, "STRIPE_API_URL": stripe_api.url}
    async with start_bot(dsn, fake_slack, STORE_CURRENCY="EUR", **env) as bot:
        job = SettlementJob(bot.deps)
        assert await job.tick() == 0
        clock.advance(days=1, minutes=1)
        before = reads(stripe_api)
        assert await job.tick() == 0  # the daily reconciliation: nothing to read
        assert reads(stripe_api) == before
        rows = await bot.deps.pool.fetch(FIGURES)
        assert {r[1:] for r in rows} == {("USD", None, None, None)}
        refunded = refund_sale_2(stripe_api, amount=1000, settled=1082)
        assert (await bot.stripe(refunded)).status == 200  # not read before the change back
    async with start_bot(dsn, fake_slack, STORE_CURRENCY="USD", **env) as bot:
        before = reads(stripe_api)
        assert await SettlementJob(bot.deps).tick() == 1  # sale 2's figures, read again
        assert reads(stripe_api) == before + 1
        usd = await totals(bot, at)
        assert [tuple(r) for r in await bot.deps.pool.fetch(FIGURES)] == [
            f if f[0] != "pi_2" else ("pi_2", "USD", 4871, 171, 4871 - 171 - 1082) for f in figures]
        assert await bot.deps.pool.fetchval("SELECT count(settled_aside) FROM orders") == 0
        assert await settlements.backlog(bot.deps.pool) == settlements.Backlog(waiting=0, given_up=0)
        await assert_rollups_match_a_rebuild(bot)
    assert (usd.gross, usd.fees, usd.refunds, usd.pending) == (19731, 692, 1082, ()), usd


async def test_the_walk_goes_in_steps_one_replica_at_a_time(dsn: str, fake_slack: FakeSlack,
                                                            stripe_api: FakeStripe) -> None:
    """Two orders per step, one step per run: four orders at the same second take two runs (the walk goes on where
    it stopped, by id among equal times); while another replica holds the walk's row, a run takes no step."""
    async with keyed_store(dsn, fake_slack, stripe_api) as bot:
        at = await sell(bot, 1, 2, 3, 4)
        assert await SettlementJob(bot.deps).tick() == 4
        pool, now = bot.deps.pool, dt.datetime.now(dt.UTC)
        walk = {"store": "EUR", "now": now, "attempts": MAX_ATTEMPTS, "step": 2, "budget": 0.0}
        async with pool.acquire() as other, other.transaction():
            await settle_walk.walk(pool, **walk)  # starts the walk for EUR and takes its first step
            assert await pool.fetchval("SELECT count(settled_amount) FROM orders") == 2
            await other.execute("SELECT * FROM settled_currency_walk FOR UPDATE")  # another replica's step
            assert await settle_walk.walk(pool, **walk) == settle_walk.Walked(finished=False)
            assert await pool.fetchval("SELECT count(settled_amount) FROM orders") == 2
        assert await settle_walk.walk(pool, **walk) == settle_walk.Walked(aside=2, finished=False)
        assert await pool.fetchval("SELECT count(settled_amount) FROM orders") == 0
        assert await settle_walk.walk(pool, **walk) == settle_walk.Walked(finished=True)  # nothing left
        assert await settle_walk.walk(pool, **walk) == settle_walk.Walked()  # done: one read of the row
        assert (await totals(bot, at, "EUR")).gross == 4500


async def test_an_order_read_in_another_currency_keeps_no_figures(store: Bot, stripe_api: FakeStripe) -> None:
    """An account settling in several currencies (sale 2 settles in EUR): the job, and the backfill's read (which
    passes STORE_CURRENCY, unset here), keep the currency and no figures; the USD total is the three others."""
    stripe_api.balance_transactions["txn_2"]["currency"] = "eur"
    at = await sell(store, 1, 2, 3, 4)
    pool, now = store.deps.pool, dt.datetime.now(dt.UTC)
    await settlements.save_account(pool, currency="USD", at=now)
    await settlements.enqueue(pool, since=at - dt.timedelta(hours=1), now=now)
    async with aiohttp.ClientSession() as session:
        api = StripeApi(session, api_key=API_KEY, base_url=stripe_api.url)
        assert await settle_due(pool, api, store=None, now=now) == (3, 4)
    row = await pool.fetchrow("SELECT settled_currency, settled_amount, (settled_aside ->> 'amount')::int AS aside"
                              " FROM orders WHERE payment_intent_id = 'pi_2'")
    assert tuple(row) == ("EUR", None, 4871)  # set aside, summed nowhere
    usd = await totals(store, at)
    assert usd.gross == 3000 + 2010 + 9850, usd
    assert not usd.pending and [p.currency for p in usd.aside] == ["EUR"], usd  # given up: not "not converted"
