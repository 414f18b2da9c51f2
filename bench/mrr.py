"""MRR summary benchmark: the figures /sales, the report, Home and the JSON API read, on a large subscription ledger.

    python bench/mrr.py [--subscriptions 20000] [--years 2] [--runs 5] [--writes 2000] [--admin-url DSN] [--keep]

A scratch database, migrated, holding monthly subscriptions started over `--years` (one snapshot per renewal,
2 % of renewals ending in churn) and their states; then `queries.mrr.summary` for the last 30 days, timed, and
checked against a plain scan of every snapshot for MRR a week ago. Then what keeping each snapshot's movement
costs the intake (migration 0022's triggers): `--writes` new snapshots of existing subscriptions, half of them
older than the subscription's newest (arriving late), stored in batches of 50 as the intake does, with the
triggers and, rolled back and stored again, without them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import scratch_database  # after the path set-up above
from bot.db import migrate
from bot.subscriptions.mrr import PER_MINOR
from queries import mrr
from queries.subscriptions import Snapshot, StateRow, insert_snapshots, upsert_states

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
PRICES = (1900, 2900, 4900)  # minor units a month; stored in MRR units (migration 0046)
# Named, not positional: later migrations add columns (0017: pricing, before_pricing, discounts).
# 0046 renamed the MRR columns (mrr_units, before_mrr_units) as it changed their unit.
COLUMNS = ("event_id", "subscription_id", "at", "rank", "status", "mrr_units", "currency", "plan", "before_mrr_units")
SCAN = """
SELECT mrr_minor(sum(mrr_units)) FROM (SELECT DISTINCT ON (subscription_id) mrr_units FROM subscription_events
                                  WHERE at <= $1
                       ORDER BY subscription_id, at DESC, rank DESC, event_id DESC) AS latest
"""


def ledger(subscriptions: int, years: int) -> tuple[list[tuple[object, ...]], list[StateRow]]:
    """Snapshot rows (for COPY) and the states they end in."""
    rng = random.Random(15)
    rows: list[tuple[object, ...]] = []
    states: list[StateRow] = []
    for s in range(subscriptions):
        t, amount, i = NOW - dt.timedelta(days=rng.uniform(0, 365 * years)), rng.choice(PRICES) * PER_MINOR, 0
        status, mrr_now, rank, event_id, at = "active", amount, 0, "", t
        while t < NOW:
            status = "canceled" if i and rng.random() < 0.02 else "active"
            mrr_now, rank, event_id, at = (0 if status == "canceled" else amount,
                                           2 if status == "canceled" else min(i, 1), f"evt_{s}_{i}", t)
            rows.append((event_id, f"sub_{s}", at, rank, status, mrr_now, "USD", "Pro", None))
            if status == "canceled":
                break
            t, i = t + dt.timedelta(days=30), i + 1
        states.append(StateRow(f"sub_{s}", None, status, mrr_now, "USD", "Pro", False, None, None, None, None, None,
                               False, event_id, at, rank))
    return rows, states


WRITE_BATCH = 50
TRIGGERS = ("subscription_events_inserted", "subscription_events_updated", "subscription_events_deleted")


async def write_cost(conn: asyncpg.Connection, args: argparse.Namespace, *, triggers: bool) -> float:
    """µs per snapshot to store `args.writes` new ones (half arriving late), rolled back after."""
    rng = random.Random(22)
    new = [Snapshot(f"evt_w{n}", f"sub_{rng.randrange(args.subscriptions)}",
                    NOW - dt.timedelta(days=rng.uniform(0, 60) if n % 2 else 0, minutes=rng.uniform(1, 60)),
                    1, "active", rng.choice(PRICES) * PER_MINOR, "USD", "Pro") for n in range(args.writes)]
    tx = conn.transaction()
    await tx.start()
    try:
        if not triggers:
            for name in TRIGGERS:
                await conn.execute(f"ALTER TABLE subscription_events DISABLE TRIGGER {name}")
        started = time.perf_counter()
        for i in range(0, len(new), WRITE_BATCH):
            await insert_snapshots(conn, new[i:i + WRITE_BATCH])
        return (time.perf_counter() - started) * 1e6 / len(new)
    finally:
        await tx.rollback()


async def main(args: argparse.Namespace) -> None:
    rows, states = ledger(args.subscriptions, args.years)
    async with scratch_database(args.admin_url, "salespulse_bench_mrr", keep=args.keep) as dsn:
        conn = await asyncpg.connect(dsn, server_settings={"jit": "off"})  # as the bot's pool (bot.db.create_pool)
        try:
            await migrate(conn)
            await conn.copy_records_to_table("subscription_events", records=rows, columns=COLUMNS)
            await upsert_states(conn, states)
            # As autovacuum leaves it: 0022's triggers rewrote every snapshot once (prev_mrr_units), so half are dead.
            for table in ("subscription_events", "subscriptions"):
                await conn.execute(f"VACUUM ANALYZE {table}")
            timings, summary = [], None
            for _ in range(args.runs):
                started = time.perf_counter()
                summary = await mrr.summary(conn, now=NOW, since=NOW - dt.timedelta(days=30))
                timings.append((time.perf_counter() - started) * 1000)
            assert summary is not None
            usd = summary.currencies[0]
            assert usd.mrr_week_ago == await conn.fetchval(SCAN, NOW - dt.timedelta(days=7))
            print(f"{len(rows):,} snapshots of {args.subscriptions:,} subscriptions: summary median "
                  f"{statistics.median(timings):.0f} ms (min {min(timings):.0f}); MRR {usd.mrr:,}, "
                  f"a week ago {usd.mrr_week_ago:,}, {usd.active:,} active, churned {usd.churned:,}")
            if args.writes:
                costs = [await write_cost(conn, args, triggers=on) for on in (True, False, True, False)]
                print(f"storing {args.writes:,} snapshots in batches of {WRITE_BATCH}: "
                      f"{min(costs[0::2]):.0f} µs each with the movement triggers, {min(costs[1::2]):.0f} without "
                      f"(best of two)")
        finally:
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=20_000)
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--writes", type=int, default=2000, help="snapshots stored to time the triggers (0: none)")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true")
    asyncio.run(main(parser.parse_args()))
