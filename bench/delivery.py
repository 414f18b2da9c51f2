"""Delivery benchmark (run through `python bench/intake.py --delivery[-only]`): webhook → Slack ping latency at a
steady 200 sales/s, during a ~5,000-sale burst at full intake speed, and the time a 50,000-sale backlog takes
to be announced once Slack answers again after an outage (503 to every call meanwhile).

Each sale's latency runs from the moment its webhook was sent to the arrival at the fake Slack of the one
message covering it (its own ping, or the burst summary it was coalesced into).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
import uuid

import aiohttp
import asyncpg

from bench.common import (
    RESULTS,
    Sale,
    TimedSlack,
    bot_env,
    bot_process,
    checkout_completed,
    free_port,
    markdown_table,
    percentile,
    scratch_database,
    stripe_headers,
)
from tests.fakes import Fault

PENDING = "SELECT count(*) FROM outbox WHERE status = 'pending'"
# When each sale's outbox row was written (its intake transaction's start), and the ts of the message covering it.
QUEUED = """
SELECT s.dedupe_key, extract(epoch FROM s.created_at)::float8 AS queued, coalesce(b.slack_ts, s.slack_ts) AS ts
  FROM outbox AS s LEFT JOIN outbox AS b ON b.id = s.coalesced_into
 WHERE s.kind = 'sale' AND s.dedupe_key = ANY($1::text[])
"""
# The Slack ts of the message covering each settled sale.
COVERING = """
SELECT s.dedupe_key, coalesce(b.slack_ts, s.slack_ts) AS ts
  FROM outbox AS s LEFT JOIN outbox AS b ON b.id = s.coalesced_into
 WHERE s.kind = 'sale' AND s.status IN ('delivered', 'coalesced') AND s.dedupe_key = ANY($1::text[])
"""


async def send(session: aiohttp.ClientSession, url: str, sales: list[Sale], *, rate: float | None,
               concurrency: int = 32) -> dict[str, float]:
    """Send `sales` at a steady `rate` (open loop), or as fast as `concurrency` allows; each key's send time."""
    sent: dict[str, float] = {}
    signed = [(s, stripe_headers(s.body)) for s in sales]
    start = time.monotonic()

    async def one(sale: Sale, headers: dict[str, str]) -> None:
        sent["sale:" + sale.order_id] = time.monotonic()
        async with session.post(url, data=sale.body, headers=headers) as resp:
            await resp.read()
            assert 200 <= resp.status < 300, resp.status

    if rate is not None:
        async def paced(i: int, sale: Sale, headers: dict[str, str]) -> None:
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            await one(sale, headers)
        await asyncio.gather(*(paced(i, s, h) for i, (s, h) in enumerate(signed)))
    else:
        queue = iter(signed)

        async def worker() -> None:
            for sale, headers in queue:
                await one(sale, headers)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


async def drained(db: asyncpg.Connection, within: float = 600.0) -> None:
    """Wait until no outbox row is pending."""
    deadline = time.monotonic() + within
    while await db.fetchval(PENDING):
        if time.monotonic() > deadline:
            raise TimeoutError("outbox still pending")
        await asyncio.sleep(0.05)


async def arrivals(db: asyncpg.Connection, fake: TimedSlack, keys: list[str]) -> dict[str, float]:
    """When the message covering each sale reached Slack (monotonic); sales not covered are missing."""
    rows = await db.fetch(COVERING, keys)
    return {r["dedupe_key"]: fake.received[r["ts"]] for r in rows if r["ts"] in fake.received}


async def latencies(db: asyncpg.Connection, fake: TimedSlack, sent: dict[str, float]) -> list[float]:
    """Seconds from each webhook to the Slack message covering its sale."""
    await drained(db)
    got = await arrivals(db, fake, list(sent))
    assert len(got) == len(sent), f"{len(sent) - len(got)} sales not covered"
    return [got[k] - sent[k] for k in sent]


async def outage(session: aiohttp.ClientSession, url: str, db: asyncpg.Connection, fake: TimedSlack,
                 sales: list[Sale], seconds: float) -> tuple[float, float, int]:
    """Slack answers 503 to everything for `seconds` while `sales` arrive; then recovers. Returns (seconds from
    recovery to the last sale announced, to the last sale settled, messages that announced them)."""
    posts_before = len(fake.received)
    fake.chaos = lambda _method: Fault(503)
    started = time.monotonic()
    sent = await send(session, url, sales, rate=None)
    await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))
    fake.chaos = None
    recovered = time.monotonic()
    await drained(db)
    settled = time.monotonic() - recovered
    got = await arrivals(db, fake, list(sent))
    assert len(got) == len(sent), f"{len(sent) - len(got)} sales not covered"
    return max(got.values()) - recovered, settled, len(fake.received) - posts_before


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


