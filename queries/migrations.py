"""SQL for migration bookkeeping: which versions are applied, and applying one."""

from __future__ import annotations

from typing import Final

from queries.executor import Executor

CREATE_MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""

APPLIED_VERSIONS: Final = "SELECT version FROM schema_migrations"

RECORD_VERSION: Final = "INSERT INTO schema_migrations (version) VALUES ($1)"

# Transaction-local (set_config's third argument), since SET takes no parameters: the wait for each table lock is
# bounded, and no statement_timeout (the database's or the role's) cancels a migration rewriting a large table.
BOUND_LOCK_WAITS: Final = "SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', '0', true)"


async def ensure_table(db: Executor) -> None:
    """Create the bookkeeping table on a fresh database."""
    await db.execute(CREATE_MIGRATIONS_TABLE)


async def applied_versions(db: Executor) -> set[str]:
    """Versions already applied."""
    return {r["version"] for r in await db.fetch(APPLIED_VERSIONS)}


async def bound_lock_waits(db: Executor, *, lock_timeout_ms: int) -> None:
    """For the rest of the caller's transaction: wait at most `lock_timeout_ms` for any one lock (then
    asyncpg.LockNotAvailableError), and run statements without a time limit."""
    await db.execute(BOUND_LOCK_WAITS, f"{lock_timeout_ms}ms")


async def apply(db: Executor, *, version: str, sql: str) -> None:
    """Run one migration file's SQL and record its version; the caller holds the transaction."""
    # The SQL comes from the .sql files shipped in bot/migrations/, never from input.
    await db.execute(sql)
    await db.execute(RECORD_VERSION, version)
