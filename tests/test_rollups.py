"""The 15-minute rollup behind /sales always agrees with the orders themselves, whatever wrote them."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import asyncpg

from bot.demo.load import load
from bot.demo.seed import SeedSpec, generate
from queries import sales

RAW_TREND = """
SELECT date_trunc($3, created_at, $4) AS bucket, coalesce(currency, '') AS currency, count(*) AS orders,
       coalesce(sum(amount_total), 0) AS revenue
  FROM orders WHERE payment_status = 'completed' AND created_at >= $1 AND created_at < $2
 GROUP BY 1, 2 ORDER BY 1, 2
"""
KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30: local hours straddle UTC hours


async def _compare(db: asyncpg.Connection, rng: random.Random, now: dt.datetime, windows: int = 60) -> int:
    """Random windows: rollup-backed figures equal the plain queries; returns how many had orders."""
    nonempty = 0
    for _ in range(windows):
        start = now - dt.timedelta(minutes=rng.randrange(1, 60 * 24 * 9))
        end = start + dt.timedelta(minutes=rng.randrange(1, 60 * 24 * 8))
        got = await sales.window_totals(db, start=start, end=end)
        assert got == await sales.window_totals_raw(db, start=start, end=end), (start, end)
        nonempty += bool(got)
        for bucket, tz in (("hour", KOLKATA), ("day", ZoneInfo("America/New_York"))):
            trend = await sales.trend(db, start=start, end=end, bucket=bucket, tz=tz.key)
            raw = [sales.TrendPoint(r["bucket"], r["currency"] or "USD", r["orders"], int(r["revenue"]))
                   for r in await db.fetch(RAW_TREND, start, end, bucket, tz.key)]
            assert trend == raw, (start, end, bucket)
    return nonempty


async def test_rollup_matches_orders_after_copy_updates_and_deletes(dsn: str) -> None:
    """Seeded by COPY, then refunded, re-completed and deleted rows: every window and trend still agrees."""
    db = await asyncpg.connect(dsn)  # COPY wants the plain binary codecs, as `salespulse seed` uses
    try:
        await _exercise(db)
    finally:
        await db.close()


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
    assert await _compare(db, rng, now) > 30
    stored = await db.fetchval("SELECT sum(orders) FROM order_rollups")
    assert stored == await db.fetchval("SELECT count(*) FROM orders WHERE payment_status = 'completed'")
