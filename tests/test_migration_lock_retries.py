"""A migration waiting for a table lock does not stall the replicas still serving: PostgreSQL queues every later
query on the table behind a waiting ACCESS EXCLUSIVE request, so each attempt waits at most a short lock_timeout,
rolls back and tries again later (bot/migrate.py LockRetries). Custom migrations on an empty database of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from bot.db import LockRetries, Migration, MigrationLocksUnavailable, connect_for_migrations, migrate
from queries import locks

# Fast for tests: every attempt waits 0.2 s for its locks, then sleeps 0.1-0.2 s.
RETRIES = LockRetries(lock_timeouts=(0.2,), first_sleep=0.2, max_sleep=0.2, give_up_after=60.0)
TABLE = Migration("0001_table", "CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
# Work done before the statement that waits: each failed attempt must take it back with it.
ALTER = Migration("0002_alter", "CREATE TABLE side (id int); INSERT INTO side VALUES (1);"
                                " ALTER TABLE t ADD COLUMN x int")
WAITING = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 't'::regclass AND NOT granted)"


@pytest.fixture
async def fresh(empty_dsn: str) -> str:
    """An empty database of its own (conftest's empty_dsn), with table t from a first migration."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await migrate(conn, [TABLE]) == ["0001_table"]
    finally:
        await conn.close()
    return empty_dsn


@pytest.fixture
async def session(fresh: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain session on the database, to look at it and read from it."""
    conn = await asyncpg.connect(fresh)
    try:
        yield conn
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def holding_t(dsn: str) -> AsyncIterator[None]:
    """A session reading t in an open transaction (a long report of a replica still serving): ACCESS SHARE."""
    holder = await asyncpg.connect(dsn)
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE t IN ACCESS SHARE MODE")
            yield
    finally:
        await holder.close()


async def until_the_migration_waits(observer: asyncpg.Connection) -> None:
    """Return once some session waits for a lock on t (the migration's ALTER TABLE)."""
    for _ in range(1000):  # 10 s
        if await observer.fetchval(WAITING):
            return
        await asyncio.sleep(0.01)
    pytest.fail("the migration never waited for t")


async def migrating(dsn: str, migrations: list[Migration], retries: LockRetries = RETRIES) -> list[str]:
    """`migrate` on a connection opened as the bot opens it (no lock_timeout, no statement_timeout of its own)."""
    conn = await connect_for_migrations(dsn)
    try:
        applied = await migrate(conn, migrations, retries=retries)
        assert await conn.fetchval("SHOW lock_timeout") == "0"  # the short one was the transaction's only
        return applied
    finally:
        await conn.close()


async def recorded(conn: asyncpg.Connection) -> list[str]:
    return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]


async def assert_migration_lock_free(conn: asyncpg.Connection) -> None:
    assert await locks.try_lock(conn, locks.MIGRATION)
    await locks.unlock(conn, locks.MIGRATION)


async def test_reads_of_a_table_a_migration_waits_for_are_not_stuck_behind_it(fresh: str,
                                                                             session: asyncpg.Connection) -> None:
    """(a) A session holds t for 5 s while a migration needs ACCESS EXCLUSIVE on it: a plain SELECT on t from a third
    session completes within about one lock_timeout each time, not after the hold."""
    async with holding_t(fresh):
        held_until = time.monotonic() + 5.0
        task = asyncio.create_task(migrating(fresh, [TABLE, ALTER]))
        try:
            await until_the_migration_waits(session)
            reader = await asyncpg.connect(fresh)
            try:
                for _ in range(3):
                    started = time.monotonic()
                    with contextlib.suppress(TimeoutError):
                        await reader.fetchval("SELECT count(*) FROM t", timeout=2.0)
                    took = time.monotonic() - started
                    assert took < 2.0, f"the read waited {took:.1f} s behind the migration"
                    await asyncio.sleep(0.3)
            finally:
                await reader.close()
            assert not task.done()  # the migration still waits for the holder
            await asyncio.sleep(max(0.0, held_until - time.monotonic()))
        except BaseException:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
    assert await asyncio.wait_for(task, 10) == ["0002_alter"]


async def test_the_migration_is_applied_once_the_holder_lets_go(fresh: str, session: asyncpg.Connection,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """(b) Retried while t is held, then applied exactly once and recorded, its rolled-back attempts leaving nothing
    behind; each retry is logged with the migration and the attempt."""
    caplog.set_level(logging.INFO, logger="bot.migrate")
    async with holding_t(fresh):
        task = asyncio.create_task(migrating(fresh, [TABLE, ALTER]))
        await until_the_migration_waits(session)
        await asyncio.sleep(1.0)  # a few attempts
    assert await asyncio.wait_for(task, 10) == ["0002_alter"]
    assert await recorded(session) == ["0001_table", "0002_alter"]
    assert await session.fetchval("SELECT count(*) FROM side") == 1
    assert await session.fetchval("SELECT x FROM t") is None  # the column is there
    retried = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert retried and all("0002_alter" in m for m in retried), caplog.text
    assert "attempt 1 " in retried[0], retried[0]
    assert await migrating(fresh, [TABLE, ALTER]) == []  # recorded: never again
    await assert_migration_lock_free(session)


async def test_a_migration_failing_otherwise_is_not_retried(fresh: str, session: asyncpg.Connection,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """(c) A syntax error raises at once, as before: no retry, nothing of it nor after it applied, lock released."""
    bad = Migration("0002_bad", "CREATE TABLE side (id int); ALTER TABLE t ADD COLUM x int")
    later = Migration("0003_later", "CREATE TABLE later (id int)")
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await asyncio.wait_for(migrating(fresh, [TABLE, bad, later]), 10)
    assert not [r for r in caplog.records if "trying again" in r.getMessage()], caplog.text
    assert await recorded(session) == ["0001_table"]
    assert await session.fetchval("SELECT to_regclass('side')") is None
    await assert_migration_lock_free(session)


async def test_a_migration_gives_up_with_a_clear_error_when_the_holder_stays(fresh: str,
                                                                             session: asyncpg.Connection) -> None:
    """Past give_up_after the migration raises an error naming it (a PostgresError, so the command line says it in
    one line), with nothing of it applied and the migration lock released; the holder keeps its lock."""
    impatient = LockRetries(lock_timeouts=(0.2,), first_sleep=0.1, max_sleep=0.1, give_up_after=1.0)
    async with holding_t(fresh):
        with pytest.raises(MigrationLocksUnavailable, match="0002_alter") as raised:
            await asyncio.wait_for(migrating(fresh, [TABLE, ALTER], impatient), 10)
        assert isinstance(raised.value, asyncpg.LockNotAvailableError)
        assert await recorded(session) == ["0001_table"]
        assert await session.fetchval("SELECT to_regclass('side')") is None
        await assert_migration_lock_free(session)


async def test_no_statement_timeout_cuts_a_migration(fresh: str, server_dsn: str) -> None:
    """A database's statement_timeout (usual on managed PostgreSQL) does not cancel a long migration, even on a
    connection not opened by connect_for_migrations (the demo's)."""
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f"ALTER DATABASE \"{urlsplit(fresh).path.lstrip('/')}\" SET statement_timeout = '300ms'")
    finally:
        await admin.close()
    conn = await asyncpg.connect(fresh)
    try:
        slow = Migration("0002_slow", "SELECT pg_sleep(1); CREATE TABLE slow (id int)")
        assert await migrate(conn, [TABLE, slow], retries=RETRIES) == ["0002_slow"]
        assert await conn.fetchval("SHOW statement_timeout") == "300ms"  # only the migration went without it
    finally:
        await conn.close()


async def test_a_migration_chosen_as_a_deadlock_victim_is_tried_again(fresh: str, session: asyncpg.Connection) -> None:
    """A replica still serving that locks a row of one table, then wants another the migration holds, deadlocks with
    it once the migration's lock wait may outlast deadlock_timeout (attempt 4 on: 1 s). PostgreSQL then aborts one
    of the two; when that is the migration it is rolled back whole, like a lock timeout, and tried again."""
    side = Migration("0002_side", "CREATE TABLE u (id int)")
    # The migration's own short deadlock_timeout makes it the one PostgreSQL aborts (tests run as a superuser).
    crossing = Migration("0003_crossing", "SET LOCAL deadlock_timeout = '10ms'; LOCK TABLE t IN ACCESS EXCLUSIVE MODE;"
                                          " SELECT pg_sleep(0.3); LOCK TABLE u IN ACCESS EXCLUSIVE MODE;"
                                          " ALTER TABLE t ADD COLUMN y int")
    assert await migrating(fresh, [TABLE, side]) == ["0002_side"]
    patient = LockRetries(lock_timeouts=(5.0,), first_sleep=0.1, max_sleep=0.1, give_up_after=30.0)
    replica = await asyncpg.connect(fresh)
    try:
        async with replica.transaction():
            await replica.execute("LOCK TABLE u IN ACCESS SHARE MODE")
            task = asyncio.create_task(migrating(fresh, [TABLE, side, crossing], patient))
            for _ in range(500):  # until the migration holds t
                if await session.fetchval("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 't'::regclass"
                                          " AND mode = 'AccessExclusiveLock' AND granted)"):
                    break
                await asyncio.sleep(0.01)
            await replica.execute("LOCK TABLE t IN ACCESS SHARE MODE")  # waits until the migration is aborted
    finally:
        await replica.close()
    assert await asyncio.wait_for(task, 20) == ["0003_crossing"]
    assert await recorded(session) == ["0001_table", "0002_side", "0003_crossing"]


async def test_a_database_migrated_by_a_newer_release_is_said(fresh: str, caplog: pytest.LogCaptureFixture) -> None:
    """Rolling back (or an old replica restarting mid-deploy) runs older code on a newer schema: it starts, since
    refusing would break the rollback, but says so, naming the migrations it does not know."""
    newer = Migration("0002_newer", "CREATE TABLE newer (id int)")
    assert await migrating(fresh, [TABLE, newer]) == ["0002_newer"]
    caplog.set_level(logging.WARNING, logger="bot.migrate")
    assert await migrating(fresh, [TABLE]) == []
    assert "does not know (0002_newer)" in caplog.text, caplog.text
