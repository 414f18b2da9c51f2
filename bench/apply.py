"""Where the intake's apply spends its time, statement by statement: new checkout sales stored in the inbox, then
taken and applied in batches (the path every webhook takes under load). From the repository root:

    python bench/apply.py [--batches 60] [--batch-size 90] [--payment-events] [--database-url postgresql://…/postgres]

Each statement's time is measured at the client (the wait for its answer, round trip included), summed over the
batches after the first ten (plans and caches warm) and divided by the events; so is this process's CPU time
storing and applying (the Python side of the intake, parsing left out). A scratch database is created and
dropped. Compare two checkouts by running it from each, one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ADMIN_DSN, checkout_completed, payment_events, scratch_database
from bot.db import init_connection, migrate
from bot.intake.batch import ingest_batch
from bot.stripe.received import submission
from queries import inbox

WARM = 10  # batches left out of the figures


class StatementClock:
    """Seconds spent waiting for each statement (first 70 characters, spaces folded) and how often it ran."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.runs: Counter[str] = Counter()
        self.cpu = 0.0  # this process's CPU seconds storing and applying (parsing left out)

    def add(self, query: str, seconds: float) -> None:
        if query.lstrip().upper().startswith(("SAVEPOINT", "RELEASE")):
            return  # asyncpg's nested transactions: none on the common path
        key = " ".join(query.split())[:70]
        self.seconds[key] += seconds
        self.runs[key] += 1

    def clear(self) -> None:
        self.seconds.clear()
        self.runs.clear()
        self.cpu = 0.0


@contextmanager
def timed(clock: StatementClock) -> Iterator[None]:
    """Time every statement an asyncpg connection sends while the block runs."""
    conn_cls: Any = asyncpg.connection.Connection
    original_execute, original_inner = conn_cls.execute, conn_cls._execute

    def wrap(method: Callable[..., Any], query_of: Callable[..., str]) -> Callable[..., Any]:
        async def measured(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(self, *args, **kwargs)
            finally:
                clock.add(query_of(*args), time.perf_counter() - started)
        return measured

    # execute() without arguments is a simple query (BEGIN, COMMIT, SET); with arguments it goes through _execute.
    conn_cls._execute = wrap(original_inner, lambda query, *_: query)
    conn_cls.execute = wrap(original_execute, lambda query, *args, **_: "" if args else query)
    try:
        yield
    finally:
        conn_cls.execute, conn_cls._execute = original_execute, original_inner


async def run(args: argparse.Namespace) -> StatementClock:
    clock, tz, tag = StatementClock(), ZoneInfo("UTC"), f"{time.time_ns() % 10**8:08d}"
    async with scratch_database(args.database_url, "salespulse_bench_apply") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
            await init_connection(conn)  # the bot's codecs (jsonb as dicts), as its pool sets them
            events = args.batches * args.batch_size
            sales = (payment_events(tag, 0, events // 3 + 1)[:events] if args.payment_events
                     else [checkout_completed(tag, i) for i in range(events)])
            with timed(clock):
                for n in range(args.batches):
                    first = n * args.batch_size
                    subs = [submission(s.body.decode()) for s in sales[first:first + args.batch_size]]
                    if n == WARM:
                        clock.clear()
                    cpu = time.process_time()
                    ids = await inbox.store(conn, [inbox.Received(s.source, s.via, s.event_id, s.body)
                                                   for s in subs])
                    async with conn.transaction():
                        await inbox.take(conn, ids)
                        await ingest_batch(conn, subs, tz=tz, now=dt.datetime.now(dt.UTC))
                    clock.cpu += time.process_time() - cpu
        finally:
            await conn.close()
    clock.seconds.pop("", None)
    return clock


def report(clock: StatementClock, events: int) -> str:
    lines = ["| µs per event | runs | statement |", "|---|---|---|"]
    for key, seconds in sorted(clock.seconds.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {seconds * 1e6 / events:,.1f} | {clock.runs[key]} | `{key}` |")
    lines.append(f"| **{sum(clock.seconds.values()) * 1e6 / events:,.1f}** | | total, at the client |")
    lines.append(f"| {clock.cpu * 1e6 / events:,.1f} | | the bench's own CPU storing and applying (Python, asyncpg, "
                 "the timing above), parsing left out |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=90)
    parser.add_argument("--payment-events", action="store_true",
                        help="each sale's three events, apart (bench/common.py payment_events), not checkouts alone")
    parser.add_argument("--database-url", default=ADMIN_DSN, help="a server where a scratch database may be made")
    args = parser.parse_args()
    if args.batches <= WARM:
        parser.error(f"--batches must be more than {WARM} (the first {WARM} warm up)")
    clock = asyncio.run(run(args))
    print(report(clock, (args.batches - WARM) * args.batch_size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
