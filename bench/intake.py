"""Webhook intake benchmark: the intake ceiling ratio — events/s through the real signed POST /webhooks/stripe
÷ a plain receiver doing one INSERT transaction per event, measured in interleaved rounds (bench/ceiling.py) —
then webhook → Slack ping latency, then a correctness check. From the repository root:

    python bench/intake.py [--rounds R] [--events N] [--concurrency C] [--trigger-cost] [--base DIR]
                           [--database-url ADMIN_DSN]
    python bench/intake.py --delivery-only [--open-loop-rate R] [--burst-sales N] [--outage-sales N --outage-seconds S]

`--trigger-cost` adds a bot without rollup triggers to the rounds, `--base DIR` the bot of another checkout;
`--client aiohttp` is the old load generator.
The bots run as their own processes (`python -m bot run`) on scratch databases, posting to a fake Slack served
here. Targets: intake ÷ ceiling ≥ 1.0, ≥ 1,000 events/s, ping p95 < 1 s, bot RSS < 150 MiB."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import asyncpg

from bench import ceiling, delivery
from bench.common import (
    ADMIN_DSN,
    RESULTS,
    Sale,
    TimedSlack,
    bot_env,
    bot_process,
    checkout_completed,
    free_port,
    listening_pid,
    machine_info,
    markdown_table,
    percentile,
    scratch_database,
    stripe_headers,
    write_result,
)
from bench.loadgen import non_2xx
from bot.money import format_money

PENDING = "SELECT count(*) FROM outbox WHERE status = 'pending'"
# Each sale row with the Slack message that covers it: its own, or the burst summary it was folded into.
SALES = """
SELECT s.dedupe_key, s.amount, s.currency, s.status, s.slack_ts, s.coalesced_into,
       b.kind AS burst_kind, b.status AS burst_status, b.slack_ts AS burst_ts
  FROM outbox AS s LEFT JOIN outbox AS b ON b.id = s.coalesced_into
 WHERE s.kind = 'sale' AND s.op = 'post'  -- not its edits
