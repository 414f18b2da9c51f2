"""The delivery worker is woken by PostgreSQL: an enqueue on any replica's connection notifies every listener at
commit, and the listener comes back by itself when its connection is cut."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.clock import utcnow
from bot.db import create_pool
from bot.delivery.listener import NotifyListener
from bot.delivery.senders import ConsoleSender
from bot.delivery.worker import DeliveryWorker
from queries import outbox

NEVER = 3600.0  # a fallback poll that never comes within a test: only a notification can wake the worker


@dataclass
class Posted:
    """What the worker printed, with an event per arrival."""

    texts: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, channel: str, payload: Mapping[str, Any]) -> None:
        """A ConsoleSender listener."""
        self.texts.append(str(payload.get("text")))
        self.arrived.set()

    async def next(self, *, within: float) -> str:
        """Wait for the next message; its text."""
        await asyncio.wait_for(self.arrived.wait(), within)
        self.arrived.clear()
        return self.texts[-1]


@pytest.fixture
async def replica(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """Another replica's pool on the same database: it only enqueues."""
    other = await create_pool(dsn, min_size=1, max_size=2)
    try:
        yield other
    finally:
        await other.close()


@contextlib.asynccontextmanager
async def running_worker(pool: asyncpg.Pool, dsn: str, posted: Posted) -> AsyncIterator[DeliveryWorker]:
    """A worker that polls never, listening on `dsn`, running until the block ends."""
    sender = ConsoleSender(stream=io.StringIO(), listeners=[posted])
    worker = DeliveryWorker(pool=pool, sender=sender, tz=ZoneInfo("UTC"), clock=utcnow, poll_interval=NEVER,
                            dsn=dsn)
    task = asyncio.create_task(worker.run())
    try:
        assert worker.listener is not None
        await asyncio.wait_for(worker.listener.listening.wait(), 10)
        yield worker
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(check: Callable[[], bool], *, within: float = 2.0) -> None:
    """Poll `check()` until true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def enqueue(db: asyncpg.Pool | asyncpg.Connection, n: int) -> None:
    """Queue one alert-channel message numbered n."""
    await outbox.enqueue(db, dedupe_key=f"notify-test:{n}", channel="alerts", kind="alert",
                         payload={"text": f"message {n}"})


async def test_an_enqueue_on_another_replica_wakes_the_worker_within_a_second(
        pool: asyncpg.Pool, dsn: str, replica: asyncpg.Pool) -> None:
    """A message queued through another pool is delivered at once, with no wake-up by hand and no poll."""
    posted = Posted()
    async with running_worker(pool, dsn, posted):
        await enqueue(replica, 1)
        assert await posted.next(within=1.0) == "message 1"


async def test_the_listener_survives_a_terminated_connection(pool: asyncpg.Pool, dsn: str,
                                                             replica: asyncpg.Pool) -> None:
    """pg_terminate_backend on the listening session: the listener reconnects, LISTENs again, and the next
    enqueue still wakes the worker within a second."""
    posted = Posted()
    async with running_worker(pool, dsn, posted) as worker:
        assert worker.listener is not None
        old = worker.listener.pid
        assert await replica.fetchval("SELECT pg_terminate_backend($1)", old)
        listener = worker.listener
        await until(lambda: listener.pid not in (None, old) and listener.listening.is_set(), within=10)
        await asyncio.sleep(0.2)  # let the wake-up of the reconnection itself pass: this one must be a NOTIFY
        await enqueue(replica, 2)
        assert await posted.next(within=1.0) == "message 2"


async def test_the_notification_comes_at_commit_not_before(dsn: str, replica: asyncpg.Pool) -> None:
    """Inside the enqueuing transaction nothing is heard (the row is not visible yet); at commit, one
    notification per channel however many rows were queued, naming the channel; a rolled-back enqueue is never
    heard."""
    heard: list[str | None] = []
    listener = NotifyListener(dsn, on_notify=lambda: None, subscribe=lambda conn: outbox.listen(conn, heard.append))
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        async with replica.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            for n in range(3):
                await enqueue(conn, n)
            await outbox.enqueue(conn, dedupe_key="notify-test:sales", channel="sales", kind="alert",
                                 payload={"text": "a sale"})
            await asyncio.sleep(0.3)
            assert heard == []
            await tx.commit()
            await until(lambda: len(heard) == 2)
            rolled_back = conn.transaction()
            await rolled_back.start()
            await enqueue(conn, 99)
            await rolled_back.rollback()
            # A burst's summary is stored as already delivered: there is nothing to send.
            await conn.execute("INSERT INTO outbox (dedupe_key, channel, kind, payload, status, delivered_at)"
                               " VALUES ('notify-test:burst', 'reports', 'burst', '{}', 'delivered', now())")
        await asyncio.sleep(0.3)
        # The commit once per channel; the rolled-back enqueue and the delivered row never.
        assert sorted(map(str, heard)) == ["alerts", "sales"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_message_queued_for_later_goes_out_when_due_without_a_poll(pool: asyncpg.Pool, dsn: str) -> None:
    """A message with a later `available_at` (a settling sale ping) is sent at that time, not at the next
    fallback poll: the worker wakes itself for it."""
    posted = Posted()
    async with running_worker(pool, dsn, posted):
        await outbox.enqueue(pool, dedupe_key="notify-test:later", channel="alerts", kind="alert",
                             payload={"text": "later"})
        assert await posted.next(within=1.0) == "later"
        await pool.execute("INSERT INTO outbox (dedupe_key, channel, kind, payload, available_at)"
                           " VALUES ('notify-test:settled', 'alerts', 'alert', '{\"text\": \"settled\"}',"
                           " now() + interval '1.5 seconds')")
        assert await posted.next(within=4.0) == "settled"


async def test_notifications_for_a_channel_waiting_for_its_slot_start_no_pass(pool: asyncpg.Pool, dsn: str,
                                                                               replica: asyncpg.Pool) -> None:
    """Once a message has gone out, its channel waits a second for the next slot. Messages queued for it meanwhile
    (a burst's batches, on any replica) start no pass over the outbox, and go out at the slot; a message for
    another channel meanwhile goes out at once."""
    posted = Posted()
    async with running_worker(pool, dsn, posted) as worker:
        await enqueue(replica, 1)
        assert await posted.next(within=1.0) == "message 1"
        sent = asyncio.get_running_loop().time()
        # Short waits: everything below must happen well before the channel's next slot, 0.95 s after the post,
        # whose own pass would count, even on a loaded machine. A notification arrives within milliseconds.
        await asyncio.sleep(0.1)  # the pass that posted it ends
        passes = worker.passes
        for n in range(2, 6):  # four transactions, four notifications
            await enqueue(replica, n)
        await asyncio.sleep(0.15)
        assert worker.passes == passes
        await outbox.enqueue(replica, dedupe_key="notify-test:other", channel="sales", kind="alert",
                             payload={"text": "elsewhere"})
        assert await posted.next(within=0.5) == "elsewhere"
        assert worker.passes == passes + 1
        assert await posted.next(within=1.5) == "message 2"
        assert asyncio.get_running_loop().time() - sent >= 0.9  # at the alerts channel's slot, not before
