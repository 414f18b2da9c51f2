"""A basil payment's two sale pings merged into one while a delivery worker may be sending one of them (its attempt
recorded, alone or in a burst): the ping that may be in Slack stays (keyed by the surviving order) and the other
goes, so the payment is announced once (queries/intake_pings.py merge_pings)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.db import init_connection
from bot.intake.batch import Submission, ingest_batch
from bot.stripe.parse import parse_event
from queries import outbox
from tests.conftest import Bot
from tests.test_subscriptions import story_event

TZ = ZoneInfo("Europe/Berlin")
EVENTS = ("payment_intent.succeeded", "invoice.paid", "invoice_payment.paid")


def _sub(name: str) -> list[Submission]:
    e: dict[str, Any] = story_event("basil", f"subscription_renewal/{name}")
    return [Submission("stripe", e["id"], e["type"], json.dumps(e), parse_event(e))]


async def _sale_pings(db: asyncpg.Connection) -> list[int]:
    return [r["id"] for r in await db.fetch("SELECT id FROM outbox WHERE kind = 'sale' AND op = 'post' ORDER BY id")]


@pytest.mark.parametrize("in_flight", [0, 1], ids=["the PaymentIntent's ping", "the invoice's ping"])
@pytest.mark.parametrize("how", ["its own attempt", "a burst's attempt"])
async def test_the_ping_that_may_be_in_slack_is_the_one_kept(db: asyncpg.Connection, in_flight: int,
                                                             how: str) -> None:
    now = dt.datetime.now(dt.UTC)
    # An earlier sale, waiting with them: a burst's attempt record is keyed by the first sale it covers.
    other = await db.fetchval("INSERT INTO outbox (dedupe_key, channel, kind, payload) VALUES"
                              " ('sale:other', 'sales', 'sale', '{}') RETURNING id")
    for name in EVENTS[:2]:  # neither names the other: two orders, two pings
        await ingest_batch(db, _sub(name), tz=TZ, now=now)
    pings = [p for p in await _sale_pings(db) if p != other]
    assert len(pings) == 2
    sending = pings[in_flight]
    if how == "its own attempt":  # what the worker commits just before its call to Slack
        await db.execute("INSERT INTO delivery_attempts (outbox_id, channel) VALUES ($1, 'sales')", sending)
    else:  # a burst covering the earlier sale and this ping, its answer not come yet
        await db.execute("INSERT INTO delivery_attempts (outbox_id, channel, covers) VALUES ($1, 'sales', $2)",
                         other, [other, sending])
    await ingest_batch(db, _sub(EVENTS[2]), tz=TZ, now=now)  # invoice_payment.paid: one payment after all
    left = [p for p in await _sale_pings(db) if p in pings]
    assert left == [sending], (pings, left)



async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn


async def _two_pings(dsn: str) -> tuple[asyncpg.Connection, asyncpg.Connection, list[int]]:
    """The intake's and the worker's connections, with the payment's two pings due: neither tried yet."""
    intake, worker = await connect(dsn), await connect(dsn)
    for name in EVENTS[:2]:
        await ingest_batch(intake, _sub(name), tz=TZ, now=dt.datetime.now(dt.UTC))
    pings = await _sale_pings(intake)
    assert len(pings) == 2
    return intake, worker, pings


async def test_a_ping_merged_away_while_a_worker_was_about_to_send_it_is_not_sent(dsn: str) -> None:
    """The worker read both due pings; before it records its attempt on one, the merge drops that one (neither was
    tried yet). Recording waits for the merge to commit, then finds the ping gone: the worker does not send it."""
    intake, worker, pings = await _two_pings(dsn)
    try:
        async with intake.transaction():
            await ingest_batch(intake, _sub(EVENTS[2]), tz=TZ, now=dt.datetime.now(dt.UTC))
            [gone] = set(pings) - set(await _sale_pings(intake))
            recording = asyncio.create_task(outbox.record_attempt(worker, outbox_id=gone, channel="sales"))
            await asyncio.sleep(0.3)
            assert not recording.done()  # waits for the merge's transaction
        assert await recording is False
        assert await worker.fetchval("SELECT count(*) FROM delivery_attempts") == 0
    finally:
        await intake.close()
        await worker.close()


@pytest.mark.parametrize("which", [0, 1], ids=["the PaymentIntent's ping", "the invoice's ping"])
async def test_a_merge_that_waited_for_an_attempt_being_recorded_keeps_that_ping(dsn: str, which: int) -> None:
    """The worker is recording its attempt on a ping (its short transaction not committed yet) as the merge starts:
    the merge waits for it, sees the attempt, and keeps that ping, the one that may reach Slack."""
    intake, worker, pings = await _two_pings(dsn)
    try:
        async with worker.transaction():
            assert await outbox.record_attempt(worker, outbox_id=pings[which], channel="sales") is True
            merging = asyncio.create_task(ingest_batch(intake, _sub(EVENTS[2]), tz=TZ, now=dt.datetime.now(dt.UTC)))
            await asyncio.sleep(0.3)
            assert not merging.done()  # waits for the attempt's transaction
        await merging
        assert await _sale_pings(intake) == [pings[which]]
    finally:
        await intake.close()
        await worker.close()


async def test_the_worker_sends_nothing_for_a_ping_deleted_while_it_was_reading_it(bot: Bot, dsn: str) -> None:
    """End to end: the worker has read a due ping and waits to record its attempt while the intake deletes it (a
    merge holds the row); it then sends nothing, keeps the channel's slot, and goes on with the next message."""
    await outbox.enqueue(bot.deps.pool, dedupe_key="sale:merged-away", channel="sales", kind="sale",
                         payload={"text": "💰 New Sale: merged away", "blocks": []})
    merge = await connect(dsn)
    try:
        async with merge.transaction():
            await merge.execute("SELECT FROM outbox WHERE dedupe_key = 'sale:merged-away' FOR UPDATE")
            draining = asyncio.create_task(bot.drain(ignore_pace=True))
            await asyncio.sleep(0.5)
            await merge.execute("DELETE FROM outbox WHERE dedupe_key = 'sale:merged-away'")
            await outbox.enqueue(merge, dedupe_key="sale:next", channel="sales", kind="sale",
                                 payload={"text": "💰 New Sale: next", "blocks": []})
        await draining
        await bot.drain(ignore_pace=True)
    finally:
        await merge.close()
    assert [p["text"] for p in bot.slack_api.posted()] == ["💰 New Sale: next"]
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM delivery_attempts") == 0
