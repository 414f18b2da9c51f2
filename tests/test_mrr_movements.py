"""Each snapshot's movement start (migration 0022: prev_mrr, paid_before), kept by triggers whatever the arrival
order, the batching, later MRR changes (discounts read) and deletions: the MRR summary that sums them equals the
one that found each snapshot's predecessor by index (REFERENCE, queries/mrr.py's SQL before 0022, with migration
0034's paid_before: a snapshot whose event says it was paying before it counts as having paid)."""

from __future__ import annotations

import datetime as dt
import random

import asyncpg
import pytest

from bot.db import bundled_migrations
from bot.subscriptions.mrr import PER_MINOR
from queries import discounts, mrr
from queries.subscriptions import Snapshot, insert_snapshots

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
# MRR units (migration 0046) of a price in minor units a year: sums of fractions of a minor unit a month.
YEARLY = PER_MINOR // 12

# queries/mrr.py's movements before migration 0022 ($1 now, $2 window start, $3 a week before now): each snapshot's
# predecessor found by index, nothing stored. One fix: it read `e.at > least(...)`, leaving out a snapshot exactly
# at the window's start, which its own `inside` (at >= $2) counts; the summary now counts it.
REFERENCE = """
WITH steps AS (
        SELECT e.currency, e.at, e.mrr_units AS mrr, e.at >= $2 AND e.at <= $1::timestamptz AS inside,
               coalesce(p.mrr_units, e.before_mrr_units, 0) AS prev,
               coalesce(p.mrr_units, e.before_mrr_units, 0) = 0 AND e.mrr_units > 0
               AND (coalesce(e.before_mrr_units, 0) > 0 OR EXISTS (
                   SELECT 1 FROM subscription_events AS x
                    WHERE x.subscription_id = e.subscription_id AND (x.mrr_units > 0 OR x.before_mrr_units > 0)
                      AND (x.at, x.rank, x.event_id) < (e.at, e.rank, e.event_id))) AS paid_before
          FROM subscription_events AS e
          LEFT JOIN LATERAL (
                SELECT x.mrr_units FROM subscription_events AS x
                 WHERE x.subscription_id = e.subscription_id
                   AND (x.at, x.rank, x.event_id) < (e.at, e.rank, e.event_id)
                 ORDER BY x.at DESC, x.rank DESC, x.event_id DESC
                 LIMIT 1) AS p ON true
         WHERE e.at >= least($2::timestamptz, $3::timestamptz)),
     movement AS (
        SELECT currency,
               sum(mrr)        FILTER (WHERE inside AND prev = 0 AND mrr > 0 AND NOT paid_before) AS new,
               sum(mrr)        FILTER (WHERE inside AND prev = 0 AND mrr > 0 AND paid_before)   AS reactivation,
               sum(mrr - prev) FILTER (WHERE inside AND prev > 0 AND mrr > prev)              AS expansion,
               sum(prev - mrr) FILTER (WHERE inside AND prev > 0 AND mrr < prev AND mrr > 0)  AS contraction,
               sum(prev)       FILTER (WHERE inside AND prev > 0 AND mrr = 0)                 AS churned,
               count(*)        FILTER (WHERE inside AND prev > 0 AND mrr = 0)                 AS churned_count,
               coalesce(sum(mrr - prev) FILTER (WHERE at > $1), 0)                      AS after_now,
               coalesce(sum(mrr - prev) FILTER (WHERE at > $3 AND at <= $1), 0)         AS last_week,
               coalesce(sum((mrr > 0)::int - (prev > 0)::int) FILTER (WHERE at > $1), 0) AS active_after
          FROM steps
         GROUP BY currency),
""" + mrr.SUMMARY[mrr.SUMMARY.index("     state AS"):]  # MRR now and a week ago from the states, as now

H = dt.timedelta(hours=1)
# (now, since): 30 days from midnight and from odd hours, windows inside one day and across one midnight, a window
# with every snapshot in it, and one whose `now` has snapshots after it.
WINDOWS = [(NOW, NOW - dt.timedelta(days=30)), (NOW - 3.5 * H, NOW - dt.timedelta(days=30, hours=7.25)),
           (NOW - dt.timedelta(days=20), NOW - dt.timedelta(days=45)), (NOW - 26 * H, NOW - 33 * H),
           (NOW - 30 * H, NOW - 50 * H), (NOW + dt.timedelta(days=400), NOW - dt.timedelta(days=400)),
           (NOW - dt.timedelta(days=40, hours=5), NOW - dt.timedelta(days=70, hours=1))]


