"""`salespulse seed` run by roles that are not superusers: the tables' owner, and a role that owns nothing."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.demo.load import load
from bot.demo.seed import SeedSpec, generate
from queries import seed as q

# Each rollup table's non-empty rows (deleting every order of a bucket leaves a row of zeros; a rebuild none).
ROLLUPS = """
SELECT (SELECT md5(string_agg(r::text, ',' ORDER BY r::text)) FROM order_rollups AS r
         WHERE orders <> 0 OR revenue <> 0),
       (SELECT md5(string_agg(r::text, ',' ORDER BY r::text)) FROM sales_rollups AS r
         WHERE orders <> 0 OR revenue <> 0 OR refunds <> 0 OR refunded <> 0),
       (SELECT md5(string_agg(r::text, ',' ORDER BY r::text)) FROM checkout_rollups AS r
         WHERE started <> 0 OR completed <> 0),
       (SELECT md5(string_agg(r::text, ',' ORDER BY r::text)) FROM customer_sketches AS r
         WHERE strpos(sketch::text, '1') > 0)"""
ROLLUP_TRIGGERS = "SELECT tgname, tgenabled::text FROM pg_trigger WHERE tgname LIKE '%rollup%' ORDER BY 1"
_roles = itertools.count()


def spec(*, orders: int = 3_000, token: str = "role") -> SeedSpec:
    """A 9-day run in chunks of at most 250 orders."""
    return SeedSpec(orders=orders, days=9, now=dt.datetime.now(dt.UTC), tz=ZoneInfo("Asia/Kolkata"), seed=3,
                    token=token, chunk_size=250)


async def rollups_as_rebuilt(conn: asyncpg.Connection) -> bool:
    """Whether the rollups equal what a rebuild from the tables computes (the rebuild is rolled back)."""
    kept = list(await conn.fetchrow(ROLLUPS))
    tr = conn.transaction()
    await tr.start()
    try:
        await conn.execute(q.REBUILD_ROLLUPS)
        return kept == list(await conn.fetchrow(ROLLUPS))
    finally:
        await tr.rollback()


@pytest.fixture
async def role(dsn: str, conn: asyncpg.Connection) -> AsyncIterator[str]:
    """A login role that is not a superuser, with every privilege on the tables; dropped afterwards."""
    name = f"salespulse_seeder_{os.getpid()}_{next(_roles)}"
    await conn.execute(f'CREATE ROLE "{name}" LOGIN')
    await conn.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{name}"')
    await conn.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{name}"')
    try:
        yield name
    finally:
        await conn.execute(f'REASSIGN OWNED BY "{name}" TO CURRENT_USER')
        await conn.execute(f'DROP OWNED BY "{name}"')
        await conn.execute(f'DROP ROLE "{name}"')


def as_role(dsn: str, role: str) -> str:
    """The DSN with another user."""
    parts_ = urlsplit(dsn)  # the embedded server's DSN has no host in its netloc (?host=/socket/dir)
    return urlunsplit(parts_._replace(netloc=f"{role}@{parts_.netloc.rpartition('@')[2]}"))


async def test_table_owner_seeds_with_the_rollup_triggers_disabled_by_name(dsn: str, conn: asyncpg.Connection,
                                                                          role: str) -> None:
    """Not a superuser but the tables' owner: the INSERT rollup triggers are disabled for the COPY, the rollups
    rebuilt once, and the triggers enabled again."""
    for table in ("orders", "checkout_sessions"):
        await conn.execute(f'ALTER TABLE {table} OWNER TO "{role}"')
    before = await conn.fetch(ROLLUP_TRIGGERS)
    seeder = await asyncpg.connect(as_role(dsn, role))
    try:
        tr = seeder.transaction()
        await tr.start()
        assert await q.triggers_off(seeder) is q.Deferred.DISABLED
        assert {r["tgenabled"] for r in await seeder.fetch(ROLLUP_TRIGGERS)} == {"O", "D"}  # 3 of 9 off
        await tr.rollback()
        counts = await load(seeder, generate(spec(orders=800)))
    finally:
        await seeder.close()
    assert counts.orders == 800
    assert await conn.fetch(ROLLUP_TRIGGERS) == before
    assert {r["tgenabled"] for r in before} == {"O"}
    assert await rollups_as_rebuilt(conn)


async def test_role_that_owns_nothing_seeds_with_the_triggers_on(dsn: str, conn: asyncpg.Connection,
                                                               role: str) -> None:
    """Neither superuser nor owner: nothing is turned off, and the triggers keep the rollups exact."""
    seeder = await asyncpg.connect(as_role(dsn, role))
    try:
        tr = seeder.transaction()
        await tr.start()
        assert await q.triggers_off(seeder) is None
        await tr.rollback()
        counts = await load(seeder, generate(spec(orders=800)))
    finally:
        await seeder.close()
    assert counts.orders == 800
    assert await rollups_as_rebuilt(conn)
