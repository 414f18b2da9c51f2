"""The intake ceiling ratio, measured interleaved (run through `python bench/intake.py`).

Three servers run side by side on the same PostgreSQL, each on its own scratch database:
  ceiling  bench/naive_receiver.py — aiohttp, Stripe's signature check, one `INSERT` of the raw body per event in
           its own transaction (asyncpg pool of 10, the bot's pool size): the least a durable receiver can do;
  intake   the bot (`python -m bot run`): signed POST /webhooks/stripe → group commit → orders, outbox, rollups;
  bare     (no server) the same INSERTs straight from an asyncpg pool, no HTTP: the database's own ceiling.
With `--trigger-cost` a second bot runs on a database whose rollup triggers (0007, 0011) are disabled.

Each round sends every server the same number of fresh events (same payload bytes, same concurrency, from the
cheap load generator in bench/loadgen.py); the order of the servers rotates from round to round, and the
bot's outbox is drained between rounds so its Slack deliveries never overlap another server's round.
Ratios are per round (neighbours in time share the machine's mood); the median over rounds is the figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import asyncpg

from bench.common import Sale, checkout_completed, listening_pid, markdown_table, payment_events
from bench.loadgen import Blast, blast, blast_aiohttp, request_bytes

RAW_TABLE = ("CREATE TABLE IF NOT EXISTS bench_raw "
             "(id bigserial primary key, event_id text unique, payload jsonb)")
RAW_INSERT = "INSERT INTO bench_raw (event_id, payload) VALUES ($1, $2::jsonb)"
PENDING = "SELECT count(*) FROM outbox WHERE status = 'pending'"
# The rollup triggers of migrations 0007 and 0011, by table: what --trigger-cost turns off.
ROLLUP_TRIGGERS = {
    "orders": ("orders_rollup_insert", "orders_rollup_update", "orders_rollup_delete",
               "orders_sales_rollups_insert", "orders_sales_rollups_update", "orders_sales_rollups_delete"),
    "checkout_sessions": ("checkout_rollups_insert", "checkout_rollups_update", "checkout_rollups_delete"),
}
PATH = "/webhooks/stripe"


@dataclass(frozen=True)
class Target:
    """A server under test: its name, port, and the database whose outbox to drain after its round."""

    name: str
    port: int
    dsn: str
    drains: bool = False


@dataclass
class Rounds:
    """Events/s per target name, one entry per round, and everything sent to each target."""

    rates: dict[str, list[float]] = field(default_factory=dict)
    non_200: dict[str, int] = field(default_factory=dict)  # answers other than 2xx (202: stored, applied after)
    stored: dict[str, int] = field(default_factory=dict)  # 202 answers: stored in the inbox, applied after
    applied: dict[str, list[float]] = field(default_factory=dict)  # events/s until the last one was applied
    latencies: dict[str, list[float]] = field(default_factory=dict)
    sent: dict[str, list[Sale]] = field(default_factory=dict)
    loads: list[tuple[float, float, float]] = field(default_factory=list)  # os.getloadavg() per round
    # CPU seconds per round while the requests went out: (server process, every PostgreSQL process, load generator)
    cpu: dict[str, list[tuple[float, ...]]] = field(default_factory=dict)

    def ratio(self, a: str, b: str, *, applied: bool = False) -> list[float]:
        """a ÷ b, round by round: events/s answered, or (`applied`) until the last event was applied — for a target
        that does not drain (the ceiling) that is its answered rate."""
        series = self.applied if applied else self.rates
        return [x / y for x, y in zip(series[a], series[b], strict=True)]


async def disable_rollup_triggers(dsn: str) -> None:
    """Turn the rollup triggers off in a (scratch, migrated) database: the --trigger-cost baseline."""
    conn = await asyncpg.connect(dsn)
    try:
        for table, triggers in ROLLUP_TRIGGERS.items():
            for trigger in triggers:
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    finally:
        await conn.close()


# The bare inserts' connections at most: the servers' pools and the bench's own share the server's
# max_connections (100 by default), so --concurrency 128 must not open 128 more.
BARE_CONNECTIONS_MAX: Final = 40


async def bare_inserts(dsn: str, sales: list[Sale], concurrency: int) -> float:
    """Rows/s of plain single-row INSERTs of the same payloads (jsonb), one transaction each, no HTTP; as many in
    flight as `concurrency`, up to BARE_CONNECTIONS_MAX."""
    concurrency = min(concurrency, BARE_CONNECTIONS_MAX)
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    try:
        queue = iter(sales)

        async def worker() -> None:
            async with pool.acquire() as conn:
                for sale in queue:
                    await conn.execute(RAW_INSERT, sale.event_id, sale.body.decode())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(sales) / (time.perf_counter() - started)
    finally:
        await pool.close()


# A bot without an inbox (older code, --base) applies each event before answering it.
HAS_INBOX = "SELECT to_regclass('webhook_inbox') IS NOT NULL"
APPLIED = "SELECT NOT EXISTS (SELECT FROM webhook_inbox)"


async def applied(dsn: str, since: float, within: float = 300.0) -> float:
    """Seconds from `since` (perf_counter) until every answered event has been applied."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within
        while await conn.fetchval(HAS_INBOX) and not await conn.fetchval(APPLIED):
            if time.monotonic() > deadline:
                raise TimeoutError("inbox still holds events")
            await asyncio.sleep(0.01)
        return time.perf_counter() - since
    finally:
        await conn.close()


