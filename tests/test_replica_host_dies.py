"""Several replicas on one PostgreSQL, one of whose machines dies (power, network, node failure) rather than its
process being killed: its TCP connections are never closed, so PostgreSQL keeps its sessions — and their locks —
until the server ends them itself (bot/db.py: idle in a transaction, or a lock holder no longer pinging).
The periods are shortened here through the same parameters production leaves at their defaults."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from zoneinfo import ZoneInfo

import pytest

from bot.alerts.leader import Leadership
from bot.clock import utcnow
from bot.db import create_pool
from bot.delivery.worker import DeliveryWorker
from bot.stripe.job import StripeSyncJob
from queries import locks
from tests.blackhole import Blackhole
from tests.conftest import Bot, paid_checkout, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.test_locks import held_elsewhere

IDLE = 2.0  # the server's patience with a silent session, here (production: 30 s for a holder, 120 s in a transaction)
PING = 0.5  # a holder's pings, here (production: every 10 s)


@pytest.fixture
async def hole(dsn: str) -> AsyncIterator[Blackhole]:
    """A way to the test database through a machine that can die."""
    proxy = await Blackhole(dsn).start()
    try:
        yield proxy
    finally:
        await proxy.kill()


async def within(seconds: float, check: Callable[[], Awaitable[bool]]) -> bool:
    """Call the async `check()` every 0.25 s until it returns True or `seconds` have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.25)
    return False


async def test_alert_leadership_is_taken_over_when_the_leaders_machine_dies(dsn: str, hole: Blackhole) -> None:
    """The leader's session stays open on the server once its machine is gone; without its pings the server ends it
    after the idle timeout, and the other replica leads at its next try."""
    a = Leadership(hole.via, ping_every=PING, idle_timeout=IDLE)
    b = Leadership(dsn, ping_every=PING, idle_timeout=IDLE)
    try:
        assert await a.hold()
        assert not await b.hold()
        hole.freeze()
        assert await within(IDLE + 8, b.hold), "no replica evaluates alerts after the leader's machine died"
    finally:
        await b.release()
        await a.release()


async def test_a_live_leader_keeps_its_lock_between_checks(dsn: str) -> None:
    """The idle timeout never takes the lock from a live leader, however rarely the jobs ask (its own pings keep
    the session busy), even with its event loop blocked for a while between pings."""
    a = Leadership(dsn, ping_every=PING, idle_timeout=IDLE)
    b = Leadership(dsn, ping_every=PING, idle_timeout=IDLE)
    try:
        assert await a.hold()
        await asyncio.sleep(IDLE * 2)
        # A busy event loop: the next ping comes late, still inside the timeout.
        time.sleep(IDLE / 2)  # noqa: ASYNC251  # blocking the loop is the point
        await asyncio.sleep(IDLE)
        assert not await b.hold()
        assert await a.hold()
    finally:
        await b.release()
        await a.release()


async def test_control_a_killed_leader_is_taken_over_at_once(dsn: str, hole: Blackhole) -> None:
    """The same with the process killed (its sockets closed by the kernel): the other replica takes over at its
    next try, timeouts or not."""
    a = Leadership(hole.via)
    b = Leadership(dsn)
    try:
        assert await a.hold()
        await hole.kill()
        assert await within(5, b.hold)
    finally:
        await b.release()
        await a.release()


async def test_sales_pings_go_on_when_a_replica_dies_mid_post(dsn: str, hole: Blackhole,
                                                              fake_slack: FakeSlack) -> None:
    """Replica A is posting a sale to Slack (holding the sales channel's pace row in a transaction across the call)
    when its machine dies. The server ends A's session once it has been idle in that transaction too long; replica
    B finds the first sale already in Slack and posts the next one."""
    async with start_bot(dsn, fake_slack) as b:
        pool_a = await create_pool(hole.via, min_size=1, max_size=4, idle_in_transaction=IDLE)
        worker_a = DeliveryWorker(pool=pool_a, sender=b.deps.sender, tz=ZoneInfo("UTC"), clock=utcnow)
        posting = None
        try:
            now = dt.datetime.now(dt.UTC)
            assert (await b.stripe(paid_checkout(1, now))).status == 200
            # Slack took it and answers late: A's machine dies before the answer (which then never reaches A's database)
            fake_slack.fail_next(1, accept=True, delay=3, method="chat.postMessage")
            posting = asyncio.create_task(worker_a.drain())
            for _ in range(200):
                if fake_slack.messages:
                    break
                await asyncio.sleep(0.05)
            assert len(fake_slack.messages) == 1
            hole.freeze()  # A's machine dies mid-call
            assert (await b.stripe(paid_checkout(2, now))).status == 200

            async def second_sale_out() -> bool:
                await b.drain(until_idle=False, within=1.0)
                return len(fake_slack.messages) >= 2

            assert await within(IDLE + 10, second_sale_out), \
                "sale 2 not in Slack: A's dead session still locks the sales channel's pace row"
            assert len(fake_slack.messages) == 2  # sale 1 found in Slack by B, not sent again
        finally:
            pool_a.terminate()  # first: a cancelled pass would wait to roll back on the dead connections
            if posting is not None:
                posting.cancel()
                await asyncio.gather(posting, return_exceptions=True)


@pytest.fixture
async def stripe_store(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[tuple[Bot, FakeStripe]]:
    """A store polling a fake Stripe's Events API."""
    fake = await FakeStripe().start()
    try:
        async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
            yield bot, fake
    finally:
        await fake.stop()


def mid_run(stripe: FakeStripe) -> Callable[[], Awaitable[bool]]:
    """Whether the run has reached its slow Stripe call (so holds the lock): looking by taking the lock for a moment
    could make the run find it taken."""

    async def reached() -> bool:
        return not stripe.faults

    return reached


async def test_the_events_poll_goes_on_when_the_polling_replicas_machine_dies(
        dsn: str, hole: Blackhole, stripe_store: tuple[Bot, FakeStripe]) -> None:
    """Replica A holds the poll's lock, waiting on a slow Stripe, when its machine dies: the lock is free once the
    server has ended A's silent session, and B polls."""
    store, stripe = stripe_store
    stripe.fail_next(1, delay=3)  # A is mid-run when its machine dies
    a = StripeSyncJob(dataclasses.replace(store.deps, dsn=hole.via), ping_every=PING, idle_timeout=IDLE)
    b = StripeSyncJob(store.deps, ping_every=PING, idle_timeout=IDLE)
    run = asyncio.create_task(a.tick())
    try:
        assert await within(5, mid_run(stripe)) and await held_elsewhere(dsn, locks.STRIPE_SYNC)
        hole.freeze()

        async def b_polls() -> bool:
            return await b.tick() is not None

        assert await within(IDLE + 8, b_polls), "the Events API poll's lock outlived the replica's machine"
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await run


async def test_a_live_poll_keeps_its_lock_through_a_slow_stripe(dsn: str,
                                                                stripe_store: tuple[Bot, FakeStripe]) -> None:
    """A run longer than the idle timeout (Stripe slow to answer) keeps its lock to the end: its pings come."""
    store, stripe = stripe_store
    stripe.fail_next(1, delay=IDLE * 2)
    run = asyncio.create_task(StripeSyncJob(store.deps, ping_every=PING, idle_timeout=IDLE).tick())
    try:
        assert await within(5, mid_run(stripe)) and await held_elsewhere(dsn, locks.STRIPE_SYNC)
        await asyncio.sleep(IDLE * 1.5)
        assert not run.done() and await held_elsewhere(dsn, locks.STRIPE_SYNC)
    finally:
        await run
