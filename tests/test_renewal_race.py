"""SUBSCRIPTION_RENEWALS=report drops a renewal's sale ping once its invoice says it renewed — but never one a
delivery worker may be sending (its attempt recorded, alone or in a burst): that one is announced, and keeps its
outbox row, so it is marked delivered and not posted again (queries/subscriptions.py quiet_renewals)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.intake.batch import Submission, ingest_batch
from bot.stripe.parse import parse_event
from bot.subscriptions.renewals import Renewals
from queries import outbox
from tests.test_merge_in_flight import connect
from tests.test_subscriptions import story_event

TZ = ZoneInfo("Europe/Berlin")
VERSION = "acacia"  # its PaymentIntent names the invoice: one order, which the invoice then says renewed


def _sub(name: str) -> list[Submission]:
    e: dict[str, Any] = story_event(VERSION, f"subscription_renewal/{name}")
    return [Submission("stripe", e["id"], e["type"], json.dumps(e), parse_event(e))]


async def _ingest(conn: asyncpg.Connection, name: str, *, ago: dt.timedelta) -> None:
    await ingest_batch(conn, _sub(name), tz=TZ, now=dt.datetime.now(dt.UTC) - ago,
                       renewals=Renewals.REPORT)


async def _sale_pings(db: asyncpg.Connection) -> list[int]:
    return [r["id"] for r in await db.fetch("SELECT id FROM outbox WHERE kind = 'sale' AND op = 'post' ORDER BY id")]


async def _due_ping(conn: asyncpg.Connection) -> int:
    """The renewal's PaymentIntent, two hours old: its ping (held while it might be a renewal) is due now."""
    await _ingest(conn, "payment_intent.succeeded", ago=dt.timedelta(hours=2))
    [ping] = await _sale_pings(conn)
    assert await conn.fetchval("SELECT available_at <= now() FROM outbox WHERE id = $1", ping)
    return ping


async def test_an_untried_renewal_ping_is_dropped(db: asyncpg.Connection) -> None:
    await _due_ping(db)
    await _ingest(db, "invoice.paid", ago=dt.timedelta(0))
    assert await _sale_pings(db) == []


@pytest.mark.parametrize("how", ["its own attempt", "a burst's attempt"])
async def test_a_renewal_ping_a_worker_is_sending_is_kept(db: asyncpg.Connection, how: str) -> None:
    ping = await _due_ping(db)
    if how == "its own attempt":  # what the worker commits just before its call to Slack
        await db.execute("INSERT INTO delivery_attempts (outbox_id, channel) VALUES ($1, 'sales')", ping)
    else:  # a burst covering an earlier sale and this ping, its answer not come yet
        other = await db.fetchval("INSERT INTO outbox (dedupe_key, channel, kind, payload) VALUES"
                                  " ('sale:other', 'sales', 'sale', '{}') RETURNING id")
        await db.execute("INSERT INTO delivery_attempts (outbox_id, channel, covers) VALUES ($1, 'sales', $2)",
                         other, [other, ping])
    await _ingest(db, "invoice.paid", ago=dt.timedelta(0))
    assert ping in await _sale_pings(db)


async def test_the_drop_waits_for_an_attempt_being_recorded_and_keeps_that_ping(dsn: str) -> None:
    """The worker is recording its attempt (its short transaction not committed) as the invoice comes in: the drop
    waits for it, sees the attempt, and keeps the ping the worker is about to send."""
    intake, worker = await connect(dsn), await connect(dsn)
    try:
        ping = await _due_ping(intake)
        async with worker.transaction():
            assert await outbox.record_attempt(worker, outbox_id=ping, channel="sales") is True
            dropping = asyncio.create_task(_ingest(intake, "invoice.paid", ago=dt.timedelta(0)))
            await asyncio.sleep(0.3)
            assert not dropping.done()  # waits for the attempt's transaction
        await dropping
        assert await _sale_pings(intake) == [ping]
    finally:
        await intake.close()
        await worker.close()


async def test_a_ping_dropped_before_the_worker_records_its_attempt_is_not_sent(dsn: str) -> None:
    intake, worker = await connect(dsn), await connect(dsn)
    try:
        ping = await _due_ping(intake)
        async with intake.transaction():
            await _ingest(intake, "invoice.paid", ago=dt.timedelta(0))
            recording = asyncio.create_task(outbox.record_attempt(worker, outbox_id=ping, channel="sales"))
            await asyncio.sleep(0.3)
            assert not recording.done()  # waits for the drop's transaction
        assert await recording is False
        assert await _sale_pings(intake) == []
    finally:
        await intake.close()
        await worker.close()