async def drained(dsn: str, within: float = 300.0) -> None:
    """Wait until the bot's outbox has nothing pending."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within
        while await conn.fetchval(PENDING):
            if time.monotonic() > deadline:
                raise TimeoutError("outbox still pending")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def _cpu_seconds(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def _postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process (the server is shared, so only differences mean anything)."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] and proc.info["name"].startswith("postgres"):
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
    return total


async def run_rounds(targets: list[Target], raw_dsn: str, *, tag: str, rounds: int, events: int,
                     concurrency: int, warmup: int = 300, client: str = "raw", per_payment: bool = False,
                     log: Callable[[str], None] = print) -> Rounds:
    """Warm every target up, then `rounds` rounds of `events` fresh events each, the order rotating. Events are
    checkout.session.completed, one per sale, or (`per_payment`) each sale's three events (common.payment_events)."""
    out = Rounds()
    serial = [0]
    pids: dict[int, int] = {}

    def fresh(n: int) -> list[Sale]:
        first, sales = serial[0], n // 3 if per_payment else n
        serial[0] += sales
        if per_payment:
            return payment_events(tag, first, sales)
        return [checkout_completed(tag, i) for i in range(first, first + sales)]

    async def one(target: Target, sales: list[Sale]) -> tuple[Blast, float]:
        """The round's answers, and events/s until the last one was applied (as answered for the ceiling)."""
        requests = [request_bytes(target.port, PATH, s) for s in sales]  # signed before the clock starts
        if target.port not in pids:  # looked up once: psutil lists every socket of the machine
            pids[target.port] = listening_pid(target.port)
        pid = pids[target.port]
        before = (_cpu_seconds(pid), _postgres_cpu(), time.process_time())
        started = time.perf_counter()
        if client == "aiohttp":
            result = await blast_aiohttp(target.port, sales, concurrency)
        else:
            result = await blast(target.port, requests, concurrency)
        rate = len(sales) / await applied(target.dsn, started) if target.drains else result.rate
        after = (_cpu_seconds(pid), _postgres_cpu(), time.process_time())
        out.cpu.setdefault(target.name, []).append(tuple(b - a for a, b in zip(before, after, strict=True)))
        if target.drains:
            await drained(target.dsn)
        out.sent.setdefault(target.name, []).extend(sales)
        return result, rate

    for target in targets:
        await one(target, fresh(warmup))
    names = [t.name for t in targets] + ["bare"]
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            sales = fresh(events)
            if name == "bare":
                rate = await bare_inserts(raw_dsn, sales, concurrency)
            else:
                result, applied_rate = await one(next(t for t in targets if t.name == name), sales)
                rate = result.rate
                out.applied.setdefault(name, []).append(applied_rate)
                out.non_200[name] = out.non_200.get(name, 0) + result.non_200
                out.stored[name] = out.stored.get(name, 0) + result.statuses[202]
                out.latencies.setdefault(name, []).extend(result.latencies)
            out.rates.setdefault(name, []).append(rate)
        out.loads.append(os.getloadavg())
        log(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {out.rates[n][-1]:,.0f}/s" for n in names)
            + f"; load {out.loads[-1][0]:.1f}")
    return out


