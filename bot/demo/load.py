"""Load generated store history into PostgreSQL by COPY, overlapping generation with the database's work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import asyncpg

from bot.demo.seed import Batch, SeedCounts
from queries import seed as q


async def load(conn: asyncpg.Connection, batches: Iterable[Batch], *,
               progress: Callable[[SeedCounts], None] | None = None,
               finishing: Callable[[], None] | None = None) -> SeedCounts:
    """COPY every batch in one transaction (all or nothing) on a plain connection; return the totals.

    The rollup triggers are off during the COPY when the role may turn them off, and the rollups are rebuilt
    once at the end, in the same transaction: readers never see orders without their rollups. Into empty tables,
    their plain indexes are built after the COPY too (queries.seed.set_aside_if_empty). `progress` hears of each
    chunk copied, `finishing` that the rows are in and the indexes and rollups are being built (a minute at 10 M).
    """
    totals = SeedCounts()
    chunks = iter(batches)
    # The next chunk is generated in a thread while PostgreSQL digests this one: the two overlap.
    upcoming = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
    try:
        async with conn.transaction(), q.micros_times(conn):
            deferred = await q.triggers_off(conn)
            aside = await q.set_aside_if_empty(conn)
            while (batch := await upcoming) is not None:
                upcoming = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
                await _copy(conn, batch)
                totals = totals.plus(batch)
                if progress is not None:
                    progress(totals)
            if finishing is not None:
                finishing()
            await q.restore(conn, aside)
            if deferred is not None:
                await q.rebuild_rollups(conn, deferred)
    finally:
        await asyncio.wait([upcoming])  # on failure too: no thread is left generating after we return
    return totals


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
