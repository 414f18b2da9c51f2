"""The rollups behind /sales (15-minute, hourly, daily; sales, refunds, checkouts, customer sketches) always
agree with the orders themselves, whatever wrote them."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import asyncpg

from bot.demo.load import load
from bot.demo.seed import SeedSpec, generate
from queries import sales, sales_raw, sketch
from queries import seed as seed_queries

KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30: local hours straddle UTC hours
NEPAL = ZoneInfo("Asia/Kathmandu")  # +05:45


# Every rollup table as a rebuild from scratch would leave it: what the triggers must have kept.
ROLLUP_TABLES = """
SELECT (SELECT array_agg(r ORDER BY r) FROM (SELECT bucket, currency, orders, revenue FROM order_rollups
                                              WHERE orders <> 0 OR revenue <> 0) AS r)::text,
       (SELECT array_agg(r ORDER BY r) FROM sales_rollups AS r
         WHERE orders <> 0 OR revenue <> 0 OR refunds <> 0 OR refunded <> 0)::text,
       (SELECT array_agg(r ORDER BY r) FROM checkout_rollups AS r WHERE started <> 0 OR completed <> 0)::text,
       (SELECT array_agg(r ORDER BY r) FROM customer_sketches AS r)::text,
       (SELECT array_agg(r ORDER BY r) FROM refund_steps AS r)::text
"""


def _us(hours: int) -> str:
    """An order's created_at plus `hours`, as the refund ledger keeps times (µs since the epoch)."""
    return f"((extract(epoch FROM created_at) * 1000000)::bigint + {hours} * 3600000000)"


# Refunds as the intake keeps them (bot/intake/refunds.py, migration 0037), written at psql: $10 two hours after the
# sale, $20 in all at 30 hours, the $10 refund failing at 50 hours (each counted at its own time, migration 0042).
LEDGER_REFUNDS = f"""
UPDATE orders SET amount_refunded = 1000, refunded_at = created_at + interval '30 hours', refund_ledger =
       jsonb_build_object('charges', jsonb_build_array(jsonb_build_array(1000, {_us(2)}),
                                                       jsonb_build_array(2000, {_us(30)})),
                          'voids', jsonb_build_object('re_' || id, jsonb_build_array(1000, {_us(2)}, {_us(50)})))
 WHERE id = ANY($1::text[])
"""


async def _compare(db: asyncpg.Connection, rng: random.Random, now: dt.datetime, windows: int = 60) -> int:
    """Random windows: rollup-backed figures equal the plain queries; returns how many had orders."""
    nonempty = 0
    for _ in range(windows):
        start = now - dt.timedelta(minutes=rng.randrange(1, 60 * 24 * 9))
        end = start + dt.timedelta(minutes=rng.randrange(1, 60 * 24 * 8), seconds=rng.randrange(60))
        got = await sales.window_totals(db, start=start, end=end)
        assert got == await sales_raw.window_totals(db, start=start, end=end), (start, end)
        nonempty += bool(got)
        assert await sales.refunds(db, start=start, end=end) == await sales_raw.refunds(db, start=start, end=end)
        assert await sales.conversion(db, start=start, end=end) == \
            await sales_raw.conversion(db, start=start, end=end)
        for bucket, tz in (("hour", KOLKATA), ("day", ZoneInfo("America/New_York")), ("hour", NEPAL)):
            trend = await sales.trend(db, start=start, end=end, bucket=bucket, tz=tz.key)
            assert trend == await sales_raw.trend(db, start=start, end=end, bucket=bucket, tz=tz.key), \
                (start, end, bucket)
        exact = await sales_raw.unique_customers(db, start=start, end=end)
        assert await sketch.customers(db, start=start, end=end) == sketch.Customers(exact)
        assert abs(await sketch.sketched(db, start=start, end=end) - exact) <= 0.03 * exact + 1, (start, end)
    return nonempty


