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


async def ensure_table(db: Executor) -> None:
    """Create the bookkeeping table on a fresh database."""
    await db.execute(CREATE_MIGRATIONS_TABLE)


async def applied_versions(db: Executor) -> set[str]:
    """Versions already applied."""
    return {r["version"] for r in await db.fetch(APPLIED_VERSIONS)}


async def apply(db: Executor, *, version: str, sql: str) -> None:
    """Run one migration file's SQL and record its version; the caller holds the transaction."""
    # The SQL comes from the .sql files shipped in bot/migrations/, never from input.
    await db.execute(sql)
    await db.execute(RECORD_VERSION, version)
