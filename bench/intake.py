"""Webhook intake benchmark: throughput and latency of POST /webhooks/stripe against a raw-INSERT ceiling
on the same PostgreSQL in the same run, then webhook → Slack ping latency, then a correctness check.
From the repository root:

    python bench/intake.py [--events N] [--concurrency C] [--database-url ADMIN_DSN]
    python bench/intake.py --delivery-only [--open-loop-rate R] [--burst-sales N] [--outage-sales N --outage-seconds S]

The bot runs as its own process (`python -m bot run`) against a scratch database created (and dropped)
here, posting to a fake Slack Web API served from this process. Issue targets: ≥ 1,000 events/s on
2 cores, ≥ half the raw-INSERT ceiling, ping p95 < 1 s from webhook to Slack.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import asyncpg

from bench import delivery
from bench.common import (
    ADMIN_DSN,
    RESULTS,
    Sale,
    TimedSlack,
    bot_env,
    bot_process,
    checkout_completed,
    free_port,
    machine_info,
    markdown_table,
    percentile,
    scratch_database,
    stripe_headers,
    write_result,
)
from bot.money import format_money

RAW_TABLE = ("CREATE TABLE IF NOT EXISTS bench_raw "
             "(id bigserial primary key, event_id text unique, payload jsonb)")
RAW_INSERT = "INSERT INTO bench_raw (event_id, payload) VALUES ($1, $2::jsonb)"
PENDING = "SELECT count(*) FROM outbox WHERE status = 'pending'"
# Each sale row with the Slack message that covers it: its own, or the burst summary it was folded into.
SALES = """
SELECT s.dedupe_key, s.amount, s.currency, s.status, s.slack_ts, s.coalesced_into,
       b.kind AS burst_kind, b.status AS burst_status, b.slack_ts AS burst_ts
  FROM outbox AS s LEFT JOIN outbox AS b ON b.id = s.coalesced_into
 WHERE s.kind = 'sale'
"""
# CProfile the bot instead of running it plainly (--profile): bench-side only, no bot code involved.
PROFILED = ("import cProfile, sys; from bot.cli.main import main; p = cProfile.Profile(); p.enable(); "
            "main(['run']); p.disable(); p.dump_stats(sys.argv[1])")


@dataclass
class Load:
    """What a batch of webhook deliveries got back."""

    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[object] = field(default_factory=Counter)

    @property
    def non_200(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)


async def post(session: aiohttp.ClientSession, url: str, sale: Sale, load: Load,
               headers: dict[str, str] | None = None) -> None:
    """One signed delivery; its latency and status (or exception name) go into `load`."""
    started = time.perf_counter()
    try:
        async with session.post(url, data=sale.body, headers=headers or stripe_headers(sale.body)) as resp:
            await resp.read()
            load.statuses[resp.status] += 1
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        load.statuses[type(exc).__name__] += 1
    load.latencies.append(time.perf_counter() - started)


async def blast(session: aiohttp.ClientSession, url: str, sales: list[Sale], concurrency: int) -> Load:
    """Send every event as fast as `concurrency` requests in flight allow."""
    # Signed up front: Stripe signs on its side, so signing is not the system under test's CPU.
    load, queue = Load(), iter([(sale, stripe_headers(sale.body)) for sale in sales])

    async def worker() -> None:
        for sale, headers in queue:
            await post(session, url, sale, load, headers)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    load.elapsed = time.perf_counter() - started
    return load


async def raw_ceiling(dsn: str, sales: list[Sale], concurrency: int) -> float:
    """Rows/s of plain single-row INSERTs of the same payloads (jsonb), one transaction each."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    try:
        await pool.execute(RAW_TABLE)
        await pool.execute("TRUNCATE bench_raw")
        queue = iter(sales)

        async def worker() -> None:
            async with pool.acquire() as conn:
                for sale in queue:
                    await conn.execute(RAW_INSERT, sale.event_id, sale.body.decode())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        assert await pool.fetchval("SELECT count(*) FROM bench_raw") == len(sales)
        return len(sales) / elapsed
    finally:
        await pool.close()


async def naive_ceiling(dsn: str, sales: list[Sale], concurrency: int) -> Load:
    """The same load against bench/naive_receiver.py: HTTP + signature + one raw INSERT per request."""
    async with asyncpg.create_pool(dsn, min_size=1, max_size=1) as pool:
        await pool.execute(RAW_TABLE)
        await pool.execute("TRUNCATE bench_raw")
    env = bot_env(database_url=dsn, port=free_port(), slack_api_url="http://127.0.0.1:9/")
    argv = [sys.executable, str(Path(__file__).with_name("naive_receiver.py"))]
    async with bot_process(env, log_path=RESULTS / "naive-receiver.log", argv=argv) as base, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        return await blast(session, f"{base}/webhooks/stripe", sales, concurrency)