async def _rebuilt_equal(db: asyncpg.Connection) -> None:
    """The triggers left every rollup exactly as a rebuild from the tables computes it."""
    kept = await db.fetchrow(ROLLUP_TABLES)
    await db.execute("SELECT sales_rollups_rebuild()")
    assert kept[1] is not None
    assert list(kept) == list(await db.fetchrow(ROLLUP_TABLES))


async def test_rollup_matches_orders_after_copy_updates_and_deletes(dsn: str) -> None:
    """Seeded by COPY, then refunded, re-completed and deleted rows: every window and trend still agrees."""
    db = await asyncpg.connect(dsn)  # COPY wants the plain binary codecs, as `salespulse seed` uses
    try:
        await _exercise(db)
    finally:
        await db.close()


async def _manual_fixes(db: asyncpg.Connection, ids: list[str]) -> None:
    """What a batch intake or a person at psql does: multi-row inserts, new emails, partial refunds, checkouts."""
    await db.execute("INSERT INTO orders (id, payment_status, amount_total, currency, customer_email, created_at,"
                     " status_at) SELECT 'fix_' || g, 'completed', 100 * g, CASE WHEN g % 3 = 0 THEN NULL ELSE"
                     " 'EUR' END, 'new' || (g % 7) || '@example.com', timestamptz '2026-05-19 18:29:59+00'"
                     " + g * interval '41 seconds', now() FROM generate_series(1, 90) AS g")
    await db.execute("UPDATE orders SET customer_email = 'moved@example.com' WHERE id = ANY($1::text[])", ids[50:80])
    await db.execute("UPDATE orders SET amount_refunded = amount_refunded + 5, refunded_at = now()"
                     " WHERE id = ANY($1::text[])", ids[80:120])
    # Steps written, then moved: a void forgotten, a sale moved (its steps stay put), an order deleted.
    await db.execute(LEDGER_REFUNDS, ids[120:170])
    await db.execute("UPDATE orders SET refund_ledger = refund_ledger - 'voids', amount_refunded = 2000"
                     " WHERE id = ANY($1::text[])", ids[120:135])
    await db.execute("UPDATE orders SET created_at = created_at + interval '5 minutes', currency = 'GBP'"
                     " WHERE id = ANY($1::text[])", ids[135:150])
    await db.execute("DELETE FROM orders WHERE id = ANY($1::text[])", ids[150:155])
    await db.execute("UPDATE checkout_sessions SET status = 'completed' WHERE status = 'expired'"
                     " AND created_at > timestamptz '2026-05-15 00:00+00'")
    await db.execute("DELETE FROM checkout_sessions WHERE status = 'pending'")


async def _exercise(db: asyncpg.Connection) -> None:
    now = dt.datetime(2026, 5, 20, 12, 7, 31, tzinfo=dt.UTC)
    await load(db, generate(SeedSpec(orders=3000, days=10, now=now, tz=KOLKATA, seed=7, token="rollup")))
    rng = random.Random(3)
    assert await _compare(db, rng, now) > 30
    ids = [r["id"] for r in await db.fetch("SELECT id FROM orders WHERE payment_status = 'completed' LIMIT 400")]
    await db.execute("UPDATE orders SET payment_status = 'refunded', amount_refunded = amount_total,"
                     " refunded_at = created_at WHERE id = ANY($1::text[])", ids[:200])
    await db.execute("UPDATE orders SET created_at = created_at + interval '7 minutes' WHERE id = ANY($1::text[])",
                     ids[200:300])
    await db.execute("DELETE FROM payment_failures")
    await db.execute("DELETE FROM orders WHERE id = ANY($1::text[])", ids[300:])
    await db.execute("UPDATE orders SET payment_status = 'completed' WHERE id = ANY($1::text[])", ids[:50])
    await _manual_fixes(db, ids)
    assert await _compare(db, rng, now) > 30
    await _rebuilt_equal(db)
    stored = await db.fetchval("SELECT sum(orders) FROM order_rollups")
    assert stored == await db.fetchval("SELECT count(*) FROM orders WHERE payment_status = 'completed'")


