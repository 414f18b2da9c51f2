"""A replica from before migration 0046 still running during a rolling deploy fails closed: 0046 changed the unit of
the stored MRR (MRR units, 12,000,000 to a minor unit a month) and renamed the columns it changed, so the old
release's statements (tests/old_mrr_sql.py, verbatim) fail with "column does not exist" instead of showing MRR
12,000,000 times too high or writing snapshots in minor units that the ledger would book as lasting contractions
and expansions. Its intake then answers 503 and Stripe retries; what it tried writes nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from bot.db import bundled_migrations, migrate
from bot.subscriptions.mrr import PER_MINOR
from queries import mrr as mrr_q
from queries.cover import DAY, ceil_to, floor_to
from queries.subscriptions import Snapshot, StateRow
from tests import old_mrr_sql

AT = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
TABLES = ("SELECT * FROM subscription_events ORDER BY event_id", "SELECT * FROM subscriptions ORDER BY id",
          "SELECT * FROM mrr_movement_days ORDER BY day, currency")


def _state(sub: str, mrr_now: int, event_id: str, at: dt.datetime) -> StateRow:
    return StateRow(sub, f"cus_{sub}", "active" if mrr_now else "canceled", mrr_now, "usd", "Pro", False, None, None,
                    None, None, None, False, event_id, at, 0)


def _window(now: dt.datetime) -> tuple[dt.datetime, ...]:
    """The old SUMMARY's parameters for the 30 days to `now`, as queries.mrr.summary passes them."""
    since, week_ago = now - dt.timedelta(days=30), now - dt.timedelta(days=7)
    return now, since, week_ago, ceil_to(since, DAY), floor_to(now, DAY), floor_to(week_ago, DAY) + DAY, \
        floor_to(now, DAY) + DAY


async def _stored(conn: asyncpg.Connection) -> list[list[asyncpg.Record]]:
    return [await conn.fetch(q) for q in TABLES]


async def test_an_old_replicas_statements_fail_after_0046_and_write_nothing(empty_dsn: str) -> None:
    """The old replica wrote $19.00 a month before the deploy and has its statements prepared (asyncpg keeps them
    per connection). Once this release migrated, each of them — a snapshot, a state, a Discount recomputed, the MRR
    summary — fails on the renamed columns, prepared or not, and the store is as the migration left it."""
    conn = await asyncpg.connect(empty_dsn)
    old = await asyncpg.connect(empty_dsn)  # the old replica's connection, open across the deploy
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version < "0046"])
        insert = await old.prepare(old_mrr_sql.INSERT_SNAPSHOTS)
        await insert.fetch(*old_mrr_sql.columns([Snapshot("evt_a", "sub_a", AT, 0, "active", 1900, "usd", "Pro")]))
        await old_mrr_sql.upsert_states(old, [_state("sub_a", 1900, "evt_a", AT)])
        summary = await old.prepare(old_mrr_sql.SUMMARY)
        assert (await summary.fetchrow(*_window(AT)))["mrr"] == 1900
        await migrate(conn)
        stored = await _stored(conn)
        later = AT + dt.timedelta(days=3)
        renewed = [Snapshot("evt_b", "sub_a", later, 1, "active", 2900, "usd", "Pro", 1900),
                   Snapshot("evt_c", "sub_c", later, 0, "active", 4900, "usd", "Pro")]
        attempts: list[Callable[[], Awaitable[object]]] = [
            lambda: insert.fetch(*old_mrr_sql.columns(renewed)),
            lambda: old_mrr_sql.insert_snapshots(old, renewed),
            lambda: old_mrr_sql.upsert_states(old, [_state("sub_a", 2900, "evt_b", later)]),
            lambda: old.execute(old_mrr_sql.RECOMPUTED, ["evt_a"], [1500], [None], ["applied"]),
            lambda: old.execute(old_mrr_sql.SYNC_STATE, "sub_a"),
            lambda: summary.fetchrow(*_window(later)),
            lambda: old.fetchrow(old_mrr_sql.SUMMARY, *_window(later))]
        for attempt in attempts:
            with pytest.raises(asyncpg.UndefinedColumnError):
                await attempt()
        assert await _stored(conn) == stored
        got = (await mrr_q.summary(conn, now=later, since=AT)).currencies[0]
        assert (got.mrr, got.new) == (1900, 1900)
        assert await conn.fetchval("SELECT mrr_units FROM subscriptions") == 1900 * PER_MINOR
    finally:
        await old.close()
        await conn.close()
