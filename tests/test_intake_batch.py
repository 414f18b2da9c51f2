"""The group-commit intake has exactly the effects of applying the same events one at a time."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.intake.batch import IntakeBatcher, Submission, ingest_batch
from bot.intake.single import ingest
from bot.stripe.parse import parse_event
from tests.conftest import Bot, with_database
from tests.reference import stripe_fixture

TZ = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.UTC)
TABLES = {
    "orders": "SELECT id, payment_status, amount_total, amount_refunded, currency, customer_email, product_name,"
              " checkout_session_id, payment_intent_id, charge_id, failure_reason, metadata, created_at,"
              " refunded_at, status_at FROM orders ORDER BY id",
    "payment_refs": "SELECT ref, order_id FROM payment_refs ORDER BY ref",
    "checkout_sessions": "SELECT id, status, amount_total, currency, customer_email, metadata, created_at,"
                         " completed_at, status_at FROM checkout_sessions ORDER BY id",
    "payment_failures": "SELECT event_id, order_id, amount, reason, created_at FROM payment_failures ORDER BY 1",
    "disputes": "SELECT id, order_id, charge_id, amount FROM disputes ORDER BY id",
    "webhook_logs": "SELECT event_id, event_type, status, payload FROM webhook_logs ORDER BY event_id",
    "outbox": "SELECT dedupe_key, channel, kind, payload, amount, currency FROM outbox ORDER BY dedupe_key",
}


def random_events(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """A messy stream: few payments seen through several event types, out of order, with redeliveries."""
    templates = {
        "session": stripe_fixture("stripe-ruby-mock/checkout.session.completed.json"),
        "intent": stripe_fixture("stripe-ruby-mock/payment_intent.succeeded.json"),
        "failed": stripe_fixture("stripe-ruby-mock/payment_intent.payment_failed.json"),
        "refund": stripe_fixture("stripe-ruby-mock/charge.refunded.json"),
        "dispute": stripe_fixture("stripe-ruby-mock/charge.dispute.created.json"),
    }
    events: list[dict[str, Any]] = []
    for n in range(count):
        if events and rng.random() < 0.15:
            events.append(copy.deepcopy(rng.choice(events)))  # a redelivery, same event id
            continue
        kind = rng.choice([*templates, "session", "intent", "unpaid", "expired", "async_ok"])
        p = rng.randrange(6)  # six payments: plenty of collisions
        evt = copy.deepcopy(templates["session" if kind in ("unpaid", "expired", "async_ok") else kind])
        evt["id"], evt["created"] = f"evt_{n}", int(NOW.timestamp()) - rng.randrange(0, 4) * 60
        obj = evt["data"]["object"]
        amount = rng.choice([1000, 2500, 2500, 400])
        if kind in ("session", "unpaid", "expired", "async_ok"):
            obj.update(id=f"cs_{p}", payment_intent=f"pi_{p}", amount_total=amount,
                       payment_status="unpaid" if kind == "unpaid" else "paid",
                       metadata={"productName": rng.choice(["Course", "Ebook", None]) or "", "k": str(n)})
            evt["type"] = {"expired": "checkout.session.expired", "async_ok": "checkout.session.async_payment_succeeded"
                           }.get(kind, "checkout.session.completed")
        elif kind in ("intent", "failed"):
            obj.update(id=f"pi_{p}", amount=amount, amount_received=amount)
        elif kind == "refund":
            obj.update(id=f"ch_{p}", payment_intent=f"pi_{p}", amount=2500, amount_refunded=rng.choice([500, 2500]))
        else:
            obj.update(id=f"dp_{p}", charge=f"ch_{p}", payment_intent=f"pi_{p}")
        events.append(evt)
    return events


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Every table the intake writes, as plain data."""
    out = {}
    for table, sql in TABLES.items():
        rows = [dict(r) for r in await conn.fetch(sql)]
        for r in rows:
            for key in ("metadata", "payload"):
                if isinstance(r.get(key), str):
                    r[key] = json.loads(r[key])
        out[table] = rows
    return out


@pytest.fixture
async def two_databases(server_dsn: str, template_db: str) -> AsyncIterator[tuple[str, str]]:
    """Two fresh migrated databases side by side."""
    admin = await asyncpg.connect(server_dsn)
    names = [f"salespulse_eq{os.getpid()}_{i}_{time.monotonic_ns()}" for i in range(2)]
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        yield with_database(server_dsn, names[0]), with_database(server_dsn, names[1])
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return conn