async def test_sketch_estimate_is_within_its_stated_error(db: asyncpg.Connection) -> None:
    """Over 20,000 to 400,000 customers the sketch estimate stays within the ±3% the reply states."""
    for n in (20_000, 60_000, 150_000, 400_000):
        bits = await db.fetchval("SELECT customer_sketch_of(array_agg(DISTINCT customer_sketch_bit("
                                 "'customer' || g || '@example.com'))) FROM generate_series(1, $1) AS g", n)
        assert abs(sketch.estimate(bits.bytes) - n) <= sketch.ERROR_BOUND * n, n


async def test_copy_with_triggers_on_is_counted_exactly(dsn: str) -> None:
    """A COPY with the triggers on (a role that may not turn them off, or a person at psql) keeps every rollup."""
    db = await asyncpg.connect(dsn)
    try:
        now = dt.datetime(2026, 5, 20, 12, 7, 31, tzinfo=dt.UTC)
        async with seed_queries.micros_times(db):
            for batch in generate(SeedSpec(orders=800, days=3, now=now, tz=KOLKATA, seed=11, token="copy",
                                           chunk_size=300)):
                await seed_queries.copy_orders(db, batch.orders)
                await seed_queries.copy_checkout_sessions(db, batch.sessions)
        await _rebuilt_equal(db)
        assert await _compare(db, random.Random(5), now, windows=15) > 5
    finally:
        await db.close()


async def test_rollup_triggers_plan_their_sql_once(db: asyncpg.Connection) -> None:
    """The rollup triggers run static SQL (prepared once per connection by PL/pgSQL), not EXECUTE, which plans
    its statement again on every batch (migration 0020)."""
    sources = dict(await db.fetch(
        "SELECT p.proname, p.prosrc FROM pg_trigger AS t JOIN pg_proc AS p ON p.oid = t.tgfoid"
        " WHERE NOT t.tgisinternal AND t.tgrelid IN ('orders'::regclass, 'checkout_sessions'::regclass)"))
    assert {"order_rollups_apply", "sales_rollups_apply", "checkout_rollups_apply"} <= set(sources)
    for name in ("order_rollups_apply", "sales_rollups_apply", "checkout_rollups_apply",
                 "order_rollups_change", "sales_rollups_change", "checkout_rollups_change"):
        source = await db.fetchval("SELECT prosrc FROM pg_proc WHERE proname = $1", name)
        assert source is not None and "EXECUTE" not in source.upper(), name


async def test_statements_over_many_rows_are_counted_in_parts(db: asyncpg.Connection) -> None:
    """A statement touching more rows than one part of the triggers holds (10,000) — a bulk load, a mass update or
    delete at psql — leaves every rollup and sketch exactly as a rebuild computes them."""
    await db.execute("INSERT INTO orders (id, payment_status, amount_total, currency, customer_email, created_at,"
                     " status_at) SELECT 'bulk_' || g, 'completed', 100 + g % 900, 'USD', 'c' || (g % 4000) ||"
                     " '@example.com', timestamptz '2026-05-01 00:00+00' + g * interval '97 seconds', now()"
                     " FROM generate_series(1, 25000) AS g")
    await db.execute("INSERT INTO checkout_sessions (id, status, created_at, status_at) SELECT 'cs_bulk_' || g,"
                     " CASE WHEN g % 3 = 0 THEN 'completed' ELSE 'pending' END,"
                     " timestamptz '2026-05-01 00:00+00' + g * interval '61 seconds', now()"
                     " FROM generate_series(1, 21000) AS g")
    kept = await db.fetchrow("SELECT sum(orders), sum(revenue) FROM order_rollups")
    assert tuple(kept) == (25000, sum(100 + g % 900 for g in range(1, 25001)))
    # Emails move (sketches lose and gain customers), amounts and times change, a third of the orders refunded.
    await db.execute("UPDATE orders SET customer_email = 'm' || (hashtext(id) % 3000) || '@example.com',"
                     " amount_total = amount_total + 1, created_at = created_at + interval '31 minutes'")
    await db.execute("UPDATE orders SET payment_status = 'refunded', amount_refunded = amount_total,"
                     " refunded_at = created_at WHERE hashtext(id) % 3 = 0")
    await db.execute(LEDGER_REFUNDS.replace("id = ANY($1::text[])", "hashtext(id) % 7 = 1"))
    await db.execute("UPDATE checkout_sessions SET status = 'completed' WHERE status = 'pending'")
    await db.execute("DELETE FROM checkout_sessions WHERE hashtext(id) % 2 = 0")
    await db.execute("DELETE FROM orders WHERE hashtext(id) % 5 = 0")
    await _rebuilt_equal(db)