def report(rounds: Rounds, *, events: int, concurrency: int, per_payment: bool = False) -> str:
    """The per-round table and the medians."""
    names = list(rounds.rates)
    with_triggers = "intake" in names and "no-triggers" in names
    # Answered is what the sender sees; applied counts until the last event of the round was applied (orders,
    # messages), which for the intake includes the events it stored in its inbox and answered 202.
    header = ["round", *(f"{n} events/s" for n in names), "intake applied events/s", "intake ÷ ceiling",
              "intake applied ÷ ceiling"]
    header += ["intake ÷ no-triggers"] if with_triggers else []
    with_base = "base" in names  # bench/intake.py --base: the other checkout's bot in the same rounds
    header += ["base ÷ ceiling", "intake ÷ base", "intake applied ÷ base applied"] if with_base else []
    header += ["load (1 min)"]
    rows: list[list[object]] = []
    ratio = rounds.ratio("intake", "ceiling")
    applied = rounds.applied["intake"]
    applied_ratio = rounds.ratio("intake", "ceiling", applied=True)
    trig = rounds.ratio("intake", "no-triggers") if with_triggers else []
    base = [rounds.ratio("base", "ceiling"), rounds.ratio("intake", "base"),
            rounds.ratio("intake", "base", applied=True)] if with_base else []
    for i in range(len(ratio)):
        row: list[object] = [i + 1, *(f"{rounds.rates[n][i]:,.0f}" for n in names), f"{applied[i]:,.0f}",
                             f"{ratio[i]:.2f}", f"{applied_ratio[i]:.2f}"]
        row += [f"{trig[i]:.2f}"] if with_triggers else []
        row += [f"{b[i]:.2f}" for b in base]
        rows.append([*row, f"{rounds.loads[i][0]:.1f}"])
    medians: list[object] = ["**median**", *(f"{statistics.median(rounds.rates[n]):,.0f}" for n in names),
                             f"{statistics.median(applied):,.0f}", f"**{statistics.median(ratio):.2f}**",
                             f"**{statistics.median(applied_ratio):.2f}**"]
    medians += [f"**{statistics.median(trig):.2f}**"] if with_triggers else []
    medians += [f"**{statistics.median(b):.2f}**" for b in base]
    rows.append([*medians, ""])
    cpu = []
    for name, samples in rounds.cpu.items():
        per = [[x * 1000 / events * 1000 for x in s] for s in samples[1:]]  # ms per 1,000 events; no warm-up
        cpu.append([name, *(f"{statistics.median(col):,.0f}" for col in zip(*per, strict=True))])
    non_2xx = ", ".join(f"{n} {k}" for n, k in rounds.non_200.items())
    stored = ", ".join(f"{n} {k}" for n, k in rounds.stored.items() if n != "ceiling")
    return "\n\n".join([
        f"{len(ratio)} interleaved rounds of {events:,} signed "
        + ("events per server, each sale's checkout.session.completed, payment_intent.succeeded and charge.succeeded"
           " about 300 events apart" if per_payment else "checkout.session.completed events per server") + ", "
        f"{concurrency} in flight (order rotating each round); answers other than 2xx: {non_2xx}; "
        f"202 (stored in the inbox, applied after): {stored}.",
        markdown_table(header, rows),
        "CPU per 1,000 events while they were sent and applied (median of the rounds; PostgreSQL is every server "
        "process, so it includes anything else the server did):",
        markdown_table(["server", "server process ms", "PostgreSQL ms", "load generator ms"], cpu),
    ])