@pytest.mark.parametrize("seed", range(6))
async def test_batches_match_one_at_a_time(two_databases: tuple[str, str], seed: int) -> None:
    """For random messy streams, any split into batches leaves every table as the one-by-one path does."""
    rng = random.Random(seed)
    events = random_events(rng, 60)
    single, batched = await _connect(two_databases[0]), await _connect(two_databases[1])
    try:
        for evt in events:
            await ingest(single, source="stripe", event_id=evt["id"], event_type=evt["type"], payload=evt,
                         event=parse_event(evt), tz=TZ, now=NOW)
        subs = [Submission("stripe", e["id"], e["type"], json.dumps(e), parse_event(e)) for e in events]
        i = 0
        while i < len(subs):
            size = rng.choice([1, 2, 3, 7, 20])
            await ingest_batch(batched, subs[i:i + size], tz=TZ, now=NOW)
            i += size
        expected, got = await snapshot(single), await snapshot(batched)
        for table in TABLES:
            assert got[table] == expected[table], table
        assert expected["orders"], "the stream must create orders, or the comparison proves little"
    finally:
        await single.close()
        await batched.close()


async def test_batch_outcomes_name_duplicates_and_ignored_events(db: asyncpg.Connection) -> None:
    """In one batch: a new sale, its redelivery, and an unhandled type get processed/duplicate/ignored."""
    sale = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    sale["id"] = "evt_b1"
    other = stripe_fixture("stripe-ruby-mock/customer.subscription.created.json")
    other["id"] = "evt_b2"
    subs = [Submission("stripe", e["id"], e["type"], json.dumps(e), parse_event(e)) for e in (sale, sale, other)]
    results = await ingest_batch(db, subs, tz=TZ, now=NOW)
    assert [r.outcome.value for r in results] == ["processed", "duplicate", "ignored"]
    assert [r.queued for r in results] == [1, 0, 0]


async def test_concurrent_webhooks_are_each_stored_once(bot: Bot) -> None:
    """Sixty concurrent signed webhooks (a third of them redeliveries) make 40 orders and 40 sale rows."""
    events = []
    for n in range(40):
        evt = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
        evt["id"] = f"evt_c{n}"
        evt["data"]["object"].update(id=f"cs_c{n}", payment_intent=f"pi_c{n}")
        events.append(evt)
    responses = await asyncio.gather(*(bot.stripe(e) for e in events + events[:20]))
    assert [r.status for r in responses] == [200] * 60
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM orders") == 40
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'sale'") == 40


async def test_a_poisoned_event_does_not_fail_its_batch(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    """A row PostgreSQL refuses fails the batch; its events are redone alone and only that one is an error."""
    good = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    good["id"] = "evt_good"
    bad = copy.deepcopy(good)
    bad["id"] = "evt_bad"
    bad["data"]["object"].update(id="cs_bad", payment_intent="pi_bad")
    subs = [Submission("stripe", e["id"], e["type"], json.dumps(e), parse_event(e)) for e in (good, bad)]
    poisoned = subs[1].event
    assert poisoned is not None
    # No real payload gets here (the parser drops amounts beyond bigint); forge one past it.
    subs[1] = dataclasses.replace(subs[1], event=dataclasses.replace(poisoned, amount=2**63))
    batcher = IntakeBatcher(pool=bot.deps.pool, tz=TZ, clock=lambda: NOW, writers=1)
    waiting = [asyncio.create_task(batcher.submit(s)) for s in subs]
    await asyncio.sleep(0)  # both are queued before the writer starts: they form one batch
    writer = asyncio.create_task(batcher.run())
    try:
        with caplog.at_level(logging.INFO, logger="bot.intake.batch"):
            results = await asyncio.gather(*waiting)
    finally:
        writer.cancel()
    assert "batch of 2 fell back to single events" in caplog.text
    assert [r.outcome.value for r in results] == ["processed", "error"]
    statuses = dict(await bot.deps.pool.fetch("SELECT event_id, status FROM webhook_logs"))
    assert statuses == {"evt_good": "processed", "evt_bad": "error"}
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM orders") == 1


async def test_absurd_amounts_are_not_amounts(bot: Bot) -> None:
    """A 31-digit amount in a signed event is stored but makes no order amount and no ping (no 5xx)."""
    evt = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    evt["data"]["object"]["amount_total"] = 10**30
    resp = await bot.stripe(evt)
    assert resp.status == 200
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox") == 0
