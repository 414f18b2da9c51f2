"""/sales benchmark: signed slash command → HTTP reply at 1 M and 10 M orders, against the original guide's
four SQL queries run directly on the same data in the same run. From the repository root:

    python bench/commands.py [--sizes 1000000,10000000 | --orders 10000000] [--days 365] [--requests 200]
                             [--subscriptions 0] [--admin-url DSN] [--keep]

Per size: a scratch database seeded by `python -m bot seed`, then VACUUM ANALYZE (the state autovacuum
leaves; --analyze-only skips the VACUUM), the bot as its own process (`python -m bot run`) answering signed
requests on POST /slack/events, a fake Slack Web API served from here. Issue targets: /sales p95 < 100 ms at
1 M and < 300 ms at 10 M orders, and ≥ 10× faster than the guide's SQL at 10 M.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import secrets
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import asyncpg

from bench.common import (
    ADMIN_DSN,
    RESULTS,
    bot_env,
    bot_process,
    explain,
    free_port,
    machine_info,
    markdown_table,
    percentile,
    scratch_database,
    seed,
    write_result,
)
from bot.answers.snapshots import sales_snapshot
from bot.periods import PERIODS as ALL_PERIODS
from bot.periods import parse_period
from tests.fakes import FakeSlack, slack_signature

TZ = "America/New_York"
MISSED = "Couldn't get"
TODAY_OURS = "SELECT count(*) FROM orders WHERE payment_status = 'completed' AND created_at >= $1 AND created_at < $2"
TODAY_GUIDE = "SELECT count(*) FROM orders WHERE payment_status = 'completed' AND created_at::date = CURRENT_DATE"
# The guide's /api/monitoring/sales, section 1 of GUIDE.md, exactly as written, run one after the other.
GUIDE: dict[str, str] = {
    "hourlySales": """SELECT DATE_TRUNC('hour', created_at) as hour, COUNT(*) as order_count,
        SUM(amount_total) as revenue, AVG(amount_total) as avg_order_value
      FROM orders WHERE created_at > NOW() - INTERVAL '24 hours' AND payment_status = 'completed'
      GROUP BY DATE_TRUNC('hour', created_at) ORDER BY hour DESC""",
    "lastHour": """SELECT COUNT(*) as order_count, SUM(amount_total) as revenue, MAX(created_at) as last_order_at
      FROM orders WHERE created_at > NOW() - INTERVAL '1 hour' AND payment_status = 'completed'""",
    "today": """SELECT COUNT(*) as order_count, SUM(amount_total) as revenue,
        COUNT(DISTINCT customer_email) as unique_customers
      FROM orders WHERE created_at::date = CURRENT_DATE AND payment_status = 'completed'""",
    "pendingCheckouts": """SELECT COUNT(*) as count FROM checkout_sessions
      WHERE status = 'pending' AND created_at > NOW() - INTERVAL '30 minutes'""",
}

# The named periods; /sales also takes a date ("YYYY-MM-DD" in the list is its usage placeholder).
PERIODS = tuple(p for p in ALL_PERIODS if not p.startswith("YYYY"))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


class Typist:
    """Signs and posts /sales like Slack does; keeps latencies, failures and budget misses per label."""

    def __init__(self, session: aiohttp.ClientSession, base: str, secret: str, slack_url: str) -> None:
        self.session, self.url, self.secret = session, f"{base}/slack/events", secret
        self.response_url = slack_url.replace("/api/", "/hooks/resp")
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.failed: dict[str, int] = defaultdict(int)
        self.missed: dict[str, int] = defaultdict(int)

    async def sales(self, text: str, label: str) -> None:
        form = {"command": "/sales", "text": text, "user_id": "U123", "user_name": "owner",
                "channel_id": "C123", "team_id": "T000", "team_domain": "store", "token": "legacy",
                "trigger_id": "1.2.3", "response_url": self.response_url}
        body = urlencode(form).encode()
        started = time.perf_counter()
        headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_signature(body, self.secret)}
        async with self.session.post(self.url, data=body, headers=headers) as resp:
            raw = await resp.text()
        self.latencies[label].append(time.perf_counter() - started)
        if resp.status != 200 or '"blocks"' not in raw:
            self.failed[label] += 1
        elif MISSED in raw:
            self.missed[label] += 1

    async def run(self, text: str, label: str, count: int, concurrency: int = 1) -> float:
        """Send `count` requests, `concurrency` in flight; the wall time."""
        queue, started = iter(range(count)), time.perf_counter()

        async def worker() -> None:
            for _ in queue:
                await self.sales(text, label)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


async def guide_runs(dsn: str, runs: int, max_seconds: float) -> tuple[list[float], dict[str, list[float]]]:
    """The guide's four queries in sequence on one connection: total per run and each query's times."""
    totals: list[float] = []
    each: dict[str, list[float]] = defaultdict(list)
    conn = await asyncpg.connect(dsn)
    try:
        for sql in GUIDE.values():  # one untimed run: plans cached like a driver's, pages warm
            await conn.fetch(sql)
        started = time.perf_counter()
        while len(totals) < runs and (len(totals) < 10 or time.perf_counter() - started < max_seconds):
            total = 0.0
            for name, sql in GUIDE.items():
                t = time.perf_counter()
                await conn.fetch(sql)
                each[name].append(time.perf_counter() - t)
                total += each[name][-1]
            totals.append(total)
    finally:
        await conn.close()
    return totals, each


class Recorder:
    """A stand-in pool for sales_snapshot: one lookup at a time, each lookup's time (all its statements: the
    subscriptions lookup makes three) and the SQL and args of its slowest statement noted."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn, self.lock = conn, asyncio.Lock()
        self.seen: dict[str, tuple[str, tuple[Any, ...], float]] = {}  # lookup → slowest SQL, its args, total time
        self.slowest: dict[str, tuple[str, tuple[Any, ...], float]] = {}

    @contextlib.asynccontextmanager
    async def acquire(self, **_: object) -> AsyncIterator[Recorder]:
        async with self.lock:
            yield self

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:  # fetch, fetchrow, fetchval
        async def timed(sql: str, *args: Any) -> Any:
            task = asyncio.current_task()
            started = time.perf_counter()
            value = await getattr(self.conn, method)(sql, *args)
            name, took = task.get_name() if task else "?", time.perf_counter() - started
            slowest, total = self.slowest.get(name, ("", (), 0.0)), self.seen.get(name, ("", (), 0.0))[2] + took
            if took >= slowest[2]:
                self.slowest[name] = slowest = (sql, args, took)
            self.seen[name] = (slowest[0], slowest[1], total)
            return value

        return timed