"""
# CProfile the bot instead of running it plainly (--profile): bench-side only, no bot code involved.
PROFILED = ("import cProfile, sys; from bot.cli.main import main; p = cProfile.Profile(); p.enable(); "
            "main(['run']); p.disable(); p.dump_stats(sys.argv[1])")

# The bot of another checkout: its tree first on sys.path (`python -m` would put this one's first).
BASE_BOT = "import sys; sys.path.insert(0, sys.argv[1]); from bot.cli.main import main; main(['run'])"


@dataclass
class Load:
    """What a batch of webhook deliveries got back."""

    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int | str] = field(default_factory=Counter)

    @property
    def non_200(self) -> int:
        return non_2xx(self.statuses)


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
    ids = sorted({s.order_id for s in sales})  # one per sale, whatever number of events told it
    keys = ["sale:" + i for i in ids]
    orders = await db.fetchval("SELECT count(*) FROM orders")
    ours = await db.fetchval("SELECT count(*) FROM orders WHERE id = ANY($1::text[])", ids)
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
        (f"orders == sales sent ({orders} / {len(ids)})", orders == ours == len(ids)),
        (f"webhook_logs processed == events sent ({logged} / {len(sales)})", logged == len(sales)),
        (f"one sale outbox row per sale ({len(rows)})", len(rows) == len(ids)),
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


async def run(args: argparse.Namespace) -> int:  # long: one bench run, its servers and its report
    if args.delivery_only:
        return await run_delivery(args)
    tag, c = uuid.uuid4().hex[:8], args.concurrency
    n_pings = round(args.ping_rate * args.ping_seconds)
    async with contextlib.AsyncExitStack() as stack:
        dsn = await stack.enter_async_context(scratch_database(args.database_url, args.db_name))
        raw_dsn = await stack.enter_async_context(scratch_database(args.database_url, args.db_name + "_raw"))
        info = await machine_info(dsn)
        raw = await asyncpg.connect(raw_dsn)
        await raw.execute(ceiling.RAW_TABLE)
        await raw.close()
        fake = await TimedSlack().start()
        stack.push_async_callback(fake.stop)
        env = bot_env(database_url=dsn, port=free_port(), slack_api_url=fake.url)
        argv = [sys.executable, "-c", PROFILED, str(args.profile)] if args.profile else None
        base = await stack.enter_async_context(bot_process(env, log_path=RESULTS / "intake-bot.log", argv=argv))
        naive_env = bot_env(database_url=raw_dsn, port=free_port(), slack_api_url="http://127.0.0.1:9/")
        await stack.enter_async_context(bot_process(
            naive_env, log_path=RESULTS / "naive-receiver.log",
            argv=[sys.executable, str(Path(__file__).with_name("naive_receiver.py"))]))
        targets = [ceiling.Target("ceiling", int(naive_env["PORT"]), raw_dsn),
                   ceiling.Target("intake", int(env["PORT"]), dsn, drains=True)]
        if args.trigger_cost:
            targets.append(await _no_triggers_bot(stack, args))
        if args.base:
            targets.append(await _base_bot(stack, args))
        bot_pid = listening_pid(int(env["PORT"]))
        rss_start = rss_mib(bot_pid)
        rounds = await ceiling.run_rounds(targets, raw_dsn, tag=tag, rounds=args.rounds, events=args.events,
                                          concurrency=c, client=args.client, per_payment=args.payment_events,
                                          log=lambda line: print(line, file=sys.stderr))
        rss_mid = rss_mib(bot_pid)
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)))
        url = f"{base}/webhooks/stripe"
        db = await asyncpg.connect(dsn)
        stack.push_async_callback(db.close)
        posts_before = len(fake.received)
        pings = [checkout_completed(tag + "p", i) for i in range(n_pings)]
        await asyncio.sleep(1.5)  # past the channel's pace: the first ping goes out alone
        ping_load, sent = await ping_stream(session, url, pings, args.ping_rate)
        await drained(db)
        rss_end = rss_mib(bot_pid)
        found = {r["dedupe_key"]: covering_ts(r) for r in await db.fetch(SALES)}
        waits = [fake.received[ts] - sent[k] for k in sent if (ts := found.get(k)) in fake.received]
        checks = await verify(db, fake, rounds.sent["intake"] + pings)

    non_200 = sum(rounds.non_200.values()) + ping_load.non_200
    ping_p95 = percentile(waits, 95)
    lat = rounds.latencies["intake"]
    ratio = statistics.median(rounds.ratio("intake", "ceiling"))
    rows = [
        ("intake ÷ ceiling, median of the rounds", f"**{ratio:.2f}**", "≥ 1.0", verdict(ratio >= 1.0)),
        ("intake throughput, median of the rounds", f"{statistics.median(rounds.rates['intake']):,.0f} events/s",
         "≥ 1,000/s", verdict(statistics.median(rounds.rates["intake"]) >= 1000)),
        ("intake HTTP latency p50 / p95 / p99", f"{ms(percentile(lat, 50))} / {ms(percentile(lat, 95))} / "
         f"{ms(percentile(lat, 99))}", "", ""),
        ("answers other than 2xx", f"{non_200}", "0", verdict(non_200 == 0)),
        ("bot RSS: started / after the rounds / after the ping run", f"{rss_start:.0f} / {rss_mid:.0f} / "
         f"{rss_end:.0f} MiB", "< 150 MiB", verdict(max(rss_start, rss_mid, rss_end) < 150)),
        ("ping webhook → Slack p50 / p95 / max", f"{ms(percentile(waits, 50))} / **{ms(ping_p95)}** / "
         f"{ms(max(waits, default=float('nan')))} ({len(waits)}/{n_pings} pings at {args.ping_rate:g}/s, "
         f"{len(fake.received) - posts_before} posts)", "p95 < 1 s",
         verdict(ping_p95 < 1 and len(waits) == n_pings)),
        *((f"check: {name}", "", "", verdict(ok)) for name, ok in checks),
    ]
    report = "\n\n".join([
        "## salespulse webhook intake benchmark",
        markdown_table(["machine", ""], list(info.items())),
        ceiling.report(rounds, events=args.events, concurrency=c, per_payment=args.payment_events),
        markdown_table(["measure", "result", "target", ""], rows),
        "Bot: `python -m bot run` (pool of 10 connections); load generator, fake Slack, bot and PostgreSQL "
        "share the same cores. Ratios are per round, neighbours in time; absolute figures vary with machine noise.",
    ])
    print(report)
    print(f"\n(saved to {write_result('intake.md', report)})", file=sys.stderr)
    if args.delivery:
        await run_delivery(args)
    return 0 if all(ok for _, ok in checks) and non_200 == 0 else 1


async def _no_triggers_bot(stack: contextlib.AsyncExitStack, args: argparse.Namespace) -> ceiling.Target:
    """A second bot on its own database and fake Slack, with the rollup triggers turned off."""
    dsn = await stack.enter_async_context(scratch_database(args.database_url, args.db_name + "_notrig"))
    fake = await TimedSlack().start()
    stack.push_async_callback(fake.stop)
    env = bot_env(database_url=dsn, port=free_port(), slack_api_url=fake.url)
    await stack.enter_async_context(bot_process(env, log_path=RESULTS / "intake-bot-notrig.log"))
    await ceiling.disable_rollup_triggers(dsn)  # after the bot has applied the migrations
    return ceiling.Target("no-triggers", int(env["PORT"]), dsn, drains=True)


async def _base_bot(stack: contextlib.AsyncExitStack, args: argparse.Namespace) -> ceiling.Target:
    """The bot of another checkout (`--base`, e.g. a `git worktree` of the previous commit), in the same rounds."""
    dsn = await stack.enter_async_context(scratch_database(args.database_url, args.db_name + "_base"))
    fake = await TimedSlack().start()
    stack.push_async_callback(fake.stop)
    env = bot_env(database_url=dsn, port=free_port(), slack_api_url=fake.url)
    env["PYTHONPATH"] = str(args.base.resolve())
    argv = [sys.executable, "-c", BASE_BOT, str(args.base.resolve())]
    await stack.enter_async_context(bot_process(env, log_path=RESULTS / "intake-bot-base.log", argv=argv))
    return ceiling.Target("base", int(env["PORT"]), dsn, drains=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="events per server per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved ceiling/intake rounds")
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw",
                        help="load generator: pre-built requests on raw sockets, or an aiohttp session")
    parser.add_argument("--trigger-cost", action="store_true",
                        help="also a bot whose rollup triggers are off, in the same rounds")
    parser.add_argument("--base", type=Path,
                        help="also the bot of this other checkout (e.g. the previous commit), in the same rounds")
    parser.add_argument("--concurrency", type=int, default=32, help="requests (and INSERTs) in flight")
    parser.add_argument("--payment-events", action="store_true",
                        help="each sale as its three events (checkout, PaymentIntent, charge) rather than one")
    parser.add_argument("--database-url", default=ADMIN_DSN, help="admin DSN used to create the bench db")
    parser.add_argument("--db-name", default="salespulse_bench_intake")
    parser.add_argument("--ping-rate", type=float, default=4.0, help="events/s in the ping-latency run")
    parser.add_argument("--ping-seconds", type=float, default=15.0)
    parser.add_argument("--profile", type=Path, help="run the bot under cProfile, stats to this file")
    delivery.add_arguments(parser)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
