"""The intake's one path: any split of a stream into batches has the effects of batches of one."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime as dt
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.intake import batch
from bot.intake.batch import MAX_BATCH, Submission, ingest_batch
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
    "disputes": "SELECT id, order_id, charge_id, amount, currency, reason, status, created_at FROM disputes"
                " ORDER BY id",
    "webhook_logs": "SELECT source, event_id, event_type, status, last_error, livemode, payload, event_created_at,"
                    " via FROM webhook_logs ORDER BY event_id",
    # A sale ping due when a later event names more of its order gets an edit (it may be in Slack); how many such
    # steps a stream takes depends on its batches, so edits are compared by where they leave each ping.
    "outbox": "SELECT dedupe_key, channel, kind, payload, amount, currency, status FROM outbox"
              " WHERE NOT (kind = 'sale' AND op = 'update') ORDER BY dedupe_key",
    "sale pings' last word": "SELECT p.dedupe_key, coalesce(e.shown, (p.payload -> 'sale') - 'late' - 'occurred_at')"
                             " AS shown FROM outbox AS p LEFT JOIN LATERAL (SELECT (payload -> 'sale') - 'late'"
                             " - 'occurred_at' AS shown FROM outbox WHERE target_id = p.id ORDER BY id DESC LIMIT 1)"
                             " AS e ON true WHERE p.kind = 'sale' AND p.op = 'post' ORDER BY 1",
}


def random_events(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """A messy stream: few payments seen through several event types, out of order, with redeliveries."""
    templates = {
        "session": stripe_fixture("stripe-ruby-mock/checkout.session.completed.json"),
        "intent": stripe_fixture("stripe-ruby-mock/payment_intent.succeeded.json"),
        "failed": stripe_fixture("stripe-ruby-mock/payment_intent.payment_failed.json"),
        "refund": stripe_fixture("stripe-ruby-mock/charge.refunded.json"),
        "dispute": stripe_fixture("stripe-ruby-mock/charge.dispute.created.json"),
        "charge": stripe_fixture("stripe-ruby-mock/charge.succeeded.json"),  # a LINK: the intent counts
        "other": stripe_fixture("stripe-ruby-mock/invoice.payment_action_required.json"),  # ignored
        # basil: an invoice shares no id with its PaymentIntent until invoice_payment.paid (a LINK) merges them
        "invoice": stripe_fixture("versions/basil/subscription_renewal/invoice.paid.json"),
        "inpay": stripe_fixture("versions/basil/subscription_renewal/invoice_payment.paid.json"),
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
        elif kind == "charge":
            obj.update(id=f"ch_{p}", payment_intent=f"pi_{p}", amount=amount)
        elif kind == "invoice":
            obj.update(id=f"in_{p}", amount_paid=amount)
        elif kind == "inpay":
            obj.update(id=f"inpay_{n}", invoice=f"in_{p}", payment={"type": "payment_intent",
                                                                    "payment_intent": f"pi_{p}"})
        elif kind == "other":
            obj.update(id=f"sub_{p}")
        elif kind == "refund":
            obj.update(id=f"ch_{p}", payment_intent=f"pi_{p}", amount=2500, amount_refunded=rng.choice([500, 2500]))
        elif kind == "dispute":
            obj.update(id=f"dp_{p}", charge=f"ch_{p}", payment_intent=f"pi_{p}")
        events.append(evt)
    return events


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Every table the intake writes, as plain data."""
    out = {}
    for table, sql in TABLES.items():
        rows = [dict(r) for r in await conn.fetch(sql)]
        for r in rows:
            for key in ("metadata", "payload", "shown"):
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


POISONED = 2**63  # one past bigint: PostgreSQL refuses the row, as it would any value the parser let through


def submissions(events: list[dict[str, Any]], poisoned: set[str]) -> list[Submission]:
    """The stream as the webhook submits it; events whose id is in `poisoned` carry an amount past bigint."""
    subs = []
    for evt in events:
        event = parse_event(evt)
        if event is not None and evt["id"] in poisoned:
            event = dataclasses.replace(event, amount=POISONED)
        subs.append(Submission("stripe", evt["id"], evt["type"], json.dumps(evt), event))
    return subs


def random_split(rng: random.Random, count: int) -> list[int]:
    """Batch sizes adding up to `count`: mostly small, sometimes up to MAX_BATCH."""
    sizes = []
    while count > 0:
        size = min(count, rng.choice([rng.randint(1, 8), rng.randint(1, MAX_BATCH)]))
        sizes.append(size)
        count -= size
    return sizes