def listening_pid(port: int) -> int:
    """The process listening on 127.0.0.1:port (the bot)."""
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return int(conn.pid)
    raise RuntimeError(f"nothing listens on port {port}")


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drained(db: asyncpg.Connection, within: float = 300.0) -> float:
    """Seconds until no outbox row is pending."""
    started = time.monotonic()
    while await db.fetchval(PENDING):
        if time.monotonic() - started > within:
            raise TimeoutError(f"outbox still pending after {within:.0f} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def ping_stream(session: aiohttp.ClientSession, url: str, sales: list[Sale],
                      rate: float) -> tuple[Load, dict[str, float]]:
    """Send `sales` at a steady `rate`; return the load and each order's send time (monotonic)."""
    load, sent = Load(), {}
    start = time.monotonic()

    async def one(i: int, sale: Sale) -> None:
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        sent["sale:" + sale.order_id] = time.monotonic()
        await post(session, url, sale, load)

    await asyncio.gather(*(one(i, sale) for i, sale in enumerate(sales)))
    load.elapsed = time.monotonic() - start
    return load, sent


def covering_ts(row: asyncpg.Record) -> str | None:
    """The ts of the one Slack message that covers a sale row, or None when the row is not settled right."""
    if row["status"] == "delivered" and row["slack_ts"] and row["coalesced_into"] is None:
        return str(row["slack_ts"])
    if (row["status"] == "coalesced" and row["slack_ts"] is None and row["burst_kind"] == "burst"
            and row["burst_status"] == "delivered" and row["burst_ts"]):
        return str(row["burst_ts"])
    return None


async def verify(db: asyncpg.Connection, fake: TimedSlack, sales: list[Sale]) -> list[tuple[str, bool]]:
    """The correctness checks, each (description, passed)."""
    keys = ["sale:" + s.order_id for s in sales]
    orders = await db.fetchval("SELECT count(*) FROM orders")
    ours = await db.fetchval("SELECT count(*) FROM orders WHERE id = ANY($1::text[])",
                             [s.order_id for s in sales])
    logged = await db.fetchval("SELECT count(*) FROM webhook_logs WHERE status = 'processed'")
    rows = {r["dedupe_key"]: r for r in await db.fetch(SALES)}
    covered = {key: covering_ts(rows[key]) if key in rows else None for key in keys}
    per_burst = Counter(ts for key, ts in covered.items() if ts and rows[key]["status"] == "coalesced")
    singles = [(k, ts) for k, ts in covered.items() if ts and rows[k]["status"] == "delivered"]
    singles_ok = all(format_money(rows[k]["amount"], rows[k]["currency"]) in fake.texts.get(ts, "")
                     for k, ts in singles)
    counts = {ts: re.search(r"(\d+) new sales", fake.texts.get(ts, "")) for ts in per_burst}
    bursts_ok = all(m is not None and int(m.group(1)) == per_burst[ts] for ts, m in counts.items())
    outbox_ts = [r["slack_ts"] for r in
                 await db.fetch("SELECT slack_ts FROM outbox WHERE slack_ts IS NOT NULL")]
    posts = [c for c in fake.calls if c.method == "chat.postMessage"]
    return [
        (f"orders == events sent ({orders} / {len(sales)})", orders == ours == len(sales)),
        (f"webhook_logs processed == events sent ({logged})", logged == len(sales)),
        (f"one sale outbox row per event ({len(rows)})", len(rows) == len(sales)),
        ("every sale covered by exactly one delivered Slack message", all(covered.values())),
        (f"individual pings show their sale's amount ({len(singles)} pings)", singles_ok),
        (f"each summary's count == sales coalesced into it ({len(per_burst)} summaries)", bursts_ok),
        (f"Slack posts ↔ outbox rows one-to-one ({len(posts)} posts)",
         len(outbox_ts) == len(set(outbox_ts)) == len(posts) and set(outbox_ts) == set(fake.received)),
        ("no outbox row left pending", await db.fetchval(PENDING) == 0),
    ]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def verdict(ok: bool) -> str:
    return "✅" if ok else "❌"


async def run_delivery(args: argparse.Namespace) -> int:
    """Only the delivery measurements (bench/delivery.py)."""
    report = delivery.report(await delivery.run(args))
    print(report)
    print(f"\n(saved to {write_result('delivery.md', report)})", file=sys.stderr)
    return 0


