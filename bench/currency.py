"""/sales in one currency: the snapshot of every period with and without store-currency totals, on seeded orders
whose settled amounts and fees are all known (the worst case: every rollup row carries them). From the root:

    python bench/currency.py [--orders 1000000] [--days 365] [--runs 50] [--admin-url DSN] [--keep]

The orders come from `python -m bot seed`; the demo's settlement (queries/demo.py, fixed rates) then fills the
settled columns with triggers off and the rollups are rebuilt once, as `seed` does. Each period's snapshot is
timed in-process (the lookups /sales runs, concurrently, on the bot's own pool of 10, JIT off): per-currency (no key, no
STORE_CURRENCY) against store currency with fees (STRIPE_API_KEY set). Target: p95 < 50 ms per period.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench.common import ADMIN_DSN, RESULTS, bot_env, markdown_table, percentile, scratch_database, seed, write_result
from bot.answers.snapshots import sales_snapshot
from bot.currency import PER_CURRENCY, CurrencyChoice
from bot.db import create_pool
from bot.demo.runner import DEMO_RATES
from bot.periods import PERIODS, parse_period
from queries import demo as demo_queries

TZ = "America/New_York"
STORE = CurrencyChoice(configured="USD", from_stripe=True)


async def settle_all(dsn: str) -> None:
    """Every paid order settled (triggers off for the one UPDATE), then one rollup rebuild."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await demo_queries.settle_demo_orders(conn, at=dt.datetime.now(dt.UTC), rates=DEMO_RATES)
            await conn.execute("SET LOCAL session_replication_role = origin")
            await conn.execute("SELECT sales_rollups_rebuild()")
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()


async def timings(pool: asyncpg.Pool, choice: CurrencyChoice, runs: int) -> dict[str, list[float]]:
    """Milliseconds per snapshot, per period."""
    tz, out = ZoneInfo(TZ), {}
    for key in [p for p in PERIODS if p != "YYYY-MM-DD"]:
        now = dt.datetime.now(dt.UTC)
        period = parse_period(key, now=now, tz=tz)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            snap = await sales_snapshot(pool, period=period, now=now, tz=tz, budget=10.0, currency=choice)
            times.append((time.perf_counter() - started) * 1000)
            assert not snap.missing, snap.missing
            assert (snap.store is not None) == choice.wanted
        out[key] = times
    return out


async def main(args: argparse.Namespace) -> int:
    """Seed, settle, time, report."""
    name = f"salespulse_bench_currency_{args.orders}"
    async with scratch_database(args.admin_url, name, keep=args.keep) as dsn:
        env = bot_env(database_url=dsn, port=0, slack_api_url="http://127.0.0.1:9/api/", STORE_TIMEZONE=TZ)
        started = time.perf_counter()
        seeded = await seed(env, args.orders, args.days, RESULTS / f"currency-seed-{name}.log")
        await settle_all(dsn)
        print(f"{seeded}; settled in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        pool = await create_pool(dsn, min_size=10, max_size=10)  # the bot's pool: its codecs, JIT off
        try:
            await timings(pool, STORE, 3)  # warm-up
            plain, store = await timings(pool, PER_CURRENCY, args.runs), await timings(pool, STORE, args.runs)
        finally:
            await pool.close()
    rows = [(p, f"{percentile(plain[p], 50):.1f}", f"{percentile(plain[p], 95):.1f}",
             f"{percentile(store[p], 50):.1f}", f"{percentile(store[p], 95):.1f}") for p in plain]
    table = markdown_table(("period", "per currency p50 ms", "p95", "store currency p50 ms", "p95"), rows)
    text = f"{args.orders:,} orders over {args.days} days, all settled; {args.runs} snapshots per period\n\n{table}\n"
    print(text)
    write_result(f"currency-{args.orders}.md", text)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--admin-url", default=ADMIN_DSN)
    p.add_argument("--keep", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
