"""Orders given up on before migration 0047 as settled in another currency than the store's kept only the reason
("settled in EUR, not the store currency USD"): 0047 takes their settled currency from it, so switching the store
currency to that one reads them again, like the orders set aside since (bot/stripe/settle_walk.py)."""

from __future__ import annotations

import datetime as dt

import asyncpg

from bot.db import bundled_migrations, create_pool, migrate
from bot.stripe import settle_walk
from bot.stripe.settle_job import MAX_ATTEMPTS, RECONCILE, REVIVE_AFTER
from queries import settlements

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


async def given_up_before_0047(dsn: str, *, sold: dt.datetime) -> None:
    """An EUR order read under STORE_CURRENCY=USD by a release before 0047, then the upgrade."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version < "0047"])
        await conn.execute("INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
                           " VALUES ('pi_eur', 'completed', 4500, 'EUR', $1, $1)", sold)
        await conn.execute("INSERT INTO settlement_fetches (order_id, due_at, attempts, last_error, queued_at,"
                           " tried_at) VALUES ('pi_eur', 'infinity', $1,"
                           " 'settled in EUR, not the store currency USD', $2, $2)",
                           MAX_ATTEMPTS, sold + dt.timedelta(minutes=1))
        await migrate(conn)
    finally:
        await conn.close()


async def walk_and_revive(pool: asyncpg.Pool, store: str) -> dt.datetime:
    """The fees job's walk for `store` to its end and its daily retry; when the order is due."""
    while not (await settle_walk.walk(pool, store=store, now=NOW, attempts=MAX_ATTEMPTS)).finished:
        pass
    await settlements.revive(pool, now=NOW, since=NOW - RECONCILE, tried_before=NOW - REVIVE_AFTER,
                             attempts=MAX_ATTEMPTS - 1, store=store)
    due: dt.datetime = await pool.fetchval("SELECT due_at FROM settlement_fetches WHERE order_id = 'pi_eur'")
    return due


async def test_orders_given_up_before_0047_as_settled_elsewhere_never_come_back(empty_dsn: str) -> None:
    """The owner then sets STORE_CURRENCY=EUR (the README: the change "applies to the orders read before"). The walk
    only touched orders whose settled_currency is the new one, and the daily retry only the last 30 days, so this
    45-day-old EUR order stayed "not converted" for good; it is read again now."""
    await given_up_before_0047(empty_dsn, sold=NOW - dt.timedelta(days=45))
    pool = await create_pool(empty_dsn, min_size=1, max_size=2)
    try:
        assert await pool.fetchval("SELECT settled_currency FROM orders WHERE id = 'pi_eur'") == "EUR"
        due = await walk_and_revive(pool, "EUR")
        assert due == NOW, f"still given up for good: due {due}"
    finally:
        await pool.close()


async def test_while_the_store_currency_stays_usd_the_order_stays_given_up(empty_dsn: str) -> None:
    """A recent one (within the daily retry's 30 days) is not read again while the store currency is USD: it would
    settle in EUR again."""
    await given_up_before_0047(empty_dsn, sold=NOW - dt.timedelta(days=5))
    pool = await create_pool(empty_dsn, min_size=1, max_size=2)
    try:
        await walk_and_revive(pool, "USD")
        due = await pool.fetchval("SELECT due_at::text FROM settlement_fetches WHERE order_id = 'pi_eur'")
        assert due == "infinity", due
    finally:
        await pool.close()
