"""What the retention job saves: a scratch database holding N sales as Stripe tells them (three events each, and a
failed payment for every 20th) with their Slack messages delivered, measured before and after the run that comes a
little over 35 days later. From the repository root:

    python bench/retention.py [--sales 10000] [--embedded | --database-url postgresql://…/postgres]

Sizes are pg_total_relation_size (heap, TOAST and indexes): after the run and a plain VACUUM (the space the
emptied bodies held is free for new rows, so the table stops growing, though the file keeps its size), and after
VACUUM FULL (what the kept rows take: the steady state's cost per sale). VACUUM keeps the old row versions that any
open transaction on the server might still see, so on a shared server the figures come out high: --embedded runs
a private embedded PostgreSQL (pglz, not lz4) instead. A scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ADMIN_DSN, markdown_table, payment_events, scratch_database, write_result
from bot.db import create_pool, embedded_postgres, migrate
from bot.intake.batch import ingest_batch
from bot.retention.job import Pruned, Retention
from bot.retention.policy import WEBHOOK_BODIES_KEPT
from bot.stripe.received import submission
from tests.reference import stripe_fixture

TABLES = ("webhook_logs", "outbox")
# Never pruned (business data), measured for comparison: what a sale costs anyway.
KEPT = ("orders", "payment_refs", "checkout_sessions")
BATCH = 90
FAILED_EVERY = 20


def failed_payment(tag: str, i: int) -> bytes:
    """The reference payment_intent.payment_failed, as a failed attempt of its own."""
    event = copy.deepcopy(stripe_fixture("stripe-ruby-mock/payment_intent.payment_failed.json"))
    event.update(id=f"evt_pf_{tag}_{i:07d}", created=int(time.time()))
    intent, charge = event["data"]["object"], f"ch_failed_{tag}_{i:07d}"
    intent.update(id=f"pi_failed_{tag}_{i:07d}")
    intent["charges"]["data"][0].update(id=charge, payment_intent=intent["id"])
    intent["last_payment_error"]["charge"] = charge
    return json.dumps(event, indent=2).encode()


async def load(pool: asyncpg.Pool, sales: int) -> int:
    """Store the sales' events and failed payments through the intake; deliver every message. Events stored."""
    tag = f"{time.time_ns() % 10**8:08d}"
    bodies = [s.body for s in payment_events(tag, 0, sales)]
    bodies += [failed_payment(tag, i) for i in range(sales // FAILED_EVERY)]
    async with pool.acquire() as conn:
        for first in range(0, len(bodies), BATCH):
            subs = [submission(b.decode()) for b in bodies[first:first + BATCH]]
            await ingest_batch(conn, subs, tz=ZoneInfo("UTC"), now=dt.datetime.now(dt.UTC))
        await conn.execute("UPDATE outbox SET status = 'delivered', delivered_at = now(), attempts = 1,"
                           " slack_channel = 'C0BENCH', slack_ts = '1700000000.' || lpad(id::text, 6, '0')")
    return len(bodies)


async def sizes(pool: asyncpg.Pool) -> dict[str, int]:
    """Each table's bytes, heap, TOAST and indexes."""
    return {t: await pool.fetchval("SELECT pg_total_relation_size($1::regclass)", t) for t in TABLES + KEPT}


async def vacuum(pool: asyncpg.Pool, *, full: bool) -> None:
    """VACUUM (or VACUUM FULL) the measured tables."""
    for table in TABLES + KEPT:
        await pool.execute(f"VACUUM {'FULL ' if full else ''}{table}")


async def noop() -> None:
    """No pause between statements: the bench measures them back to back."""


async def run(args: argparse.Namespace) -> str:
    async with scratch_database(args.database_url, "salespulse_bench_retention") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            events = await load(pool, args.sales)
            await vacuum(pool, full=True)  # compact as loaded: no dead rows of the load in the "before"
            before = await sizes(pool)
            later = dt.datetime.now(dt.UTC) + WEBHOOK_BODIES_KEPT + dt.timedelta(days=1)
            started = time.perf_counter()
            pruned = await Retention(pool=pool, tz=ZoneInfo("UTC"), clock=lambda: later, pause=noop).tick()
            seconds = time.perf_counter() - started
            await vacuum(pool, full=False)
            after = await sizes(pool)
            await vacuum(pool, full=True)
            full = await sizes(pool)
        finally:
            await pool.close()
    assert pruned is not None
    return report(args.sales, events, pruned, seconds, before, after, full)


def report(sales: int, events: int, pruned: Pruned, seconds: float, before: dict[str, int], after: dict[str, int],
           full: dict[str, int]) -> str:
    mib = 1024 * 1024
    rows = [(f"`{t}`", f"{before[t] / mib:,.1f}", f"{after[t] / mib:,.1f}", f"{full[t] / mib:,.1f}",
             f"{before[t] / sales:,.0f} → {full[t] / sales:,.0f}") for t in TABLES]
    total = [sum(size[t] for t in TABLES) for size in (before, after, full)]
    rows.append(("**both**", f"{total[0] / mib:,.1f}", f"{total[1] / mib:,.1f}", f"{total[2] / mib:,.1f}",
                 f"{total[0] / sales:,.0f} → {total[2] / sales:,.0f}"))
    kept = sum(full[t] for t in KEPT)
    rows.append((f"for comparison, never pruned: {', '.join(f'`{t}`' for t in KEPT)}", "", "",
                 f"{kept / mib:,.1f}", f"{kept / sales:,.0f}"))
    table = markdown_table(("table", "before, MiB", "after run + VACUUM", "after VACUUM FULL", "bytes per sale"), rows)
    return (f"{sales:,} sales, {events:,} events: {pruned.webhook_bodies:,} webhook bodies and "
            f"{pruned.message_payloads:,} message payloads emptied in {pruned.chunks} statements, {seconds:.2f} s "
            f"({seconds / max(pruned.chunks, 1) * 1000:,.0f} ms per statement)\n\n{table}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=10_000)
    parser.add_argument("--database-url", default=ADMIN_DSN, help="a server where a scratch database may be made")
    parser.add_argument("--embedded", action="store_true", help="a private embedded server instead")
    args = parser.parse_args()
    if args.embedded:
        with tempfile.TemporaryDirectory(prefix="salespulse-bench-pg-") as folder, \
                embedded_postgres(Path(folder)) as args.database_url:
            text = asyncio.run(run(args))
    else:
        text = asyncio.run(run(args))
    print(text)
    write_result("retention.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