async def test_an_order_moving_inside_its_hour_leaves_its_sketches_alone(db: asyncpg.Connection) -> None:
    """Two events of one payment move its order's time by seconds (the later completion wins): the customer is still
    counted in the same hour, so neither the hour's nor the day's sketch is rebuilt or even rewritten — the trigger
    rebuilt the hour from every order in it, batch after batch (migration 0023). Leaving the hour, a new email or a
    refund still change them exactly as a rebuild does."""
    await db.execute("INSERT INTO orders (id, payment_status, amount_total, currency, customer_email, created_at,"
                     " status_at) SELECT 'o_' || g, 'completed', 1000, 'USD', 'c' || g || '@example.com',"
                     " timestamptz '2026-05-01 10:00+00' + g * interval '7 seconds', now()"
                     " FROM generate_series(1, 300) AS g")
    sketches = "SELECT level, bucket, ctid::text AS version FROM customer_sketches ORDER BY 1, 2"
    before = await db.fetch(sketches)
    assert [(r["level"], r["bucket"].hour) for r in before] == [("day", 0), ("hour", 10)]
    await db.execute("UPDATE orders SET created_at = created_at + interval '3 seconds', status_at = now()")
    assert await db.fetch(sketches) == before
    await _rebuilt_equal(db)

    await db.execute("UPDATE orders SET created_at = created_at + interval '1 hour' WHERE id = 'o_1'")
    await db.execute("UPDATE orders SET customer_email = 'new@example.com' WHERE id = 'o_2'")
    await db.execute("UPDATE orders SET payment_status = 'refunded', refunded_at = now() WHERE id = 'o_3'")
    after = await db.fetch(sketches)
    assert [(r["level"], r["bucket"].hour) for r in after] == [("day", 0), ("hour", 10), ("hour", 11)]
    assert after[1]["version"] != before[1]["version"]
    await _rebuilt_equal(db)


async def test_sketches_are_not_compressed_with_pglz(db: asyncpg.Connection) -> None:
    """Every batch that adds a customer rewrites a 16 KB sketch, which pglz took 1.3 ms to compress (migration
    0024): the column uses lz4, or on a server without it (the embedded PostgreSQL) no compression at all."""
    compression, storage = await db.fetchrow(
        "SELECT attcompression::text, attstorage::text FROM pg_attribute"
        " WHERE attrelid = 'customer_sketches'::regclass AND attname = 'sketch'")
    assert compression == "l" or storage == "e", (compression, storage)
    await db.execute("INSERT INTO customer_sketches (level, bucket, sketch) SELECT 'hour', now(),"
                     " customer_sketch_of(array_agg(customer_sketch_bit('c' || g || '@example.com')))"
                     " FROM generate_series(1, 20000) AS g")
    method = await db.fetchval("SELECT pg_column_compression(sketch) FROM customer_sketches")
    assert method in ("lz4", None), method