async def breakdown(db: asyncpg.Connection, fake: TimedSlack, sent: dict[str, float]) -> list[tuple[str, str, str]]:
    """Where an open-loop sale's wait goes: webhook → outbox row (intake), outbox row → Slack (the pace, the
    claim and the call); and per message, the age of the newest sale it covers and the gap since the last one."""
    offset = time.time() - time.monotonic()  # the outbox's wall-clock times onto the bench's monotonic clock
    rows = await db.fetch(QUEUED, list(sent))
    intake = [r["queued"] - offset - sent[r["dedupe_key"]] for r in rows]
    out = [fake.received[r["ts"]] - (r["queued"] - offset) for r in rows if r["ts"] in fake.received]
    newest: dict[str, float] = {}
    for r in rows:
        newest[r["ts"]] = max(newest.get(r["ts"], 0.0), r["queued"] - offset)
    arrivals = sorted(fake.received[ts] for ts in newest if ts in fake.received)
    ages = [fake.received[ts] - q for ts, q in newest.items() if ts in fake.received]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]

    def p50_p95(values: list[float]) -> str:
        return f"{ms(percentile(values, 50))} / {ms(percentile(values, 95))}"

    return [("  webhook sent → outbox row (intake transaction start), p50 / p95", p50_p95(intake), ""),
            ("  outbox row → message in Slack (pace + claim + call), p50 / p95", p50_p95(out), ""),
            (f"  newest sale's age when its message arrives, p50 / p95 ({len(ages)} messages)", p50_p95(ages), ""),
            ("  gap between consecutive messages, p50 / p95 / max",
             f"{p50_p95(gaps)} / {ms(max(gaps, default=float('nan')))}", "1 s on average, ≥ 980 ms (Slack's pace)")]


async def run(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """The three measurements against a bot of their own; rows (measure, result, target)."""
    tag = uuid.uuid4().hex[:8]
    batch = iter(range(10**9))

    def sales(n: int) -> list[Sale]:
        return [checkout_completed(tag, next(batch)) for _ in range(n)]

    rows: list[tuple[str, str, str]] = []
    async with scratch_database(args.database_url, args.db_name + "_delivery") as dsn:
        fake = await TimedSlack().start()
        env = bot_env(database_url=dsn, port=free_port(), slack_api_url=fake.url)
        try:
            async with bot_process(env, log_path=RESULTS / "delivery-bot.log") as base, \
                    aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                url, db = f"{base}/webhooks/stripe", await asyncpg.connect(dsn)
                try:
                    await send(session, url, sales(1), rate=None)  # the channel's Slack id is learned
                    await drained(db)
                    await asyncio.sleep(1.5)
                    if args.open_loop_rate:
                        n = round(args.open_loop_rate * args.open_loop_seconds)
                        sent = await send(session, url, sales(n), rate=args.open_loop_rate)
                        waits = await latencies(db, fake, sent)
                        rows.append((f"ping p50 / p95, open loop {args.open_loop_rate:g} sales/s ({n:,} sales)",
                                     f"{ms(percentile(waits, 50))} / **{ms(percentile(waits, 95))}**", "p95 < 1 s"))
                        rows += await breakdown(db, fake, sent)
                        await asyncio.sleep(1.5)
                    if args.burst_sales:
                        posts = len(fake.received)
                        waits = await latencies(db, fake, await send(session, url, sales(args.burst_sales),
                                                                    rate=None))
                        rows.append((f"ping p50 / p95, burst of {args.burst_sales:,} sales at full intake speed",
                                     f"{ms(percentile(waits, 50))} / **{ms(percentile(waits, 95))}** "
                                     f"({len(fake.received) - posts} messages)", "p95 ≤ 1.5 s"))
                        await asyncio.sleep(1.5)
                    if args.outage_sales:
                        announced, settled, posts = await outage(session, url, db, fake,
                                                                 sales(args.outage_sales), args.outage_seconds)
                        rows.append((f"outage drain: {args.outage_sales:,} sales queued during "
                                     f"{args.outage_seconds:g} s of 503s",
                                     f"last sale announced **{announced:.1f} s** after Slack answered again, "
                                     f"settled {settled:.1f} s ({posts} messages)", "≤ 5 s"))
                finally:
                    await db.close()
        finally:
            await fake.stop()
    return rows


def report(rows: list[tuple[str, str, str]]) -> str:
    """The delivery figures as a Markdown section."""
    return "## salespulse delivery benchmark\n\n" + markdown_table(["measure", "result", "target"], rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The delivery flags of bench/intake.py."""
    parser.add_argument("--delivery", action="store_true", help="also measure burst/outage delivery")
    parser.add_argument("--delivery-only", action="store_true", help="only the delivery measurements")
    parser.add_argument("--open-loop-rate", type=float, default=200.0, help="sales/s; 0 skips it")
    parser.add_argument("--open-loop-seconds", type=float, default=10.0)
    parser.add_argument("--burst-sales", type=int, default=5000, help="0 skips the burst")
    parser.add_argument("--outage-sales", type=int, default=50_000, help="0 skips the outage")
    parser.add_argument("--outage-seconds", type=float, default=600.0)

