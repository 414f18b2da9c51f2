"""Stored orders in the intake: looked up by payment ref through keyed probes whatever the planner's statistics
say, and written back only when an event changed them."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bot.intake.batch import Submission, ingest_batch
from bot.intake.result import Outcome
from bot.stripe.parse import parse_event
from queries import intake as q
from queries import planning
from tests.reference import stripe_fixture

ORDERS = 30_000


def scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(node type, relation) for every scan in an EXPLAIN (FORMAT JSON) plan."""
    found = [(plan["Node Type"], plan["Relation Name"])] if "Relation Name" in plan else []
    for child in plan.get("Plans", []):
        found += scans(child)
    return found


async def test_a_new_database_looks_refs_up_through_their_index(db: asyncpg.Connection) -> None:
    # A burst into a new database: tens of thousands of orders before autoanalyze has looked at the tables. Planned
    # as `ref = ANY($1)`, the lookup read all 60,000 refs for every batch (4 ms, 18 ms when they named orders).
    await db.execute(f"""
        INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)
        SELECT 'ord_' || i, 'completed', i, 'usd', now(), now() FROM generate_series(1, {ORDERS}) AS i;
        INSERT INTO payment_refs (ref, order_id)
        SELECT kind || i, 'ord_' || i FROM generate_series(1, {ORDERS}) AS i, unnest(ARRAY['pi_', 'cs_']) AS kind
    """)
    assert await db.fetchval("SELECT last_analyze IS NULL AND last_autoanalyze IS NULL FROM pg_stat_user_tables"
                             " WHERE relname = 'payment_refs'")
    stored = [f"{kind}{i}" for i in range(1, ORDERS + 1, 300) for kind in ("pi_", "cs_")]
    refs = sorted(stored + [f"pi_new_{i}" for i in range(100)])
    async with db.transaction():
        await planning.plan_each_statement(db)  # as the intake plans it
        [explained] = json.loads(await db.fetchval("EXPLAIN (FORMAT JSON) " + q.ORDERS_BY_REFS, refs))
        found = await q.orders_by_refs(db, refs)

    tables = scans(explained["Plan"])
    assert {table for _, table in tables} == {"payment_refs", "orders"}
    assert all(node in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan") for node, _ in tables), tables
    # Every stored ref, with its order, in order id order (the order rows are locked in); the new refs name none.
    assert sorted((ref, row.id) for ref, row in found) == sorted((ref, "ord_" + ref[3:]) for ref in stored)
    assert [row.id for _, row in found] == sorted(row.id for _, row in found)
    assert {row.amount_total for _, row in found} == {int(ref[3:]) for ref in stored}


async def _apply(db: asyncpg.Connection, evt: dict[str, Any]) -> Outcome:
    sub = Submission("stripe", evt["id"], evt["type"], json.dumps(evt), parse_event(evt))
    [result] = await ingest_batch(db, [sub], tz=ZoneInfo("UTC"), now=dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC))
    return result.outcome


async def test_an_event_that_changes_nothing_writes_no_new_row_version(db: asyncpg.Connection) -> None:
    # One payment's three events in separate batches, as Stripe's deliveries usually land; then events that teach
    # nothing new under new ids. Each rewrote the order before: a row version, its indexes and every rollup trigger.
    story = [stripe_fixture(f"versions/acacia/one_off/{kind}.json")
             for kind in ("payment_intent.succeeded", "checkout.session.completed", "charge.succeeded")]
    version = "SELECT ctid::text FROM orders"
    seen = []
    for evt in story:
        assert await _apply(db, evt) is Outcome.PROCESSED
        seen.append(await db.fetchval(version))
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    assert seen[1] != seen[0], "the checkout session names product and customer: a change, written"
    stored = dict(await db.fetchrow("SELECT * FROM orders"))
    for evt in story:  # the same facts again (an event re-sent under a new id, say)
        again = copy.deepcopy(evt)
        again["id"] += "_again"
        assert await _apply(db, again) is Outcome.PROCESSED
        assert await db.fetchval(version) == seen[-1]
    assert dict(await db.fetchrow("SELECT * FROM orders")) == stored