async def run(args: argparse.Namespace) -> int:
    if args.delivery_only:
        return await run_delivery(args)
    tag, c = uuid.uuid4().hex[:8], args.concurrency
    sales = [checkout_completed(tag, i) for i in range(args.events)]
    n_pings = round(args.ping_rate * args.ping_seconds)
    async with scratch_database(args.database_url, args.db_name) as dsn:
        info = await machine_info(dsn)
        ceiling_before = await raw_ceiling(dsn, sales, c)
        naive = await naive_ceiling(dsn, sales, c)
        fake = await TimedSlack().start()
        env = bot_env(database_url=dsn, port=free_port(), slack_api_url=fake.url)
        argv = [sys.executable, "-c", PROFILED, str(args.profile)] if args.profile else None
        try:
            async with bot_process(env, log_path=RESULTS / "intake-bot.log", argv=argv) as base, \
                    aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:
                url = f"{base}/webhooks/stripe"
                bot_pid = listening_pid(int(env["PORT"]))
                rss_start = rss_mib(bot_pid)
                load = await blast(session, url, sales, c)
                rss_mid = rss_mib(bot_pid)
                # The same volume again: steady-state memory must not keep growing with traffic.
                more = [checkout_completed(tag, 10_000_000 + i) for i in range(args.events)]
                await blast(session, url, more, c)
                rss_end = rss_mib(bot_pid)
                db = await asyncpg.connect(dsn)
                try:
                    drain, posts_after_load = await drained(db), len(fake.received)
                    pings = [checkout_completed(tag, args.events + i) for i in range(n_pings)]
                    await asyncio.sleep(1.5)  # past the channel's pace: the first ping goes out alone
                    ping_load, sent = await ping_stream(session, url, pings, args.ping_rate)
                    await drained(db)
                    found = {r["dedupe_key"]: covering_ts(r) for r in await db.fetch(SALES)}
                    waits = [fake.received[ts] - sent[k] for k in sent
                             if (ts := found.get(k)) in fake.received]
                    checks = await verify(db, fake, sales + more + pings)
                finally:
                    await db.close()
            ceiling_after = await raw_ceiling(dsn, sales, c)
        finally:
            await fake.stop()

    rate, ceiling = args.events / load.elapsed, max(ceiling_before, ceiling_after)
    naive_rate = args.events / naive.elapsed
    lat, non_200 = load.latencies, load.non_200 + ping_load.non_200
    ping_p95 = percentile(waits, 95)
    rows = [
        ("intake throughput", f"**{rate:,.0f} events/s** ({args.events:,} events, {c} in flight, "
         f"{load.elapsed:.2f} s)", "≥ 1,000/s", verdict(rate >= 1000)),
        ("HTTP latency p50 / p95 / p99", f"{ms(percentile(lat, 50))} / {ms(percentile(lat, 95))} / "
         f"{ms(percentile(lat, 99))}", "", ""),
        ("non-200 answers", f"{non_200} ({dict(load.statuses + ping_load.statuses)})", "0",
         verdict(non_200 == 0)),
        ("raw-INSERT ceiling (before / after intake)", f"{ceiling_before:,.0f} / {ceiling_after:,.0f} rows/s "
         f"({c} connections, 1 row per transaction)", "", ""),
        ("raw-INSERT ceiling through HTTP (bench/naive_receiver.py)",
         f"{naive_rate:,.0f} events/s (aiohttp + signature + 1 INSERT per request; {naive.non_200} non-200)",
         "", ""),
        ("intake / ceiling through HTTP", f"**{rate / naive_rate:.2f}**", "≥ 0.50", verdict(rate / naive_rate >= 0.5)),
        ("intake / bare INSERT ceiling (no HTTP)", f"{rate / ceiling:.2f}", "", ""),
        ("bot RSS: started / after the load / after as much again", f"{rss_start:.0f} / {rss_mid:.0f} / "
         f"{rss_end:.0f} MiB", "flat", verdict(rss_end <= rss_mid * 1.1 + 10)),
        ("outbox drained after the load", f"{drain:.1f} s ({posts_after_load} Slack posts for "
         f"{args.events:,} sales)", "", ""),
        ("ping webhook → Slack p50 / p95 / max", f"{ms(percentile(waits, 50))} / **{ms(ping_p95)}** / "
         f"{ms(max(waits, default=float('nan')))} ({len(waits)}/{n_pings} pings at {args.ping_rate:g}/s, "
         f"{len(fake.received) - posts_after_load} posts)", "p95 < 1 s",
         verdict(ping_p95 < 1 and len(waits) == n_pings)),
        *((f"check: {name}", "", "", verdict(ok)) for name, ok in checks),
    ]
    report = "\n\n".join([
        "## salespulse webhook intake benchmark",
        markdown_table(["machine", ""], list(info.items())),
        markdown_table(["measure", "result", "target", ""], rows),
        "Bot: `python -m bot run` (pool of 10 connections); load generator, fake Slack, bot and PostgreSQL "
        "share the same cores. Ratios are from one run; absolute figures vary with machine noise.",
    ])
    print(report)
    print(f"\n(saved to {write_result('intake.md', report)})", file=sys.stderr)
    if args.delivery:
        await run_delivery(args)
    return 0 if all(ok for _, ok in checks) and non_200 == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events in the throughput run")
    parser.add_argument("--concurrency", type=int, default=32, help="requests (and INSERTs) in flight")
    parser.add_argument("--database-url", default=ADMIN_DSN, help="admin DSN used to create the bench db")
    parser.add_argument("--db-name", default="salespulse_bench_intake")
    parser.add_argument("--ping-rate", type=float, default=4.0, help="events/s in the ping-latency run")
    parser.add_argument("--ping-seconds", type=float, default=15.0)
    parser.add_argument("--profile", type=Path, help="run the bot under cProfile, stats to this file")
    delivery.add_arguments(parser)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