def ledger(rng: random.Random) -> list[Snapshot]:
    """A few subscriptions' snapshots over 90 days: paying, changing plan, lapsing to 0 and coming back, some in
    the same second (told apart by rank, then event id), some on a midnight, some first seen with what came
    before."""
    rows = []
    for s in range(6):
        at = NOW - dt.timedelta(days=rng.uniform(30, 90))
        for i in range(rng.randint(1, 7)):
            at += dt.timedelta(seconds=0 if rng.random() < 0.2 else rng.uniform(1, 20 * 86400))
            if rng.random() < 0.2:  # on a UTC midnight: where a day row and the edge snapshots meet
                at = at.replace(hour=0, minute=0, second=0, microsecond=0)
            mrr_now = rng.choice((0, 0, 1900, 2900, 4900)) * YEARLY
            before = rng.choice((None, 1900 * YEARLY)) if i == 0 else None
            rows.append(Snapshot(f"evt_{s}_{i}_{rng.randrange(1000)}", f"sub_{s}", at, rng.randint(0, 2),
                                 "active" if mrr_now else "canceled", mrr_now, rng.choice(("usd", "usd", "eur")),
                                 "Pro", before))
    return rows


# Snapshots on a midnight, for windows that end 19 hours before one: it is the first whole day after `now`.
MIDNIGHTS = "SELECT DISTINCT at FROM subscription_events WHERE at = date_trunc('day', at, 'UTC') ORDER BY at LIMIT 4"


async def figures(conn: asyncpg.Connection, sql: str | None = None) -> list[list[object]]:
    out = []
    edges = [(m - 19 * H, m - dt.timedelta(days=30)) for m in await conn.fetchval(f"SELECT array({MIDNIGHTS})")]
    for now, since in WINDOWS + edges:
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


# Each subscription's state is its newest snapshot, as the intake keeps it (queries/subscriptions.py).
STATES = """
DELETE FROM subscriptions;
INSERT INTO subscriptions (id, status, mrr_units, currency, last_event_id, last_event_at, last_event_rank)
SELECT DISTINCT ON (subscription_id) subscription_id, status, mrr_units, currency, event_id, at, rank
  FROM subscription_events
 ORDER BY subscription_id, at DESC, rank DESC, event_id DESC;
"""


async def assert_as_reference(conn: asyncpg.Connection) -> None:
    await conn.execute(STATES)
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
    moved = await conn.fetchval("SELECT count(*) FROM subscription_events WHERE prev_mrr_units IS NOT NULL")
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
            recomputed = discounts.Recomputed(event_id, rng.choice((0, 990, 5900)) * YEARLY,
                                              rng.choice((None, 2900 * YEARLY)), "applied")
            await discounts.recomputed(conn, sub, [recomputed])
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


DAYS = """
SELECT day, currency, new, reactivation, expansion, contraction, churned, churned_count, delta, active_delta
  FROM mrr_movement_days
 WHERE (new, reactivation, expansion, contraction, churned, churned_count, delta, active_delta)
       <> (0, 0, 0, 0, 0, 0, 0, 0)
 ORDER BY day, currency
"""


@pytest.mark.parametrize("seed", range(4))
async def test_the_days_kept_by_the_triggers_equal_a_rebuild(conn: asyncpg.Connection, seed: int) -> None:
    rng = random.Random(200 + seed)
    rows = ledger(rng)
    rng.shuffle(rows)
    for i in range(0, len(rows), 3):
        await insert_snapshots(conn, rows[i:i + 3])
    event_id = rng.choice(rows).event_id
    sub = await conn.fetchval("SELECT subscription_id FROM subscription_events WHERE event_id = $1", event_id)
    await discounts.recomputed(conn, sub, [discounts.Recomputed(event_id, 4242 * YEARLY, None, "applied")])
    kept = [tuple(r) for r in await conn.fetch(DAYS)]
    assert kept
    await conn.execute("SELECT mrr_movements_rebuild()")
    assert [tuple(r) for r in await conn.fetch(DAYS)] == kept


async def test_emptying_the_ledger_empties_the_days(conn: asyncpg.Connection) -> None:
    await insert_snapshots(conn, ledger(random.Random(9)))
    assert await conn.fetchval("SELECT count(*) FROM mrr_movement_days") > 0
    await conn.execute("TRUNCATE subscription_events")
    assert await conn.fetchval("SELECT count(*) FROM mrr_movement_days") == 0
