"""Group commit for the webhook intake: concurrent events share one transaction and one set of statements.

Each webhook still gets its 2xx only after the transaction holding its event, its order changes and its
Slack message has committed. Under load, requests that arrive while a batch is being written wait for the
next one, so a burst costs a dozen statements per batch instead of a dozen per event; when traffic is light
a batch is a single event and nothing waits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import asyncpg

from bot.clock import Clock
from bot.intake.events import Kind, PaymentEvent
from bot.intake.fold import Fold
from bot.intake.single import PAYLOAD_ERRORS, IntakeResult, Outcome, ingest
from queries import intake as single
from queries import intake_batch as q

log = logging.getLogger(__name__)

MAX_BATCH = 200
_NEEDS_ORDERS = (Kind.SALE, Kind.PENDING, Kind.FAILURE, Kind.REFUND, Kind.DISPUTE)


@dataclass(frozen=True, slots=True)
class Submission:
    """One verified, parsed webhook."""

    source: str
    event_id: str
    event_type: str
    body: str  # the raw JSON text, stored as received
    event: PaymentEvent | None
    via: str = "webhook"  # how it arrived: webhook | events_api | recovered | backfill (webhook_logs.via)


async def ingest_batch(conn: asyncpg.Connection, subs: list[Submission], *, tz: ZoneInfo,
                       now: dt.datetime, notify: bool = True) -> list[IntakeResult]:
    """Apply a batch in one transaction, with the same effects as `ingest()` on each event in order.

    `notify=False` stores everything and queues no Slack message (`salespulse backfill` imports history)."""
    async with conn.transaction():
        seen: set[tuple[str, str]] = set()
        rows = []
        for s in subs:
            if (s.source, s.event_id) not in seen:
                seen.add((s.source, s.event_id))
                rows.append((s.source, s.event_id, s.event_type, "processed" if s.event else "ignored", s.body,
                             bool(s.event and s.event.livemode), s.event.occurred_at if s.event else None, s.via))
        new = await q.log_webhooks(conn, rows)
        results = [IntakeResult(Outcome.DUPLICATE)] * len(subs)
        todo: list[tuple[int, PaymentEvent]] = []
        for i, s in enumerate(subs):
            if (s.source, s.event_id) not in new:
                continue
            new.discard((s.source, s.event_id))  # a second copy in the same batch is a duplicate
            if s.event is None:
                results[i] = IntakeResult(Outcome.IGNORED)
            else:
                todo.append((i, s.event))
        fold = Fold(tz=tz, now=now, notify=notify)
        refs = sorted({r for _, e in todo if e.kind in _NEEDS_ORDERS for r in e.refs})
        if refs:
            await single.lock_refs(conn, refs)
            for ref, row in await q.orders_by_refs(conn, refs):
                fold.load(ref, row)
        for i, e in todo:
            fold.apply(i, e)
        await q.write_orders(conn, fold.orders.values())
        await q.add_refs(conn, fold.new_refs)
        await q.upsert_checkouts(conn, fold.checkouts.values())
        await q.insert_failures(conn, fold.failures)
        await q.insert_disputes(conn, list(fold.disputes.values()))
        queued = await q.enqueue(conn, fold.messages)
    counts = [0] * len(subs)
    for m in fold.messages:
        if m.dedupe_key in queued:
            counts[m.event_index] += 1
    for i, _ in todo:
        results[i] = IntakeResult(Outcome.PROCESSED, counts[i])
    return results


@dataclass
class _Pending:
    sub: Submission
    future: asyncio.Future[IntakeResult]


class IntakeBatcher:
    """Collects concurrent submissions and writes them in batches; `submit()` returns once committed."""

    def __init__(self, *, pool: asyncpg.Pool, tz: ZoneInfo, clock: Clock, writers: int = 2,
                 max_batch: int = MAX_BATCH) -> None:
        self._pool = pool
        self._tz = tz
        self._clock = clock
        self._writers = writers
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()

    async def submit(self, sub: Submission) -> IntakeResult:
        """Store and apply one event; raises what the database raised (so the caller can answer 503)."""
        future: asyncio.Future[IntakeResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(sub, future))
        return await future

    async def run(self) -> None:
        """The writer tasks: each takes whatever is waiting (up to max_batch) and commits it."""
        async with asyncio.TaskGroup() as group:
            for n in range(self._writers):
                group.create_task(self._writer(), name=f"intake-writer-{n}")

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            async with self._pool.acquire() as conn:
                try:
                    results = await ingest_batch(conn, [p.sub for p in batch], tz=self._tz, now=self._clock())
                except (*PAYLOAD_ERRORS, asyncpg.DeadlockDetectedError) as exc:
                    # One odd event must not fail its neighbours: redo them one by one, each in its own
                    # transaction, where a payload error is recorded against that event alone.
                    log.info("batch of %d fell back to single events: %s", len(batch), exc)
                    results = [await self._one(conn, p.sub) for p in batch]
        except BaseException as exc:
            # Every waiter must learn the outcome: database down (→ 503), or shutdown mid-batch.
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc if isinstance(exc, Exception) else ConnectionAbortedError(
                        "intake stopped"))
            if not isinstance(exc, Exception):
                raise
            return
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)

    async def _one(self, conn: asyncpg.Connection, sub: Submission) -> IntakeResult:
        return await ingest(conn, source=sub.source, event_id=sub.event_id, event_type=sub.event_type,
                            payload=json.loads(sub.body), event=sub.event, tz=self._tz, now=self._clock(),
                            via=sub.via)