async def lookup_times(dsn: str, reps: int) -> tuple[dict[str, dict[str, float]], dict[tuple[str, str], Any]]:
    """Each /sales lookup run alone, per period: median seconds, and the SQL + args of every lookup."""
    tz = ZoneInfo(TZ)
    times: dict[str, dict[str, float]] = defaultdict(dict)
    queries: dict[tuple[str, str], Any] = {}
    conn = await asyncpg.connect(dsn, server_settings={"jit": "off"})  # as the bot's pool (bot.db.create_pool)
    try:
        for period in PERIODS:
            seen = defaultdict(list)
            for _ in range(reps + 1):  # the first run warms up and is dropped
                rec = Recorder(conn)
                now = dt.datetime.now(dt.UTC)
                await sales_snapshot(rec, period=parse_period(period, now=now, tz=tz),
                                     now=now, tz=tz, budget=120)
                for name, (sql, args, seconds) in rec.seen.items():
                    seen[name].append(seconds)
                    queries[name, period] = (sql, args)
            for name, values in seen.items():
                times[name][period] = percentile(values[1:], 50)
    finally:
        await conn.close()
    return times, queries


@dataclass
class Run:
    """What one size measured."""

    orders: int
    seeded: str = ""
    windows: str = ""
    wall8: float = 0.0
    typist: Typist | None = None
    guide: list[float] = field(default_factory=list)
    guide_each: dict[str, list[float]] = field(default_factory=dict)
    per_lookup: dict[str, dict[str, float]] = field(default_factory=dict)
    plans: dict[str, list[str]] = field(default_factory=dict)


