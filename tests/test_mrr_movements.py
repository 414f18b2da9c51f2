"""Each snapshot's movement start (migration 0022: prev_mrr, paid_before), kept by triggers whatever the arrival
order, the batching, later MRR changes (discounts read) and deletions: the MRR summary that sums them equals the
one that found each snapshot's predecessor by index (REFERENCE, queries/mrr.py's SQL before 0022)."""

from __future__ import annotations

import datetime as dt
import random

import asyncpg
import pytest

from bot.db import bundled_migrations
from queries import discounts, mrr
from queries.subscriptions import Snapshot, insert_snapshots

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)

REFERENCE = mrr.SUMMARY.replace("""
        SELECT currency, at, mrr, at >= $2 AND at <= $1::timestamptz AS inside,
               coalesce(prev_mrr, before_mrr, 0) AS prev, paid_before
          FROM subscription_events
         WHERE at > least($2::timestamptz, $3::timestamptz)),""", """
        SELECT e.currency, e.at, e.mrr, e.at >= $2 AND e.at <= $1::timestamptz AS inside,
               coalesce(p.mrr, e.before_mrr, 0) AS prev,
               coalesce(p.mrr, e.before_mrr, 0) = 0 AND e.mrr > 0 AND EXISTS (
                   SELECT 1 FROM subscription_events AS x
                    WHERE x.subscription_id = e.subscription_id AND x.mrr > 0
                      AND (x.at, x.rank, x.event_id) < (e.at, e.rank, e.event_id)) AS paid_before
          FROM subscription_events AS e
          LEFT JOIN LATERAL (
                SELECT x.mrr FROM subscription_events AS x
                 WHERE x.subscription_id = e.subscription_id
                   AND (x.at, x.rank, x.event_id) < (e.at, e.rank, e.event_id)
                 ORDER BY x.at DESC, x.rank DESC, x.event_id DESC
                 LIMIT 1) AS p ON true
         WHERE e.at > least($2::timestamptz, $3::timestamptz)),""")
WINDOWS = [(NOW, NOW - dt.timedelta(days=30)), (NOW - dt.timedelta(days=20), NOW - dt.timedelta(days=45)),
           (NOW + dt.timedelta(days=400), NOW - dt.timedelta(days=400))]


def test_the_reference_is_the_summary_with_its_predecessors_found_by_index() -> None:
    assert REFERENCE != mrr.SUMMARY and "LATERAL" in REFERENCE


def ledger(rng: random.Random) -> list[Snapshot]:
    """A few subscriptions' snapshots over 90 days: paying, changing plan, lapsing to 0 and coming back, some in
    the same second (told apart by rank, then event id), some first seen with what came before."""
    rows = []
    for s in range(6):
        at = NOW - dt.timedelta(days=rng.uniform(30, 90))
        for i in range(rng.randint(1, 7)):
            at += dt.timedelta(seconds=0 if rng.random() < 0.2 else rng.uniform(1, 20 * 86400))
            mrr_now = rng.choice((0, 0, 1900, 2900, 4900))
            before = rng.choice((None, 1900)) if i == 0 else None
            rows.append(Snapshot(f"evt_{s}_{i}_{rng.randrange(1000)}", f"sub_{s}", at, rng.randint(0, 2),
                                 "active" if mrr_now else "canceled", mrr_now, rng.choice(("usd", "usd", "eur")),
                                 "Pro", before))
    return rows


async def figures(conn: asyncpg.Connection, sql: str | None = None) -> list[list[object]]:
    out = []
    for now, since in WINDOWS:
        if sql is None:
            got = await mrr.summary(conn, now=now, since=since)
            out.append([tuple(vars_of(c)) for c in got.currencies])
        else:
            rows = await conn.fetch(sql, now, since, now - dt.timedelta(days=7))
            out.append([tuple(r.values()) for r in rows])
    return out


def vars_of(c: mrr.MrrFigures) -> list[object]:
    return [c.currency, c.mrr, c.mrr_week_ago, c.new, c.reactivation, c.expansion, c.contraction, c.churned,
            c.churned_count, c.active]


async def assert_as_reference(conn: asyncpg.Connection) -> None:
    assert await figures(conn) == await figures(conn, REFERENCE)


@pytest.mark.parametrize("seed", range(12))
async def test_any_arrival_order_and_batching_keeps_the_movements(conn: asyncpg.Connection, seed: int) -> None:
    rng = random.Random(seed)
    rows = ledger(rng)
    rng.shuffle(rows)
    while rows:  # batches of 1–5 snapshots, the redelivery of one already stored among them sometimes
        size = rng.randint(1, 5)
        batch, rows = rows[:size], rows[size:]
        await insert_snapshots(conn, batch + batch[:rng.randint(0, 1)])
        await assert_as_reference(conn)
    moved = await conn.fetchval("SELECT count(*) FROM subscription_events WHERE prev_mrr IS NOT NULL")
    assert moved > 0


@pytest.mark.parametrize("seed", range(6))
async def test_a_changed_or_deleted_snapshot_moves_its_successors(conn: asyncpg.Connection, seed: int) -> None:
    rng = random.Random(100 + seed)
    await insert_snapshots(conn, ledger(rng))
    ids = [r["event_id"] for r in await conn.fetch("SELECT event_id FROM subscription_events ORDER BY event_id")]
    for event_id in rng.sample(ids, 4):  # a discount read later: the snapshot's MRR (and what came before) change
        async with conn.transaction():
            sub = await conn.fetchval("SELECT subscription_id FROM subscription_events WHERE event_id = $1",
                                      event_id)
            await discounts.recomputed(conn, sub, [discounts.Recomputed(event_id, rng.choice((0, 990, 5900)),
                                                                        rng.choice((None, 2900)), "applied")])
        await assert_as_reference(conn)
    await conn.execute("DELETE FROM subscription_events WHERE event_id = $1", rng.choice(ids))
    await assert_as_reference(conn)


async def test_migration_0022_fills_in_the_snapshots_stored_before_it(conn: asyncpg.Connection) -> None:
    await conn.execute("ALTER TABLE subscription_events DISABLE TRIGGER USER")  # as stored before 0022
    await insert_snapshots(conn, ledger(random.Random(7)))
    await conn.execute("ALTER TABLE subscription_events ENABLE TRIGGER USER")
    assert await figures(conn) != await figures(conn, REFERENCE)
    sql = next(m.sql for m in bundled_migrations() if m.version.startswith("0022"))
    await conn.execute(sql.rsplit("$$;", 1)[1].rsplit("\n\n", 1)[1])  # its last statement: the fill
    await assert_as_reference(conn)
