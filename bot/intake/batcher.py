"""Group commit for the webhook intake, and the inbox it falls back on when every writer is busy.

A submission waits for a writer, which applies everything waiting in one transaction (`ingest_batch`) and answers
each with its outcome: when traffic is light that is a batch of one and the 2xx says what was done. When every
writer is busy, a webhook does not wait behind them: everything waiting is stored as received in the inbox in one
statement (migration 0018) and answered 202 once that commits, and the writers apply the inbox in batches of 100,
oldest first, each deleting its rows in the transaction that applies them. So the sender's answer never waits on
the apply, and the apply's per-batch costs are shared by a hundred events instead of a handful.

A row is applied by the process that stored it (it still holds the parsed event); a row left in the inbox longer
than `left_after` — its process stopped, or is far behind — is taken and parsed again by any replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import asyncpg

from bot.clock import Clock
from bot.config import Settings
from bot.db import DB_UNAVAILABLE
from bot.intake.batch import MAX_BATCH, Submission, ingest_batch
from bot.intake.inbox_apply import Applied, apply_stored
from bot.intake.result import IntakeResult, Outcome
from bot.subscriptions.renewals import Renewals
from queries import inbox

log = logging.getLogger(__name__)

# Events per inbox transaction: the apply costs the same per event from ~100 up, and a batch's Python work holds
# the event loop, and every answer waiting on a store, ~1.5 ms (500: 7–8 ms at a time, 6 % fewer answers).
INBOX_BATCH = 100
# Inbox stores in flight at once: while one waits for its commit, the next takes what arrived meanwhile.
STORERS = 2
# One writer applies the inbox; a second joins only when this many wait, so batches stay large.
SECOND_APPLIER_AT = 100
LEFT_AFTER = 10.0  # seconds before a stored event counts as left behind by its process
LOOK_EVERY = 2.0  # seconds between looks for events left behind
RETRY_AFTER = 1.0  # seconds before applying stored events again after the database failed
# A batch that deadlocked is redone an event per transaction; an event that deadlocks again (with the inbox's
# large batch, say) is tried this often before its sender hears 503 and retries later.
EVENT_TRIES = 3

Rebuild = Callable[[inbox.Received], Submission]  # a stored body parsed again (another process stored it)


@dataclass
class _Pending:
    sub: Submission
    future: asyncio.Future[IntakeResult]
    may_store: bool  # the caller accepts "stored, applied soon" (202) when every writer is busy


class IntakeBatcher:  # long: the writers, the inbox and the look for events left behind share their state
    """Collects concurrent submissions and writes them in batches; `submit()` returns once committed."""

    def __init__(self, *, pool: asyncpg.Pool, tz: ZoneInfo, clock: Clock, writers: int = 2,
                 max_batch: int = MAX_BATCH, settle: dt.timedelta = dt.timedelta(0),
                 renewals: Renewals = Renewals.PING, rebuild: Rebuild | None = None, stripe_key: bool = True,
                 inbox_batch: int = INBOX_BATCH, left_after: float = LEFT_AFTER) -> None:
        self._pool = pool
        self._settle = settle
        self._renewals, self._stripe_key = renewals, stripe_key  # the key: whether tiered prices will be read
        self.tz = tz  # the store's zone, for message text; replaced when it changes from Slack
        self._clock = clock
        self._writers = writers
        self.max_batch = max_batch  # events per direct batch (the soak lowers it to send most through the inbox)
        self._inbox_batch = inbox_batch
        self._left_after = left_after
        self.rebuild = rebuild  # without it, events left behind by another process wait for one that has it
        self.on_applied: Callable[[Applied], None] = lambda applied: None  # inbox events applied, committed
        self._queue: deque[_Pending] = deque()
        self._stored: OrderedDict[int, Submission] = OrderedDict()  # stored by this process, not yet applied
        self._busy = 0
        self._in_hand = 0  # events the writers are applying
        self._storing = 0  # events being stored
        self._applying = 0  # events the writers are applying from the inbox
        self._work = asyncio.Event()
        self._finished = asyncio.Event()  # a writer finished a batch (drain() looks again)

    @classmethod
    def for_settings(cls, settings: Settings, *, pool: asyncpg.Pool, clock: Clock,
                     rebuild: Rebuild | None = None) -> IntakeBatcher:
        """The batcher as configured: the store's zone, SALE_SETTLE_SECONDS, SUBSCRIPTION_RENEWALS, STRIPE_API_KEY."""
        return cls(pool=pool, tz=settings.tz, clock=clock, settle=settings.sale_settle, rebuild=rebuild,
                   renewals=settings.subscription_renewals, stripe_key=settings.stripe_api_key is not None)

    async def submit(self, sub: Submission, *, may_store: bool = False) -> IntakeResult:
        """Store and apply one event; raises what the database raised (so the caller can answer 503).

        With `may_store`, an event that would wait for a busy writer is only stored (Outcome.QUEUED) and applied
        soon after."""
        future: asyncio.Future[IntakeResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(sub, future, may_store))
        self._work.set()
        return await future

    @property
    def waiting(self) -> int:
        """Submissions waiting for a writer: in memory, or stored in the inbox by this process."""
        return len(self._queue) + len(self._stored)

    @property
    def pending(self) -> int:
        """Submissions this process has not finished applying: waiting, or in a writer's hands."""
        return self.waiting + self._in_hand

    async def drain(self, within: float) -> int:
        """Wait, at most `within` seconds, until everything this process received is applied — the events it stored
        in the inbox too — so a stopping process leaves nothing for a replica to find 10 s later. Call it once the
        HTTP server takes no more requests; returns how many are still not applied (the inbox keeps them)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while self.pending:
                    self._finished.clear()
                    await self._finished.wait()
        return self.pending

    async def run(self) -> None:
        """The writers, the inbox's storer and the look for events left behind."""
        async with asyncio.TaskGroup() as group:
            for n in range(self._writers):
                group.create_task(self._writer(), name=f"intake-writer-{n}")
            for n in range(STORERS):
                group.create_task(self._storer(), name=f"intake-inbox-{n}")
            group.create_task(self._look_for_left(), name="intake-left")

    async def _idle(self) -> None:
        """Wait for a change: a submission, a writer done, events stored."""
        self._work.clear()
        await self._work.wait()

    @property
    def _backlog(self) -> int:
        """Events answered 202 and not applied yet by this process."""
        return len(self._stored) + self._storing + self._applying

    async def _writer(self) -> None:
        while True:
            # Oldest first: stored events were answered already and wait for their Slack ping.
            if self._stored and (not self._applying or len(self._stored) >= SECOND_APPLIER_AT):
                chunk = [self._stored.popitem(last=False) for _ in range(min(len(self._stored), self._inbox_batch))]
                self._applying += len(chunk)
                try:
                    await self._busy_with(self._apply_stored(chunk), len(chunk))
                finally:
                    self._applying -= len(chunk)
            elif batch := self._take_queue():
                await self._busy_with(self._write(batch), len(batch))
            else:
                await self._idle()

    def _take_queue(self) -> list[_Pending]:
        """A direct batch; while stored events wait, webhooks are the storer's, to be applied behind them."""
        backlog, take, keep = self._backlog > 0, list[_Pending](), deque[_Pending]()
        for p in self._queue:
            (keep if (backlog and p.may_store) or len(take) >= self.max_batch else take).append(p)
        self._queue = keep
        return take

    async def _busy_with(self, work: Awaitable[None], events: int) -> None:
        self._busy += 1
        self._in_hand += events
        self._work.set()  # the storer looks again: every writer may be busy now
        try:
            await work
        finally:
            self._busy -= 1
            self._in_hand -= events
            self._work.set()
            self._finished.set()

    async def _storer(self) -> None:
        """While every writer is busy, or stored events wait, store what waits (and may be stored) in the inbox and
        answer it."""
        while True:
            overloaded = self._busy >= self._writers or self._backlog > 0
            batch = [p for p in self._queue if p.may_store] if overloaded else []
            if not batch:
                await self._idle()
                continue
            self._queue = deque(p for p in self._queue if not p.may_store)
            await self._store(batch)

    async def _store(self, batch: list[_Pending]) -> None:
        received = [inbox.Received(p.sub.source, p.sub.via, p.sub.event_id, p.sub.body) for p in batch]
        self._storing += len(batch)
        try:
            async with self._pool.acquire() as conn:
                ids = await inbox.store(conn, received)
        except BaseException as exc:
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._storing -= len(batch)
        for p, inbox_id in zip(batch, ids, strict=True):
            self._stored[inbox_id] = p.sub
            if not p.future.done():
                p.future.set_result(IntakeResult(Outcome.QUEUED))
        self._work.set()

    async def _apply_stored(self, chunk: list[tuple[int, Submission]]) -> None:
        """Apply events this process stored; on a database failure they go back and are tried again."""
        try:
            async with self._pool.acquire() as conn:
                applied = await apply_stored(conn, chunk, self._ingest)
        except Exception as exc:  # the rows are still in the inbox: nothing is lost, try again shortly
            if isinstance(exc, DB_UNAVAILABLE):
                log.warning("applying %d stored events failed, retrying in %.0f s: %s", len(chunk), RETRY_AFTER, exc)
            else:  # a bug; the writer must not die of it, or every webhook after it would wait forever
                log.exception("applying %d stored events failed, retrying in %.0f s", len(chunk), RETRY_AFTER)
            for inbox_id, sub in reversed(chunk):
                self._stored[inbox_id] = sub
                self._stored.move_to_end(inbox_id, last=False)
            await asyncio.sleep(RETRY_AFTER)
            return
        self.on_applied(applied)

    async def _ingest(self, conn: asyncpg.Connection, subs: list[Submission]) -> list[IntakeResult]:
        if not subs:
            return []
        return await ingest_batch(conn, subs, tz=self.tz, now=self._clock(), settle=self._settle,
                                  renewals=self._renewals, stripe_key=self._stripe_key)

    async def _look_for_left(self) -> None:
        """Every few seconds, apply events another process stored and did not apply (or this one, far behind)."""
        while True:
            await asyncio.sleep(min(LOOK_EVERY, self._left_after))
            try:
                while await self._apply_left():
                    pass
            except DB_UNAVAILABLE as exc:
                log.warning("looking for stored events left behind failed: %s", exc)
            except Exception:  # never end the look: a later one may succeed, and the intake goes on meanwhile
                log.exception("looking for stored events left behind failed")

    async def _apply_left(self) -> int:
        if self.rebuild is None:
            return 0
        async with self._pool.acquire() as conn:
            left = await inbox.left_behind(conn, older_than=self._left_after, limit=self._inbox_batch)
            rows = [(r.id, self._stored.pop(r.id) if r.id in self._stored else self.rebuild(r)) for r in left]
            applied = await apply_stored(conn, rows, self._ingest) if rows else []
        if applied:
            log.info("applied %d stored events left behind", len(applied))
            self.on_applied(applied)
        return len(applied)

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            async with self._pool.acquire() as conn:
                try:
                    results = await self._ingest(conn, [p.sub for p in batch])
                except asyncpg.TransactionRollbackError as exc:
                    # Batches lock refs and rows in a fixed order, but two can still wait on each other's new
                    # orders' unique keys: redo this one an event per transaction, which holds fewer locks.
                    log.info("batch of %d deadlocked, redone one event at a time: %s", len(batch), exc)
                    for p in batch:  # each answered once committed: a later failure cannot take its 2xx back
                        _answer(p, await self._ingest_one(conn, p.sub))
                    return
        except BaseException as exc:
            # Every waiter must learn the outcome: database down (→ 503), or shutdown mid-batch.
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for p, result in zip(batch, results, strict=True):
            _answer(p, result)

    async def _ingest_one(self, conn: asyncpg.Connection, sub: Submission) -> IntakeResult:
        """One event in its own transaction, tried again after a short random pause if it deadlocks again."""
        for attempt in range(1, EVENT_TRIES):
            try:
                return (await self._ingest(conn, [sub]))[0]
            except asyncpg.TransactionRollbackError as exc:
                log.info("event %s deadlocked (try %d), trying again: %s", sub.event_id, attempt, exc)
                await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)
        return (await self._ingest(conn, [sub]))[0]  # the last try: its failure is the sender's 503


def _answer(p: _Pending, result: IntakeResult) -> None:
    if not p.future.done():
        p.future.set_result(result)


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for p in batch:
        if not p.future.done():
            p.future.set_exception(exc if isinstance(exc, Exception) else ConnectionAbortedError("intake stopped"))
