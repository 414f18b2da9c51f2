"""The intake's lookup of stored orders by payment ref: keyed probes whatever the planner's statistics say."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from queries import intake as q
from queries import planning

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