async def test_a_batch_that_only_adds_writes_what_the_statement_by_statement_path_writes(
        two_databases: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """New sales (one failed first, one disputed) in one statement leave the tables the step-by-step path does."""
    session = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    events = []
    for n in range(12):
        evt = copy.deepcopy(session)
        evt["id"], evt["created"] = f"evt_new_{n}", int(NOW.timestamp()) - n * 60
        evt["data"]["object"].update(id=f"cs_new_{n}", payment_intent=f"pi_new_{n}", amount_total=1000 + n,
                                     metadata={"productName": f"Course {n}"})
        events.append(evt)
    for name, kind in (("failed", "payment_intent.payment_failed.json"), ("dispute", "charge.dispute.created.json")):
        evt = stripe_fixture(f"stripe-ruby-mock/{kind}")
        evt["id"], evt["created"] = f"evt_{name}", int(NOW.timestamp())
        evt["data"]["object"].update(id="pi_new_3" if name == "failed" else "dp_new_3", payment_intent="pi_new_3",
                                     charge="ch_new_3")
        events.insert(2, evt)
    subs = submissions(events, set())
    fast, slow = await _connect(two_databases[0]), await _connect(two_databases[1])
    calls: list[int] = []
    real = batch.one_statement
    monkeypatch.setattr(batch, "one_statement", lambda fold: bool(calls.append(1)) or real(fold))
    try:
        assert [r.outcome.value for r in await ingest_batch(fast, subs, tz=TZ, now=NOW)].count("processed") == 14
        assert real(batch.Fold(tz=TZ, now=NOW)) is False, "an empty fold writes nothing in one statement"
        monkeypatch.setattr(batch, "one_statement", lambda fold: False)
        await ingest_batch(slow, subs, tz=TZ, now=NOW)
        expected, got = await snapshot(slow), await snapshot(fast)
        for table in TABLES:
            assert got[table] == expected[table], table
        assert len(expected["orders"]) == 12 and expected["payment_failures"] and expected["disputes"]
        assert calls == [1]
    finally:
        await fast.close()
        await slow.close()


@pytest.mark.parametrize("seed", range(4))
async def test_any_split_into_batches_matches_batches_of_one(two_databases: tuple[str, str], seed: int) -> None:
    """For messy streams with poisoned events, random batches of 1…200 leave every table as batches of one."""
    rng = random.Random(seed)
    events = random_events(rng, 240)
    poisoned = {e["id"] for e in events if rng.random() < 0.03}
    subs = submissions(events, poisoned)
    one, batched = await _connect(two_databases[0]), await _connect(two_databases[1])
    try:
        for sub in subs:
            await ingest_batch(one, [sub], tz=TZ, now=NOW)
        i = 0
        for size in random_split(rng, len(subs)):
            await ingest_batch(batched, subs[i:i + size], tz=TZ, now=NOW)
            i += size
        expected, got = await snapshot(one), await snapshot(batched)
        for table in TABLES:
            assert got[table] == expected[table], table
        assert expected["orders"], "the stream must create orders, or the comparison proves little"
        by_prefix = {p: {r["order_id"] for r in expected["payment_refs"] if r["ref"].startswith(p)}
                     for p in ("in_", "pi_")}
        assert by_prefix["in_"] & by_prefix["pi_"], "invoices must have been linked to their PaymentIntents"
        statuses = {r["status"] for r in expected["webhook_logs"]}
        assert {"processed", "ignored", "error"} <= statuses, statuses
    finally:
        await one.close()
        await batched.close()


async def test_batch_outcomes_name_duplicates_and_ignored_events(db: asyncpg.Connection) -> None:
    """In one batch: a new sale, its redelivery, and an unhandled type get processed/duplicate/ignored."""
    sale = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    sale["id"] = "evt_b1"
    other = stripe_fixture("stripe-ruby-mock/invoice.payment_action_required.json")
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
    assert {r.status for r in responses} <= {200, 202}  # 202: stored while both writers were busy, applied after
    await until(lambda: asyncio.sleep(0, bot.deps.intake.pending), 0)
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM orders") == 40
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'sale'") == 40


T = TypeVar("T")

BLOCKED = """
SELECT count(*) FROM pg_locks
 WHERE locktype = 'advisory' AND NOT granted
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


async def until(probe: Callable[[], Awaitable[int]], value: int, within: float = 10.0) -> None:
    """Wait until `probe()` answers `value`."""
    deadline = time.monotonic() + within
    for _ in range(int(within * 100)):
        if await probe() == value or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    assert await probe() == value


@contextlib.asynccontextmanager
async def writers_held_by(lock: asyncpg.Connection, send: Callable[[dict[str, Any]], Awaitable[T]],
                          blockers: tuple[int, int] = (900, 901)) -> AsyncIterator[list[asyncio.Task[T]]]:
    """Both intake writers stuck on a payment lock `lock` holds, one blocker sale each (sent with `send`, one at a
    time so each writer takes one); the two requests' tasks are yielded, answered once the block ends."""
    tx = lock.transaction()
    await tx.start()
    try:
        await lock.execute("SELECT pg_advisory_xact_lock(hashtextextended(r, 0)) FROM unnest($1::text[]) AS r",
                           [ref for n in blockers for ref in (f"cs_p{n}", f"pi_p{n}")])
        held: list[asyncio.Task[T]] = []
        for n in blockers:
            held.append(asyncio.create_task(send(sale(n))))
            await until(lambda: lock.fetchval(BLOCKED), len(held))
        yield held
    finally:
        await tx.rollback()  # the writers go on


def sale(n: int) -> dict[str, Any]:
    """A paid checkout session of its own (evt_p<n>, cs_p<n>, pi_p<n>)."""
    evt = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    evt["id"] = f"evt_p{n}"
    evt["data"]["object"].update(id=f"cs_p{n}", payment_intent=f"pi_p{n}")
    return evt


async def test_a_poisoned_event_does_not_fail_its_batch(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    """Signed webhooks batched with one PostgreSQL refuses: all answered 2xx, only that one kept as an error.

    Both writers are held, so the seven that arrive meanwhile are stored in the inbox (202) and applied together."""
    blockers, good, bad = [sale(0), sale(1)], [sale(n) for n in range(2, 8)], sale(8)
    # Valid JSON the parser lets through, but jsonb refuses a lone surrogate escape: the INSERT fails.
    bad["data"]["object"]["metadata"] = {"productName": "\ud800"}
    async with bot.deps.pool.acquire() as lock:
        # Both writers wait on the blockers' payment locks while the rest queue up: they form one batch. Once the
        # block ends the writers go on: one takes the blocker, the other all seven queued.
        async with writers_held_by(lock, bot.stripe, blockers=(0, 1)) as first:
            rest = [asyncio.create_task(bot.stripe(e)) for e in [*good[:3], bad, *good[3:]]]
            await until(lambda: asyncio.sleep(0, bot.deps.intake.waiting), len(rest))
        with caplog.at_level(logging.INFO, logger="bot.intake.batch"):
            responses = await asyncio.wait_for(asyncio.gather(*first, *rest), 30)
            await until(lambda: asyncio.sleep(0, bot.deps.intake.pending), 0)
    assert [r.status for r in responses] == [200] * 2 + [202] * 7
    outcomes = [(await r.json())["outcome"] for r in responses]
    assert outcomes == ["processed"] * 2 + ["queued"] * 7
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM webhook_inbox") == 0
    assert "batch of 7 refused" in caplog.text
    logs = {r["event_id"]: r for r in await bot.deps.pool.fetch("SELECT * FROM webhook_logs")}
    assert {k: r["status"] for k, r in logs.items()} == {e["id"]: "processed" for e in blockers + good} | {
        "evt_p8": "error"}
    assert "Error" in logs["evt_p8"]["last_error"]  # the exception's name and PostgreSQL's reason
    assert "ud800" in json.dumps(logs["evt_p8"]["payload"])  # the body as received, kept as one JSON string
    orders = {r["payment_intent_id"] for r in await bot.deps.pool.fetch("SELECT payment_intent_id FROM orders")}
    assert orders == {f"pi_p{n}" for n in range(8)}
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'sale'") == 8
    # Stripe's retry of the refused event is a redelivery: answered 2xx, nothing more stored.
    again = await bot.stripe(bad)
    assert (again.status, (await again.json())["outcome"]) == (200, "duplicate")


async def test_absurd_amounts_are_not_amounts(bot: Bot) -> None:
    """A 31-digit amount in a signed event is stored but makes no order amount and no ping (no 5xx)."""
    evt = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    evt["data"]["object"]["amount_total"] = 10**30
    resp = await bot.stripe(evt)
    assert resp.status == 200
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox") == 0