async def measure(args: argparse.Namespace, orders: int) -> Run:
    """Seed a database with `orders`, time /sales through the bot, the guide's SQL, each lookup; EXPLAIN."""
    run, secret = Run(orders), secrets.token_hex(16)
    name = f"salespulse_bench_{orders // 1_000_000}m" if orders % 1_000_000 == 0 else f"salespulse_bench_{orders}"
    slack = await FakeSlack().start()
    try:
        async with scratch_database(args.admin_url, name, keep=args.keep) as dsn:
            env = bot_env(database_url=dsn, port=free_port(), slack_api_url=slack.url,
                          SLACK_SIGNING_SECRET=secret, STORE_TIMEZONE=TZ)
            print(f"[{orders:,}] seeding …", file=sys.stderr, flush=True)
            started = time.perf_counter()
            run.seeded = await seed(env, orders, args.days, RESULTS / f"commands-seed-{name}.log",
                                    subscriptions=args.subscriptions)
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("ANALYZE" if args.analyze_only else "VACUUM (ANALYZE)")
                size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
                today = parse_period("", now=dt.datetime.now(dt.UTC), tz=ZoneInfo(TZ))
                run.windows = (f"today = {await conn.fetchval(TODAY_OURS, today.start, today.end):,} completed "
                               f"orders since local midnight ({TZ}) for /sales, {await conn.fetchval(TODAY_GUIDE):,}"
                               f" on the server's CURRENT_DATE ({await conn.fetchval('SHOW TimeZone')}) for the guide")
            finally:
                await conn.close()
            run.seeded += (f"; {time.perf_counter() - started:.0f} s including "
                           f"{'ANALYZE' if args.analyze_only else 'VACUUM (ANALYZE)'}; database {size}")
            print(f"[{orders:,}] {run.seeded}; starting the bot …", file=sys.stderr, flush=True)
            async with bot_process(env, log_path=RESULTS / f"commands-bot-{name}.log") as base, \
                    aiohttp.ClientSession() as session:
                run.typist = typist = Typist(session, base, secret, slack.url)
                await typist.run("", "warm-up", 10)
                await typist.run("", "today, sequential", args.requests)
                run.wall8 = await typist.run("", "today, 8 concurrent", args.requests, concurrency=8)
                for period in PERIODS[1:]:
                    await typist.run(period, period, args.period_requests)
            print(f"[{orders:,}] the guide's SQL, each lookup, EXPLAIN …", file=sys.stderr, flush=True)
            run.guide, run.guide_each = await guide_runs(dsn, args.requests, args.guide_seconds)
            run.per_lookup, queries = await lookup_times(dsn, reps=5)
            worst = max(queries, key=lambda q: run.per_lookup[q[0]][q[1]])
            today_worst = max((q for q in queries if q[1] == "today"), key=lambda q: run.per_lookup[q[0]][q[1]])
            guide_worst = max(run.guide_each, key=lambda n: percentile(run.guide_each[n], 50))
            for title, (sql, params) in {"ours, slowest lookup: {} ({})".format(*worst): queries[worst],
                                         "ours, slowest for today: {} ({})".format(*today_worst): queries[today_worst],
                                         f"guide, slowest query: {guide_worst}": (GUIDE[guide_worst], ())}.items():
                run.plans[title] = await explain(dsn, sql, params)
    finally:
        await slack.stop()
    return run


