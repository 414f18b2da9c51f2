"""A fully refunded order charged in another currency: Stripe converts the refund at the rate of the day it is made,
so what it takes back differs from what it settled. The store's net must be Stripe's net for that order."""

from __future__ import annotations

import datetime as dt
import json

import asyncpg

from bot.currency import store_totals
from bot.db import bundled_migrations, migrate
from bot.stripe.settle_job import SettlementJob
from queries import settlements
from queries.sales import CurrencyTotal
from tests.conftest import Bot
from tests.fake_stripe import FakeStripe
from tests.settled_store import refund_sale_2, sell, totals

pytest_plugins = ["tests.settled_store"]
DAY = dt.timedelta(days=1)


async def test_full_refund_at_another_rate_counts_stripes_net(store: Bot, stripe_api: FakeStripe) -> None:
    at = await sell(store, 2, 4)  # EUR 45.00 settled $48.71 (fee 1.71); GBP 78.00 settled $98.50 (fee 3.16)
    job = SettlementJob(store.deps)
    assert await job.tick() == 2
    # A week later the euro is dearer: the full €45.00 refund takes $49.90 from the balance.
    assert (await store.stripe(refund_sale_2(stripe_api, amount=4500, settled=4990, rate=1.109))).status == 200
    assert await job.tick() == 1
    pool = store.deps.pool
    stripe_net = await pool.fetchval("SELECT sum(net) FROM orders")
    assert stripe_net == (4871 - 171 - 4990) + (9850 - 316)  # what the orders' own balance transactions say
    after = await totals(store, at)
    # The day's net in the store currency should be what Stripe's balance transactions add up to.
    assert after.net == stripe_net, (after.gross, after.fees, after.refunds, after.net)
    await assert_rollups_match_a_rebuild(pool)  # the triggers count it as sales_rollups_rebuild() does


async def assert_rollups_match_a_rebuild(db: asyncpg.Pool | asyncpg.Connection) -> None:
    kept = {t: [tuple(r) for r in await db.fetch(ROLLED.format(t))] for t in ("sales_rollups", "order_rollups")}
    await db.execute("SELECT sales_rollups_rebuild()")
    assert kept == {t: [tuple(r) for r in await db.fetch(ROLLED.format(t))] for t in kept}


OLD_ORDER = """INSERT INTO orders (id, payment_status, amount_total, amount_refunded, currency, created_at, status_at,
                                   settled_amount, settled_currency, fee, settled_refunded, net, settled_aside)
               VALUES ($1, $2, $3, $4, 'EUR', $5, $5, $6::bigint, $7, $8::bigint, $9::bigint, $6 - $8 - $9,
                       $10::text::jsonb)"""
ROLLED = "SELECT * FROM {} ORDER BY 1, 2, 3"


async def test_the_upgrade_counts_what_is_stored(empty_dsn: str) -> None:
    """A store from before 0050: a refunded order whose refund settled above its sale (fee $1.71), one with no fee
    whose refund settled below it (its hour has no rollup row yet), an order settled in EUR and set aside. After the
    upgrade the rollups deduct the differences and count the order set aside, as a rebuild computes them, and the
    store's net is Σ orders.net."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version < "0050"])
        at = dt.datetime(2026, 11, 20, 10, 5, tzinfo=dt.UTC)
        aside = json.dumps({"amount": 4500, "fee": 160, "refunded": 0, "net": 4340})
        for oid, status, total, refunded, when, figures in (
                ("o_up", "refunded", 4500, 4500, at, (4871, "USD", 171, 4990, None)),
                ("o_down", "refunded", 3000, 3000, at + dt.timedelta(hours=2), (3250, "USD", 0, 3100, None)),
                ("o_aside", "completed", 4500, 0, at, (None, "EUR", None, None, aside))):
            await conn.execute(OLD_ORDER, oid, status, total, refunded, when, *figures)
        await migrate(conn)
        store = store_totals(await settlements.settled_totals(conn, start=at.replace(hour=0), end=at + DAY),
                             "USD")
        assert store.net == await conn.fetchval("SELECT sum(net) FROM orders") == -290 + 150, store
        assert (store.gross, store.converted, store.aside) == (0, 0, (CurrencyTotal("EUR", 1, 4500),)), store
        await assert_rollups_match_a_rebuild(conn)
    finally:
        await conn.close()
