"""Versioned migrations: the bundled .sql files, and applying them without stalling the replicas still serving."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from importlib import resources

import asyncpg

from queries import locks
from queries import migrations as q

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    """One versioned .sql file."""

    version: str
    sql: str


@dataclass(frozen=True, slots=True)
class LockRetries:
    """How long a migration's transaction waits for its table locks per attempt, and how it tries again.

    While a migration waits for a lock (ACCESS EXCLUSIVE for an ALTER TABLE) behind a long query of a replica still
    serving, every later query on that table queues behind it: PostgreSQL grants locks in order. So each attempt
    waits at most its lock_timeout, then rolls back, lets the queue drain while it sleeps, and tries again.
    """

    # Attempt n waits lock_timeouts[n - 1], the last one for every later attempt: the queue stalls at most that
    # long per attempt. Short first (most holders are queries of milliseconds), then up to 1 s, which keeps a
    # stalled slash command inside the 3 s Slack gives it to be acknowledged, and a webhook far inside Stripe's.
    lock_timeouts: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0)
    # Sleep after attempt n: first_sleep * 2**(n - 1), at most max_sleep, times a random 0.5-1 so the attempts do
    # not keep step with a periodic job. Outside the transaction, so no idle-in-transaction timeout cuts it.
    first_sleep: float = 0.1
    max_sleep: float = 10.0
    # Then give up (MigrationLocksUnavailable), nothing of the migration applied. Longer than any lock the bot's
    # own sessions hold: pooled queries are cancelled at 30 s, a transaction left idle ends at 120 s (bot.db), so
    # an old replica's work never makes a new one give up. A holder past this is a session from elsewhere (a
    # pg_dump, a psql left in a transaction, a VACUUM FULL) of unknown length: waiting behind it without a limit,
    # as GitLab's last attempt does, would stall intake on every replica for as long as it lasts, while a replica
    # that exits leaves the old ones serving, says why, and tries again when restarted.
    give_up_after: float = 300.0

    def lock_timeout(self, attempt: int) -> float:
        """Attempt `attempt`'s (from 1) lock_timeout, in seconds."""
        return self.lock_timeouts[min(attempt, len(self.lock_timeouts)) - 1]

    def lock_timeout_ms(self, attempt: int) -> int:
        """The same in whole milliseconds, at least 1: PostgreSQL reads 0 as no limit at all."""
        return max(1, round(self.lock_timeout(attempt) * 1000))

    def sleep(self, attempt: int) -> float:
        """Seconds to sleep after attempt `attempt` (from 1) could not take its locks, with jitter."""
        return min(self.first_sleep * 2 ** (attempt - 1), self.max_sleep) * random.uniform(0.5, 1.0)


LOCK_RETRIES = LockRetries()


class MigrationLocksUnavailable(asyncpg.LockNotAvailableError):
    """A migration could not take its table locks within LockRetries.give_up_after; nothing of it was applied.

    A LockNotAvailableError (so a PostgresError): the command line says it in one line, as any refusal."""


def bundled_migrations() -> list[Migration]:
    """The migrations shipped in the package, in version order."""
    folder = resources.files("bot") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(version=f.name.removesuffix(".sql"), sql=f.read_text("utf-8")) for f in files]


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None, *,
                  retries: LockRetries = LOCK_RETRIES) -> list[str]:
    """Apply pending migrations, each in its own transaction, under an advisory lock; return the applied.

    `conn` should be a connection of its own (not a pooled one): the lock is session-level, see queries.locks;
    open it with `bot.db.connect_for_migrations`, so no server timeout cancels the wait for the lock. Each
    migration waits for its table locks as `retries` says.
    """
    migrations = bundled_migrations() if migrations is None else migrations
    applied: list[str] = []
    # Session-level, because it spans one transaction per migration: replicas starting together wait here, without
    # a limit, instead of racing on CREATE TABLE. No table lock is held while waiting, so no query queues behind it.
    await locks.lock(conn, locks.MIGRATION)
    try:
        await q.ensure_table(conn)
        done = await q.applied_versions(conn)
        if newer := sorted(set(done) - {m.version for m in migrations}):
            # A rollback, or an old replica restarting mid-deploy: tables may mean more than this code knows.
            log.warning("the database has migrations this release does not know (%s): a newer release migrated it;"
                        " this one runs, but its figures may be wrong until the newer release is back",
                        ", ".join(newer))
        for migration in migrations:
            if migration.version in done:
                continue
            await _apply(conn, migration, retries)
            applied.append(migration.version)
    finally:
        await locks.unlock(conn, locks.MIGRATION)
    return applied


async def _apply(conn: asyncpg.Connection, migration: Migration, retries: LockRetries) -> None:
    """Apply one migration in a transaction whose lock waits are bounded, rolled back and tried again while another
    session holds a lock it needs. Any other error is raised at once, as before."""
    loop = asyncio.get_running_loop()
    started, attempt = loop.time(), 1
    while True:
        try:
            async with conn.transaction():
                await q.bound_lock_waits(conn, lock_timeout_ms=retries.lock_timeout_ms(attempt))
                await q.apply(conn, version=migration.version, sql=migration.sql)
        # Rolled back whole by the transaction block. A deadlock with a replica still serving (its lock wait may
        # outlast deadlock_timeout from attempt 4 on) is the same contention: PostgreSQL aborted us, not it.
        except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError) as exc:
            pause, waited = retries.sleep(attempt), loop.time() - started
            if waited + pause > retries.give_up_after:
                raise MigrationLocksUnavailable(
                    f"migration {migration.version} gave up after {attempt} attempt(s) over {waited:.0f} s: another"
                    " session keeps a lock on a table it changes (a long query, a backup, a transaction left open:"
                    " see pg_stat_activity and pg_locks); nothing of it was applied, start again once that session"
                    " ends") from exc
            log.warning("migration %s: attempt %d could not take its table locks within %.1f s (%s); rolled back,"
                        " trying again in %.1f s", migration.version, attempt, retries.lock_timeout(attempt), exc,
                        pause)
            await asyncio.sleep(pause)
            attempt += 1
            continue
        log.info("applied migration %s%s", migration.version, f" (attempt {attempt})" if attempt > 1 else "")
        return
