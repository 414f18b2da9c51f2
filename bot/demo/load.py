"""Load generated store history into PostgreSQL by COPY.

`load` copies everything in one transaction on one connection, generating the next chunk in a thread meanwhile
(the demo, the tests). `load_parallel` (`salespulse seed`) hands the parts of the run to worker processes, each
generating its part and copying it in a transaction of its own, rollup triggers on: generating 10 M orders and
encoding them for COPY is more Python than one core does in the time PostgreSQL takes to store them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import multiprocessing
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor

import asyncpg

from bot.demo.seed import Batch, Part, SeedCounts, SeedSpec, generate_part, parts
from queries import seed as q

DEADLOCK_RETRIES = 3  # two parts' triggers can lock the same rollup rows in opposite orders: redo the part


async def load(conn: asyncpg.Connection, batches: Iterable[Batch], *,
               progress: Callable[[SeedCounts], None] | None = None) -> SeedCounts:
    """COPY every batch in one transaction (all or nothing) on a plain connection; return the totals.

    The rollup triggers are off during the COPY when the role may turn them off, and the rollups are rebuilt
    once at the end, in the same transaction: readers never see orders without their rollups.
    """
    totals = SeedCounts()
    async with conn.transaction(), _ahead(iter(batches)) as chunks:
        deferred = await q.triggers_off(conn)
        async for batch in chunks:
            await _copy(conn, batch)
            totals = totals.plus(batch)
            if progress is not None:
                progress(totals)
        if deferred is not None:
            await q.rebuild_rollups(conn, deferred)
    return totals


@contextlib.asynccontextmanager
async def _ahead(source: Iterable[Batch]) -> AsyncIterator[AsyncIterator[Batch]]:
    """The batches, the next one generated in a thread while PostgreSQL digests this one."""
    chunks = iter(source)
    upcoming = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))

    async def each() -> AsyncIterator[Batch]:
        nonlocal upcoming
        while (batch := await upcoming) is not None:
            upcoming = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
            yield batch

    try:
        yield each()
    finally:
        await asyncio.wait([upcoming])  # on failure too: no thread is left generating after we return


async def load_parallel(dsn: str, spec: SeedSpec, *, workers: int,
                        progress: Callable[[SeedCounts], None] | None = None) -> SeedCounts:
    """Every part of the run generated and copied by one of `workers` processes, each part in a transaction of
    its own with the rollup triggers on (so any role can seed, and every commit leaves the rollups right). If
    a part fails, the others are stopped and whatever the run had committed is deleted again."""
    loop = asyncio.get_running_loop()
    totals = SeedCounts()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as executor:
        # The workers take parts from both halves of the run in turn: parts next to each other in time share
        # a day's rollup rows, and the second would wait for the first one's commit.
        run = parts(spec)
        half = (len(run) + 1) // 2
        ordered = [p for pair in itertools.zip_longest(run[:half], run[half:]) for p in pair if p is not None]
        futures = [loop.run_in_executor(executor, copy_part, dsn, spec, part) for part in ordered]
        try:
            for next_done in asyncio.as_completed(futures):
                counts = await next_done
                totals = SeedCounts(totals.orders + counts.orders, totals.failed + counts.failed,
                                    totals.sessions + counts.sessions, totals.webhook_logs + counts.webhook_logs)
                if progress is not None:
                    progress(totals)
        except BaseException:
            for future in futures:
                future.cancel()
            executor.shutdown(wait=True, cancel_futures=True)
            conn = await asyncpg.connect(dsn)
            try:
                await q.delete_run(conn, spec.token)
            finally:
                await conn.close()
            raise
    return totals


def copy_part(dsn: str, spec: SeedSpec, part: Part) -> SeedCounts:
    """A worker process's job: generate one part and COPY it in one transaction; what it added."""
    gc.disable()  # millions of short-lived tuples and no cycles: the collector would only rescan them
    try:
        return asyncio.run(_copy_part(dsn, spec, part))
    finally:
        gc.enable()


async def _copy_part(dsn: str, spec: SeedSpec, part: Part) -> SeedCounts:
    conn = await asyncpg.connect(dsn)  # plain: binary COPY needs asyncpg's own jsonb codec (see queries.seed)
    try:
        for attempt in range(DEADLOCK_RETRIES + 1):
            totals = SeedCounts()
            try:
                async with conn.transaction():
                    for batch in generate_part(spec, part):
                        await _copy(conn, batch)
                        totals = totals.plus(batch)
                return totals
            except asyncpg.DeadlockDetectedError:
                if attempt == DEADLOCK_RETRIES:
                    raise
        raise AssertionError("unreachable")
    finally:
        await conn.close()


async def _copy(conn: asyncpg.Connection, batch: Batch) -> None:
    """COPY one batch, table by table."""
    if batch.orders:  # first: payment_failures.order_id refers to them
        await q.copy_orders(conn, batch.orders)
    if batch.failures:
        await q.copy_payment_failures(conn, batch.failures)
    if batch.sessions:
        await q.copy_checkout_sessions(conn, batch.sessions)
    if batch.webhook_logs:
        await q.copy_webhook_logs(conn, batch.webhook_logs)