def report(args: argparse.Namespace, run: Run) -> tuple[str, list[object]]:
    """One size's Markdown section and its row of the summary table."""
    assert run.typist is not None
    lat, typist, guide = run.typist.latencies, run.typist, run.guide
    rows: list[list[object]] = [
        [f"/sales {label}", *(ms(percentile(lat[label], p)) for p in (50, 95, 99)), len(lat[label]),
         typist.failed[label], typist.missed[label]]
        for label in ["today, sequential", "today, 8 concurrent", *PERIODS[1:]]]
    rows.append(["guide's 4 queries, sequential", *(ms(percentile(guide, p)) for p in (50, 95, 99)), len(guide),
                 "—", "—"])
    ours = lat["today, sequential"]
    ratio50 = percentile(guide, 50) / percentile(ours, 50)
    ratio95 = percentile(guide, 95) / percentile(ours, 95)
    target, p95 = (0.100 if run.orders <= 1_000_000 else 0.300), percentile(ours, 95)
    out = [f"## {run.orders:,} orders over {args.days} days", "",
           f"{run.seeded[:1].upper()}{run.seeded[1:]}; {run.windows}.", "",
           markdown_table(["measure", "p50 ms", "p95 ms", "p99 ms", "n", "failed", "missed 2 s budget"], rows), "",
           f"- 8 concurrent: {args.requests / run.wall8:,.1f} replies/s",
           f"- target p95 < {target * 1000:.0f} ms (today, sequential): {ms(p95)} ms → "
           f"**{'met' if p95 < target else 'MISSED'}**",
           f"- guide p50 / ours p50 = **{ratio50:,.1f}×**, guide p95 / ours p95 = **{ratio95:,.1f}×**"
           + (f" → ≥ 10× **{'met' if ratio50 >= 10 and ratio95 >= 10 else 'MISSED'}**"
              if run.orders >= 10_000_000 else ""), "",
           "Each /sales lookup run alone (p50 ms of 5; /sales runs all nine at once) and each guide query:", "",
           markdown_table(["lookup", *PERIODS], [[n, *(ms(t.get(p, float("nan"))) for p in PERIODS)]
                                                  for n, t in run.per_lookup.items()]), "",
           markdown_table(["guide query", "p50 ms", "p95 ms"],
                          [[n, ms(percentile(v, 50)), ms(percentile(v, 95))] for n, v in run.guide_each.items()]),
           ""]
    for title, lines in run.plans.items():
        out += [f"EXPLAIN (ANALYZE, BUFFERS), {title}:", "", "```", *lines, "```", ""]
    summary: list[object] = [
        f"{run.orders:,}", ms(percentile(ours, 50)), ms(p95), ms(percentile(lat["today, 8 concurrent"], 95)),
        ms(max(percentile(lat[p], 95) for p in PERIODS[1:])), ms(percentile(guide, 50)),
        f"{ratio50:,.1f}×", f"{ratio95:,.1f}×"]
    return "\n".join(out), summary


async def main(args: argparse.Namespace) -> int:
    sizes = [args.orders] if args.orders else [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    info = await machine_info(args.admin_url)
    sections, summary = [], []
    for orders in sizes:
        section, row = report(args, await measure(args, orders))
        print(section, flush=True)
        sections.append(section)
        summary.append(row)
    head = "\n".join([
        "# /sales end to end vs the guide's SQL", "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; " + ", ".join(f"{k} {v}" for k, v in info.items())
        + f"; STORE_TIMEZONE {TZ}; {args.requests} requests per run, {args.period_requests} per other period.",
        "", markdown_table(["orders", "today p50 ms", "today p95 ms", "today p95 ms, 8 concurrent",
                            "worst other period p95 ms", "guide p50 ms", "guide/ours p50", "guide/ours p95"],
                           summary), ""])
    print("\n" + head, flush=True)
    path = write_result("commands.md", "\n".join([head, *sections]))
    print(f"\nwritten to {path}", file=sys.stderr)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000000,10000000", help="comma-separated order counts")
    p.add_argument("--orders", type=int, help="one size (instead of --sizes)")
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--requests", type=int, default=200, help="/sales requests per today run")
    p.add_argument("--period-requests", type=int, default=50, help="requests for each other period")
    p.add_argument("--guide-seconds", type=float, default=90, help="stop the guide's runs after this (≥ 10 runs)")
    p.add_argument("--subscriptions", type=int, default=0,
                   help="also seed this many subscriptions (their MRR ledger is read by every /sales)")
    p.add_argument("--admin-url", default=ADMIN_DSN)
    p.add_argument("--keep", action="store_true", help="keep the databases")
    p.add_argument("--analyze-only", action="store_true", help="ANALYZE instead of VACUUM (ANALYZE)")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
